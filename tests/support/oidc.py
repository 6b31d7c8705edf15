"""A real, certified OpenID provider for sign-in tests: panva's ``oidc-provider`` 8.x run by Node.

Why the real thing: the hub's OpenID Connect sign-in must meet a provider that enforces what real ones
do (PKCE S256 on every code flow, exact redirect URIs, client authentication, RS256-signed ID tokens,
one-time codes). A fake written here would only agree with our own reading of the specs.

    with oidc_provider(clients=[{"client_id": "ordersync", "client_secret": "s3cret",
                                 "redirect_uris": [f"{base}/ops/oidc/callback", f"{base}/portal/oidc/callback"]}],
                       accounts={"fiona": {"sub": "u-fiona", "email": "fiona@kestrel.example", "email_verified": True,
                                           "name": "Fiona Finance", "roles": ["grp-finance"]}}) as op:
        settings = OidcSettings(issuer=op.issuer, client_id="ordersync", client_secret="s3cret")
        ...
        answer = login_with_httpx(httpx.Client(), authorize_url, "fiona")  # the redirect back to the hub
        hub.get(answer.headers["location"])                                 # e.g. through a TestClient

The provider (``tests/support/oidc/provider.mjs``) serves ``http://127.0.0.1:<port>`` (the issuer, no
trailing slash), scopes ``openid email profile roles``, and puts every granted claim in the ID token
(``roles`` included). Consent is never asked. Clients are oidc-provider client metadata: ``client_id``,
``client_secret``, ``redirect_uris``, ``post_logout_redirect_uris``, ``token_endpoint_auth_method``
(default ``client_secret_basic``; ``client_secret_post``, or ``none`` for a public client). Accounts map a
login name to claims (``sub`` required; ``email``, ``email_verified``, ``name``, ``roles``: a list of strings);
an optional ``password`` is checked, without one any non-empty password is accepted.

The login page, for Playwright and httpx (constants below):
- ``form#login-form`` posting to ``/interaction/<uid>/login``;
- ``input[name="login"]`` (``#login``, label "Login") and ``input[name="password"]`` (``#password``, label
  "Password");
- ``button#submit`` (``type="submit"``, text "Sign in");
- a wrong login or password shows the form again with ``#error`` (``role="alert"``);
- ``a#cancel`` ends the sign-in: the client gets ``error=access_denied``.
RP-initiated logout (``end_session_endpoint``) asks for confirmation: ``button#submit`` ("Sign out").

The provider keeps a session cookie: a second sign-in with the same browser or httpx client is single
sign-on (no form; the person who signed in first). Use a fresh context or client per person.

Node's packages are installed by :func:`ensure_installed` (``npm ci`` from the committed lock, on first use,
again only when the lock changes). Without node/npm, or without the registry, tests skip and say why,
unless ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

from tests.support.services import in_ci

HERE = Path(__file__).resolve().parent / "oidc"
PROVIDER_SCRIPT = HERE / "provider.mjs"
LOCK_FILE = HERE / "package-lock.json"
STAMP = "node_modules/.ordersync-lock.sha256"
HOST = "127.0.0.1"
MIN_NODE = (18, 0)
START_TIMEOUT = 30.0

# the login page's selectors (Playwright: page.fill(LOGIN_FIELD, "fiona"); page.click(SUBMIT_BUTTON))
LOGIN_FORM = "form#login-form"
LOGIN_FIELD = 'input[name="login"]'
PASSWORD_FIELD = 'input[name="password"]'
SUBMIT_BUTTON = "#submit"
LOGIN_ERROR = "#error"
CANCEL_LINK = "a#cancel"


class OidcProviderError(RuntimeError):
    """The provider did not start, or a sign-in through it did not go as a browser's would."""


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the OpenID provider tests must run)")
    pytest.skip(reason)


# ------------------------------------------------------------------------------------------ installing


def _node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.(\d+)", out.stdout.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def node_binary() -> str:
    """The ``node`` on PATH (>= 18, as oidc-provider 8 needs), or skip/fail."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (oidc-provider needs Node.js >= 18): install the nodejs package")
    version = _node_version(node)
    if version is None or version < MIN_NODE:
        _unavailable(f"{node} is not Node.js >= 18 (found {version}); oidc-provider 8 needs it")
    return node


def _lock_digest() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes() + (HERE / "package.json").read_bytes()).hexdigest()


def _installed(digest: str) -> bool:
    stamp = HERE / STAMP
    return stamp.is_file() and stamp.read_text().strip() == digest and (HERE / "node_modules/oidc-provider").is_dir()


def ensure_installed() -> Path:
    """``tests/support/oidc`` with its ``node_modules`` installed by ``npm ci`` from the committed lock.

    Runs npm only when the lock (or package.json) changed since the last install, under a file lock so
    that parallel test runs in this tree do not install over each other. Skips (fails under CI=true) when
    node or npm is missing or npm cannot install."""
    node_binary()
    digest = _lock_digest()
    if _installed(digest):
        return HERE
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed: it installs oidc-provider for the OpenID provider tests")
    lock_path = Path(tempfile.gettempdir()) / f"ordersync-oidc-npm-{hashlib.sha256(bytes(HERE)).hexdigest()[:12]}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(digest):  # another run installed it while we waited
            return HERE
        command = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"]
        try:
            done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"npm ci in {HERE} did not finish: {exc}")
        if done.returncode != 0:
            _unavailable(f"npm ci in {HERE} failed ({done.returncode}; is the npm registry reachable?): "
                         f"{(done.stderr or done.stdout)[-800:]}")
        (HERE / STAMP).write_text(digest + "\n")
    return HERE


# ------------------------------------------------------------------------------------------ running


@dataclass
class Provider:
    """A running provider: its issuer (``http://127.0.0.1:<port>``), port and node process."""

    issuer: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log_tail(self, chars: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _start(node: str, config: Path, port: int, log: Path) -> Provider:
    issuer = f"http://{HOST}:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen([node, str(PROVIDER_SCRIPT), str(config)], cwd=HERE, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    provider = Provider(issuer=issuer, port=port, process=process, log=log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return provider  # the caller reads the exit code (98: the port was taken)
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(provider.discovery_url, timeout=2.0)
            if answer.status_code == 200 and answer.json().get("issuer") == issuer:
                return provider
        time.sleep(0.1)
    _stop(process)
    raise OidcProviderError(f"oidc-provider did not answer {provider.discovery_url} within {START_TIMEOUT:.0f}s:\n"
                            f"{provider.log_tail()}")


@contextlib.contextmanager
def oidc_provider(clients: list[dict[str, Any]], accounts: dict[str, dict[str, Any]],
                  port: int | None = None) -> Iterator[Provider]:
    """Run oidc-provider with these clients and accounts (see the module's docstring) on ``port`` (default:
    a free one) until the block ends. Installs it first (:func:`ensure_installed`)."""
    ensure_installed()
    node = node_binary()
    with tempfile.TemporaryDirectory(prefix="ordersync-oidc-") as tmp:
        attempts = 1 if port is not None else 3  # a free port may be taken between choosing and binding
        provider: Provider | None = None
        for _ in range(attempts):
            chosen = port if port is not None else _free_port()
            config = Path(tmp) / "config.json"
            config.write_text(json.dumps({"port": chosen, "clients": clients, "accounts": accounts}))
            provider = _start(node, config, chosen, Path(tmp) / "provider.log")
            if provider.process.poll() is None:
                break
            if provider.process.returncode != 98:  # not "address in use": retrying will not help
                break
        assert provider is not None
        if provider.process.poll() is not None:
            raise OidcProviderError(f"oidc-provider exited ({provider.process.returncode}):\n{provider.log_tail()}")
        try:
            yield provider
        finally:
            _stop(provider.process)


# ------------------------------------------------------------------------------------------ signing in


class _Forms(HTMLParser):
    """The forms of a page: action, method and the inputs' default values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.error = ""
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""), "method": attributes.get("method", "get"),
                               "fields": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value", "")
        if attributes.get("id") == "error":
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "dl"):
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error += data


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _page(response: httpx.Response) -> _Forms:
    parser = _Forms()
    parser.feed(response.text)
    return parser


def login_with_httpx(client: httpx.Client, authorize_url: str, login: str, password: str = "x") -> httpx.Response:
    """Sign in as ``login`` the way a browser would, with ``client``'s cookie jar: open ``authorize_url``,
    follow the provider's redirects to its login page, submit it, and follow the provider's redirects
    until one leads off the provider. That redirect (to the relying party's callback, with ``code``,
    ``state`` and ``iss``, or with ``error``) is returned, not followed: send its ``location`` to the app.

    ``client`` must be a plain ``httpx.Client`` on the network (not the app's TestClient, which would send
    the provider's URLs to the app); its cookies are the provider's session (see the module docstring).
    Raises :class:`OidcProviderError` when the login is refused (the form comes back with its error) or
    the provider answers with an error page."""
    provider = _origin(authorize_url)
    response = client.get(authorize_url, follow_redirects=False)
    submitted = False
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if _origin(location) != provider:
                return response
            response = client.get(location, follow_redirects=False)
            continue
        page = _page(response)
        form = next((f for f in page.forms if "login" in f["fields"] and "password" in f["fields"]), None)
        if response.status_code == 200 and form is not None:
            if submitted:
                raise OidcProviderError(f"the provider refused the login {login!r}: {page.error.strip()}")
            fields = {**form["fields"], "login": login, "password": password}
            response = client.post(urljoin(str(response.url), form["action"]), data=fields, follow_redirects=False)
            submitted = True
            continue
        detail = page.error.strip() or response.text[:800]
        raise OidcProviderError(f"the provider answered {response.status_code} at {response.url}: {detail}")
    raise OidcProviderError(f"the sign-in did not leave the provider after 20 steps (last: {response.url})")


def callback_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of the redirect :func:`login_with_httpx` returned (``code``, ``state``, ``iss``,
    or ``error`` and ``error_description``)."""
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def logout_with_httpx(client: httpx.Client, end_session_url: str) -> httpx.Response:
    """RP-initiated logout with ``client``'s cookies: open ``end_session_url`` (the provider's
    ``end_session_endpoint`` with ``id_token_hint``/``client_id`` and ``post_logout_redirect_uri``),
    confirm, and return the provider's last answer: the redirect to ``post_logout_redirect_uri`` (not
    followed), or its "signed out" page when none was given."""
    provider = _origin(end_session_url)
    response = client.get(end_session_url, follow_redirects=False)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if _origin(location) != provider:
                return response
            response = client.get(location, follow_redirects=False)
            continue
        page = _page(response)
        form = next((f for f in page.forms if "xsrf" in f["fields"]), None)
        if response.status_code != 200 or form is None:
            if response.status_code == 200:
                return response
            raise OidcProviderError(f"the provider answered {response.status_code} at {response.url}: "
                                    f"{page.error.strip() or response.text[:800]}")
        response = client.post(urljoin(str(response.url), form["action"]), data={**form["fields"], "logout": "yes"},
                               follow_redirects=False)
    raise OidcProviderError(f"the logout did not finish after 10 steps (last: {response.url})")
