"""Signing in to the dashboard and the portal with OpenID Connect, against a real certified provider
(``oidc-provider`` on Node, tests/support/oidc.py): the hub's own code flow (Authlib, PKCE, state, nonce;
joserfc for the ID token), staff created from the provider's roles, buyers linked only when invited and
their address verified, and the refusals a person sees."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.config import OidcSettings, WebSettings
from ordersync.server import create_app
from ordersync.web.people import BUYER, People
from tests.support.hub import erp_hub
from tests.support.oidc import Provider, login_with_httpx, oidc_provider

CLIENT: dict[str, Any] = {"client_id": "ordersync", "client_secret": "hub-secret-0123456789",
                          "redirect_uris": ["http://testserver/ops/oidc/callback",
                                            "http://testserver/portal/oidc/callback"],
                          "token_endpoint_auth_method": "client_secret_basic"}
ACCOUNTS: dict[str, dict[str, Any]] = {
    "olga": {"sub": "u-olga", "email": "olga@kestrel.example", "email_verified": True, "name": "Olga Operations",
             "roles": ["grp-ops", "grp-unrelated"]},
    "fiona": {"sub": "u-fiona", "email": "fiona@kestrel.example", "email_verified": True, "name": "Fiona Finance",
              "roles": ["finance"]},
    "nora": {"sub": "u-nora", "email": "nora@kestrel.example", "email_verified": True, "name": "Nora Nobody",
             "roles": ["grp-canteen"]},
    "rita": {"sub": "u-rita", "email": "rita@rheinland.example", "email_verified": True, "name": "Rita Ries",
             "roles": []},
    "mallory": {"sub": "u-mallory", "email": "sam@rheinland.example", "email_verified": False,
                "name": "Mallory", "roles": []},
}


@pytest.fixture(scope="module")
def op() -> Iterator[Provider]:
    with oidc_provider(clients=[CLIENT], accounts=ACCOUNTS) as provider:
        yield provider


@pytest.fixture
def hub(tmp_path: Path, op: Provider) -> Any:
    oidc = OidcSettings(issuer=op.issuer, client_id=CLIENT["client_id"], client_secret=CLIENT["client_secret"],
                        display_name="Kestrel login", role_map={"grp-ops": "operations"})
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, web=WebSettings(oidc=oidc))
    yield h
    h.close()


@pytest.fixture
def app(hub: Any) -> Any:
    return create_app(hub)


def sign_in(app: Any, area: str, login: str) -> tuple[TestClient, httpx.Response]:
    """A browser's whole round: start at the hub, sign in at the provider, come back; the hub's answer."""
    hub = TestClient(app, follow_redirects=False)
    start = hub.get(f"/{area}/oidc/start")
    assert start.status_code == 303, start.text
    with httpx.Client(timeout=10) as browser:
        back = login_with_httpx(browser, start.headers["location"], login)
    callback = urlsplit(back.headers["location"])
    assert callback.path == f"/{area}/oidc/callback"
    return hub, hub.get(f"{callback.path}?{callback.query}")


def continues(answer: httpx.Response) -> str:
    """Where the callback's page moves on to (a page, not a redirect: see ``doors.continue_to``)."""
    assert answer.status_code == 200, answer.text
    found = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', answer.text)
    assert found and 'id="continue"' in answer.text
    return found.group(1)


def test_staff_sign_in_with_the_provider_and_get_their_roles_from_its_claims(app: Any, hub: Any) -> None:
    page = TestClient(app).get("/ops/signin")
    assert 'id="signin-oidc"' in page.text and "Sign in with Kestrel login" in page.text
    browser, answer = sign_in(app, "ops", "olga")
    assert continues(answer) == "/ops", answer.text
    assert "Olga Operations" in browser.get("/ops").text
    olga = People(hub.db, hub.clock).find("olga@kestrel.example")
    assert olga is not None and olga.roles == ("operations",) and olga.oidc_linked and not olga.has_password

    _, answer = sign_in(app, "ops", "fiona")  # a claim value that is a role name needs no mapping
    assert continues(answer) == "/ops"
    assert People(hub.db, hub.clock).find("fiona@kestrel.example").roles == ("finance",)  # type: ignore[union-attr]


def test_an_identity_without_an_ordersync_role_is_refused_and_nobody_is_created(app: Any, hub: Any) -> None:
    browser, answer = sign_in(app, "ops", "nora")
    assert answer.status_code == 403 and "gives you no ordersync role" in html.unescape(answer.text)
    assert "ordersync_ops=" not in answer.headers.get("set-cookie", "")
    assert People(hub.db, hub.clock).find("nora@kestrel.example") is None
    assert browser.get("/ops").status_code == 303


def test_a_buyer_signs_in_with_the_provider_only_when_invited_and_their_address_is_verified(
        app: Any, hub: Any) -> None:
    _, answer = sign_in(app, "portal", "rita")  # not invited yet
    assert answer.status_code == 403 and "ask your company's admin to invite you" in html.unescape(answer.text)

    people = People(hub.db, hub.clock)
    people.invite(BUYER, "rita@rheinland.example", "Rita", ["admin"], account_id="C-1001", invited_by="tests")
    people.invite(BUYER, "sam@rheinland.example", "Sam", ["buyer"], account_id="C-1001", invited_by="tests")
    browser, answer = sign_in(app, "portal", "rita")
    assert continues(answer) == "/portal/catalog"
    assert 'id="account">C-1001<' in browser.get("/portal/catalog").text
    rita = people.find("rita@rheinland.example")
    assert rita is not None and rita.active and rita.oidc_linked and rita.roles == ("admin",)  # roles stay ours

    # an identity claiming an invited buyer's address without the provider verifying it links nothing
    _, answer = sign_in(app, "portal", "mallory")
    assert answer.status_code == 403
    sam = people.find("sam@rheinland.example")
    assert sam is not None and sam.state == "invited" and not sam.oidc_linked

    _, answer = sign_in(app, "ops", "rita")  # a buyer's identity is no staff member
    assert answer.status_code == 403 and "belongs to a buyer" in html.unescape(answer.text)


def test_a_callback_this_browser_did_not_start_or_with_another_state_is_refused(app: Any, hub: Any) -> None:
    hub_client = TestClient(app, follow_redirects=False)
    start = hub_client.get("/ops/oidc/start")
    with httpx.Client(timeout=10) as browser:
        back = login_with_httpx(browser, start.headers["location"], "olga")
    callback = urlsplit(back.headers["location"])
    forged = callback.query.replace("state=", "state=x")
    answer = hub_client.get(f"{callback.path}?{forged}")
    assert answer.status_code == 403 and "state mismatch" in html.unescape(answer.text)
    stranger = TestClient(app, follow_redirects=False)  # no flow cookie: someone else's callback
    answer = stranger.get(f"{callback.path}?{callback.query}")
    assert answer.status_code == 403 and "started in another browser" in html.unescape(answer.text)
    assert People(hub.db, hub.clock).find("olga@kestrel.example") is None
