"""Signing in with OpenID Connect: the authorization code flow with PKCE (S256), ``state`` and ``nonce``.

Authlib's OAuth 2.0 client builds the authorization request and exchanges the code; the ID token is
checked with joserfc (Authlib's JOSE library): signature against the provider's published keys (read
again once when a token names a key we do not know: the provider rotated them), issuer, audience,
expiry and the nonce of this very sign-in. Nothing else from the provider is believed: the person's
e-mail address counts only when the provider says it is verified (:meth:`ordersync.web.people.People.from_identity`).

The state, nonce, PKCE verifier, area (ops or portal) and where to go afterwards travel in a short-lived
signed cookie set when the sign-in starts, so that any process of the hub can finish it and a callback
that this browser did not start is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ordersync.config import OidcSettings
from ordersync.web import session_secret

with warnings.catch_warnings():  # Authlib marks its httpx integration as moving to "httpx2"; it works as is
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client

FLOW_COOKIE = "ordersync_oidc"
FLOW_SECONDS = 600
DISCOVERY_SECONDS = 3600.0
LEEWAY_SECONDS = 60


class SignInFailed(Exception):
    """The sign-in did not complete; the message is for the person (no secrets, no stack)."""


@dataclass(frozen=True)
class Flow:
    state: str
    nonce: str
    verifier: str
    area: str
    next: str


def _mac(body: str) -> str:
    digest = hmac.new(session_secret(), f"oidc|{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def seal(flow: Flow, now: float | None = None) -> str:
    payload = json.dumps({"s": flow.state, "n": flow.nonce, "v": flow.verifier, "a": flow.area, "x": flow.next,
                          "e": int((now if now is not None else time.time()) + FLOW_SECONDS)})
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{body}.{_mac(body)}"


def unseal(cookie: str | None, now: float | None = None) -> Flow | None:
    if not cookie or "." not in cookie:
        return None
    body, mac = cookie.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(body)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    if int(data.get("e", 0)) < (now if now is not None else time.time()):
        return None
    return Flow(state=data["s"], nonce=data["n"], verifier=data["v"], area=data["a"], next=data["x"])


class OidcClient:
    """One configured provider: discovery (cached), the authorization URL, the code exchange and the
    ID token's checks."""

    def __init__(self, settings: OidcSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._keys: KeySet | None = None

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    def discovery(self) -> dict[str, Any]:
        with self._lock:
            if self._discovery is not None and time.monotonic() - self._discovery[0] < DISCOVERY_SECONDS:
                return self._discovery[1]
        try:
            answer = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=self.timeout)
            answer.raise_for_status()
            document: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("the identity provider cannot be reached; try again in a moment") from exc
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise SignInFailed("the identity provider's discovery document names another issuer")
        with self._lock:
            self._discovery = (time.monotonic(), document)
        return document

    def _client(self, redirect_uri: str) -> OAuth2Client:
        method = "client_secret_basic" if self.settings.secret() else "none"
        return OAuth2Client(client_id=self.settings.client_id, client_secret=self.settings.secret(),
                            scope=" ".join(self.settings.scopes), redirect_uri=redirect_uri,
                            code_challenge_method="S256", token_endpoint_auth_method=method, timeout=self.timeout)

    def start(self, redirect_uri: str, area: str, next_: str) -> tuple[str, Flow]:
        """Where to send the browser, and the flow to keep in its cookie."""
        flow = Flow(state=generate_token(32), nonce=generate_token(32), verifier=generate_token(64), area=area,
                    next=next_)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(self.discovery()["authorization_endpoint"], state=flow.state,
                                                     nonce=flow.nonce, code_verifier=flow.verifier)
        return url, flow

    def finish(self, redirect_uri: str, flow: Flow, query: dict[str, str]) -> dict[str, Any]:
        """The verified ID token's claims for the provider's answer ``query`` to ``flow``."""
        if "error" in query:
            detail = query.get("error_description") or query["error"]
            raise SignInFailed(f"the identity provider refused the sign-in: {detail[:200]}")
        if not hmac.compare_digest(query.get("state", ""), flow.state):
            raise SignInFailed("this sign-in was not started here (state mismatch); start again")
        code = query.get("code")
        if not code:
            raise SignInFailed("the identity provider sent no authorization code")
        endpoint = self.discovery()["token_endpoint"]
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(endpoint, code=code, code_verifier=flow.verifier,
                                           grant_type="authorization_code")
        except Exception as exc:  # Authlib raises OAuthError, httpx its own: the person sees one line
            raise SignInFailed("the identity provider did not accept the authorization code; start again") from exc
        id_token = token.get("id_token")
        if not id_token:
            raise SignInFailed("the identity provider sent no ID token")
        return self.verify(str(id_token), flow.nonce)

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        try:
            answer = httpx.get(self.discovery()["jwks_uri"], timeout=self.timeout)
            answer.raise_for_status()
            keys = KeySet.import_key_set(answer.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise SignInFailed("the identity provider's keys cannot be read") from exc
        with self._lock:
            self._keys = keys
        return keys

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        algorithms = self.discovery().get("id_token_signing_alg_values_supported", ["RS256"])
        algorithms = [a for a in algorithms if a != "none"]
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), algorithms=algorithms)
            except (JoseError, ValueError):
                decoded = jwt.decode(id_token, self._key_set(refresh=True), algorithms=algorithms)
            registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, iss={"essential": True, "value": self.issuer},
                                             aud={"essential": True, "value": self.settings.client_id},
                                             sub={"essential": True}, exp={"essential": True},
                                             nonce={"essential": True, "value": nonce})
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"the identity provider's ID token was refused ({type(exc).__name__})") from exc
        claims: dict[str, Any] = dict(decoded.claims)
        return claims

    def roles(self, claims: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, ...]:
        """The ordersync roles the provider's roles claim maps to (unknown values are ignored)."""
        raw = claims.get(self.settings.roles_claim, [])
        values = raw.split() if isinstance(raw, str) else [str(v) for v in raw] if isinstance(raw, list) else []
        mapped = [self.settings.role_map.get(v, v).strip().lower() for v in values]
        return tuple(dict.fromkeys(r for r in mapped if r in allowed))
