"""The OpenID provider harness (tests/support/oidc.py) against a relying party built as the hub builds its
own (ordersync.web.oidc): Authlib's OAuth 2.0 client for the authorization request and the code exchange
(PKCE S256, state, nonce), joserfc for the ID token (signature against the provider's JWKS, iss, aud,
exp, nonce). If these pass, a failing hub sign-in test points at the hub, not at the harness.

One provider runs for the whole module (starting node takes about a second). Without node/npm these
tests skip and say why; under CI=true they fail.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError, MissingClaimError
from joserfc.jwk import KeySet, RSAKey

from tests.support.oidc import (
    OidcProviderError,
    Provider,
    callback_params,
    login_with_httpx,
    logout_with_httpx,
    oidc_provider,
)

with warnings.catch_warnings():  # Authlib marks its httpx integration as moving; the hub imports it the same way
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client

CALLBACK = "http://testserver/ops/oidc/callback"
PORTAL_CALLBACK = "http://testserver/portal/oidc/callback"
SIGNED_OUT = "http://testserver/ops/signed-out"
HUB: dict[str, Any] = {"client_id": "ordersync", "client_secret": "hub-secret-0123456789", "client_name": "ordersync",
                        "redirect_uris": [CALLBACK, PORTAL_CALLBACK], "post_logout_redirect_uris": [SIGNED_OUT],
                        "token_endpoint_auth_method": "client_secret_basic"}
POSTING: dict[str, Any] = {"client_id": "ordersync-post", "client_secret": "post-secret-0123456789",
                           "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "client_secret_post"}
ACCOUNTS: dict[str, dict[str, Any]] = {
    "fiona": {"sub": "u-fiona", "email": "fiona@kestrel.example", "email_verified": True, "name": "Fiona Finance",
              "roles": ["grp-finance", "grp-ops"]},
    "sam": {"sub": "u-sam", "email": "sam@rheinland.example", "email_verified": False, "name": "Sam Buyer",
            "roles": [], "password": "correct horse battery"},
}
SCOPE = "openid email profile roles"


@pytest.fixture(scope="module")
def op() -> Iterator[Provider]:
    with oidc_provider(clients=[HUB, POSTING], accounts=ACCOUNTS) as provider:
        yield provider


@pytest.fixture(scope="module")
def discovery(op: Provider) -> dict[str, Any]:
    answer = httpx.get(op.discovery_url, timeout=10)
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    return document


@pytest.fixture(scope="module")
def keys(discovery: dict[str, Any]) -> KeySet:
    answer = httpx.get(discovery["jwks_uri"], timeout=10)
    answer.raise_for_status()
    return KeySet.import_key_set(answer.json())


def _rp(client: dict[str, Any], **options: Any) -> OAuth2Client:
    """The relying party's client, configured as ordersync.web.oidc.OidcClient configures it."""
    return OAuth2Client(client_id=client["client_id"], client_secret=client["client_secret"], scope=SCOPE,
                        redirect_uri=client["redirect_uris"][0],
                        token_endpoint_auth_method=client["token_endpoint_auth_method"], timeout=10, **options)


def _sign_in(discovery: dict[str, Any], client: dict[str, Any], login: str, password: str = "x",
             browser: httpx.Client | None = None) -> tuple[dict[str, Any], str]:
    """A complete code flow with PKCE: the token response and the nonce it was asked for."""
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    with _rp(client, code_challenge_method="S256") as rp:
        url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], state=state, nonce=nonce,
                                             code_verifier=verifier)
        with contextlib.nullcontext(browser) if browser else httpx.Client(timeout=10) as people:
            answer = login_with_httpx(people, url, login, password)
        params = callback_params(answer)
        assert answer.headers["location"].startswith(client["redirect_uris"][0] + "?")
        assert params["state"] == state
        assert params["iss"] == discovery["issuer"]  # RFC 9207: the provider names itself in the answer
        token = dict(rp.fetch_token(discovery["token_endpoint"], code=params["code"], code_verifier=verifier,
                                    grant_type="authorization_code"))
    return token, nonce


def _verify(token: str, keys: KeySet, *, issuer: str, audience: str, nonce: str) -> dict[str, Any]:
    """The hub's ID token check (ordersync.web.oidc.OidcClient.verify): RS256 against the provider's keys,
    then iss, aud, sub, exp and nonce."""
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    registry = jwt.JWTClaimsRegistry(leeway=60, iss={"essential": True, "value": issuer},
                                     aud={"essential": True, "value": audience}, sub={"essential": True},
                                     exp={"essential": True}, nonce={"essential": True, "value": nonce})
    registry.validate(decoded.claims)
    return dict(decoded.claims)


def test_discovery_publishes_what_the_hub_needs(op: Provider, discovery: dict[str, Any]) -> None:
    assert op.issuer == f"http://127.0.0.1:{op.port}"
    assert discovery["issuer"] == op.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                     "end_session_endpoint"):
        assert discovery[endpoint].startswith(op.issuer + "/"), endpoint
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["response_types_supported"] == ["code"]
    assert set(SCOPE.split()) <= set(discovery["scopes_supported"])
    assert {"email", "email_verified", "name", "roles"} <= set(discovery["claims_supported"])
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(discovery["token_endpoint_auth_methods_supported"])


def test_the_code_flow_with_pkce_gives_a_verifiable_id_token_with_email_name_and_roles(
        op: Provider, discovery: dict[str, Any], keys: KeySet) -> None:
    token, nonce = _sign_in(discovery, HUB, "fiona")

    claims = _verify(token["id_token"], keys, issuer=op.issuer, audience=HUB["client_id"], nonce=nonce)
    assert claims["sub"] == "u-fiona"
    assert claims["email"] == "fiona@kestrel.example"
    assert claims["email_verified"] is True
    assert claims["name"] == "Fiona Finance"
    assert claims["roles"] == ["grp-finance", "grp-ops"]
    assert "password" not in claims
    header = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).header
    assert header["alg"] == "RS256"
    assert header["kid"] in {key.kid for key in keys.keys}


def test_the_access_token_reads_the_same_claims_from_userinfo(discovery: dict[str, Any]) -> None:
    token, _ = _sign_in(discovery, HUB, "fiona")
    answer = httpx.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"},
                       timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"sub": "u-fiona", "email": "fiona@kestrel.example", "email_verified": True,
                             "name": "Fiona Finance", "roles": ["grp-finance", "grp-ops"]}


def test_a_client_authenticating_with_client_secret_post_signs_in_too(
        op: Provider, discovery: dict[str, Any], keys: KeySet) -> None:
    token, nonce = _sign_in(discovery, POSTING, "sam", password="correct horse battery")

    claims = _verify(token["id_token"], keys, issuer=op.issuer, audience=POSTING["client_id"], nonce=nonce)
    assert (claims["sub"], claims["email"], claims["email_verified"], claims["roles"]) == (
        "u-sam", "sam@rheinland.example", False, [])


def test_a_wrong_nonce_audience_issuer_or_signature_is_refused(
        op: Provider, discovery: dict[str, Any], keys: KeySet) -> None:
    token, nonce = _sign_in(discovery, HUB, "fiona")
    id_token = token["id_token"]

    with pytest.raises(InvalidClaimError, match="nonce"):
        _verify(id_token, keys, issuer=op.issuer, audience=HUB["client_id"], nonce="another-sign-in")
    with pytest.raises(InvalidClaimError, match="aud"):
        _verify(id_token, keys, issuer=op.issuer, audience="another-client", nonce=nonce)
    with pytest.raises(InvalidClaimError, match="iss"):
        _verify(id_token, keys, issuer="http://127.0.0.1:1", audience=HUB["client_id"], nonce=nonce)
    stranger = KeySet([RSAKey.generate_key(2048, parameters={"kid": str(keys.keys[0].kid)})])  # same kid, other key
    with pytest.raises(BadSignatureError):
        _verify(id_token, stranger, issuer=op.issuer, audience=HUB["client_id"], nonce=nonce)
    with pytest.raises(MissingClaimError, match="nonce"):  # a token minted without a nonce would not do either
        registry = jwt.JWTClaimsRegistry(nonce={"essential": True, "value": nonce})
        registry.validate({k: v for k, v in jwt.decode(id_token, keys).claims.items() if k != "nonce"})


def test_pkce_is_required(op: Provider, discovery: dict[str, Any]) -> None:
    with _rp(HUB) as rp, httpx.Client(timeout=10) as browser:  # no code_challenge_method: no PKCE
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32))
        assert "code_challenge" not in url
        answer = browser.get(url)

    params = callback_params(answer)
    assert answer.headers["location"].startswith(CALLBACK + "?")
    assert params["state"] == state
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_the_code_exchange_needs_the_right_verifier_and_a_code_works_once(discovery: dict[str, Any]) -> None:
    verifier = generate_token(64)
    with _rp(HUB, code_challenge_method="S256") as rp, httpx.Client(timeout=10) as browser:
        url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32),
                                             code_verifier=verifier)
        code = callback_params(login_with_httpx(browser, url, "fiona"))["code"]
        with pytest.raises(OAuthError, match="invalid_grant"):
            rp.fetch_token(discovery["token_endpoint"], code=code, code_verifier=generate_token(64),
                           grant_type="authorization_code")
        token = rp.fetch_token(discovery["token_endpoint"], code=code, code_verifier=verifier,
                               grant_type="authorization_code")
        assert token["id_token"]
        with pytest.raises(OAuthError, match="invalid_grant"):  # replayed
            rp.fetch_token(discovery["token_endpoint"], code=code, code_verifier=verifier,
                           grant_type="authorization_code")


def test_a_wrong_secret_is_refused_at_the_token_endpoint(discovery: dict[str, Any]) -> None:
    verifier = generate_token(64)
    with _rp(HUB, code_challenge_method="S256") as rp, httpx.Client(timeout=10) as browser:
        url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32),
                                             code_verifier=verifier)
        code = callback_params(login_with_httpx(browser, url, "fiona"))["code"]
    with _rp({**HUB, "client_secret": "not-the-secret"}) as intruder, pytest.raises(OAuthError, match="invalid_client"):
        intruder.fetch_token(discovery["token_endpoint"], code=code, code_verifier=verifier,
                             grant_type="authorization_code")


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(discovery: dict[str, Any]) -> None:
    with _rp({**HUB, "redirect_uris": ["http://evil.example/callback"]}, code_challenge_method="S256") as rp, \
            httpx.Client(timeout=10) as browser:
        url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32),
                                             code_verifier=generate_token(64))
        with pytest.raises(OidcProviderError, match="redirect_uri"):
            login_with_httpx(browser, url, "fiona")


def test_a_wrong_password_or_unknown_login_shows_the_form_again(discovery: dict[str, Any]) -> None:
    for login, password in (("sam", "wrong password"), ("nobody", "x")):
        with _rp(HUB, code_challenge_method="S256") as rp, httpx.Client(timeout=10) as browser:
            url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32),
                                                 code_verifier=generate_token(64))
            with pytest.raises(OidcProviderError, match="Wrong login or password"):
                login_with_httpx(browser, url, login, password)


def test_the_login_page_is_the_documented_form_and_cancel_answers_access_denied(discovery: dict[str, Any]) -> None:
    with _rp(HUB, code_challenge_method="S256") as rp, httpx.Client(timeout=10) as browser:
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"], nonce=generate_token(32),
                                                 code_verifier=generate_token(64), login_hint="fiona")
        page = browser.get(url, follow_redirects=True)
        assert page.status_code == 200
        html = page.text
        for needle in ('<form id="login-form" method="post"', 'name="login"', 'value="fiona"',
                       '<input id="password" name="password" type="password"', '<button id="submit" type="submit">',
                       '<label for="login">', '<label for="password">', '<a id="cancel" href="'):
            assert needle in html, needle
        cancel = html.split('<a id="cancel" href="', 1)[1].split('"', 1)[0]
        answer = browser.get(httpx.URL(str(page.url)).join(cancel), follow_redirects=False)
        while answer.is_redirect and not answer.headers["location"].startswith(CALLBACK):
            answer = browser.get(answer.headers["location"], follow_redirects=False)

    params = callback_params(answer)
    assert (params["error"], params["state"]) == ("access_denied", state)


def test_the_provider_session_signs_in_again_without_a_form_until_logout(
        op: Provider, discovery: dict[str, Any], keys: KeySet) -> None:
    with httpx.Client(timeout=10) as browser:
        token, _ = _sign_in(discovery, HUB, "fiona", browser=browser)
        assert any(cookie.name == "op_session" for cookie in browser.cookies.jar)
        again, nonce = _sign_in(discovery, HUB, "sam", password="wrong", browser=browser)  # no form: still fiona
        assert _verify(again["id_token"], keys, issuer=op.issuer, audience=HUB["client_id"], nonce=nonce)["sub"] == \
            "u-fiona"

        end = httpx.URL(discovery["end_session_endpoint"], params={
            "id_token_hint": token["id_token"], "post_logout_redirect_uri": SIGNED_OUT, "state": "bye"})
        answer = logout_with_httpx(browser, str(end))
        assert answer.headers["location"] == f"{SIGNED_OUT}?state=bye"

        with pytest.raises(OidcProviderError, match="Wrong login or password"):  # the form is back
            _sign_in(discovery, HUB, "sam", password="wrong", browser=browser)
