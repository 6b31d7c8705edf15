"""People, not keys (issue 17): invitations, roles, sign-in floods, spoofed actors and cookies behind
proxies, over the real app with the ERP twin (the OpenID Connect sign-in against a real provider is in
tests/integration/test_oidc_signin.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import OrderState
from ordersync.config import WebSettings
from ordersync.server import create_app
from ordersync.web.people import People
from tests.support.hub import api_key, erp_hub, order, place, record, settle
from tests.support.people import PASSWORD, buyer, staff

ATTACKER = ("198.51.100.7", 40000)


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Any:
    # 20 failures per source (the default is 100): the floods below stay 200 requests, fewer are hashed
    h = erp_hub(tmp_path, {"main": erp}, web=WebSettings(trusted_proxies=["10.0.0.0/8"], signin_failures_per_source=20))
    yield h
    h.close()


@pytest.fixture
def app(hub: Any) -> Any:
    return create_app(hub)


def browser(app: Any, peer: tuple[str, int] = ("192.0.2.10", 50000), **headers: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=True, follow_redirects=False, client=peer, headers=headers)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def ops_signin(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/ops/signin", data={"email": email, "password": password, "next": "/ops"})


def portal_signin(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/portal/signin", data={"email": email, "password": password, "next": "/portal/catalog"})


def held_credit_case(hub: Any, po: str = "PO-HELD") -> tuple[str, str]:
    order_id = place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external=po)).order_id
    settle(hub)
    with hub.uow() as uow:
        [case] = uow.cases.open_for_order(order_id)
    assert record(hub, order_id).state is OrderState.ON_HOLD
    return order_id, case.id


# -- invitations -----------------------------------------------------------------------------------------

def test_an_admin_invites_a_finance_clerk_who_chooses_a_password_and_signs_in(app: Any, hub: Any) -> None:
    admin = browser(app)
    assert ops_signin(admin, staff(hub, "admin", name="Ada Admin")).status_code == 303
    page = admin.get("/ops/people").text
    r = admin.post("/ops/people/invite", data={"csrf": csrf(page), "email": "fiona@kestrel.example",
                                               "name": "Fiona Finance", "kind": "staff", "roles": ["finance"]})
    assert r.status_code == 303 and r.headers["location"] == "/ops/people"
    shown = admin.get("/ops/people").text
    link = re.search(r'id="invite-link">https?://[^/]+(/ops/invite/[^<]+)<', shown)
    assert link, shown
    assert 'id="invite-link"' not in admin.get("/ops/people").text  # shown once
    assert "fiona@kestrel.example" in shown and "invited" in shown

    fiona = browser(app)
    form = fiona.get(link.group(1))
    assert form.status_code == 200 and "Fiona Finance" in form.text and "finance" in form.text
    r = fiona.post(link.group(1), data={"password": "short", "repeat": "short"})
    assert r.status_code == 422 and "12 characters" in r.text
    r = fiona.post(link.group(1), data={"password": "ledger-and-ledger", "repeat": "ledger-and-ledgers"})
    assert r.status_code == 422 and "differ" in r.text
    r = fiona.post(link.group(1), data={"password": "ledger-and-ledger", "repeat": "ledger-and-ledger"})
    assert r.status_code == 303 and r.headers["location"] == "/ops"
    assert 'id="operator"' in fiona.get("/ops").text and "Fiona Finance" in fiona.get("/ops").text
    assert browser(app).get(link.group(1)).status_code == 404  # used
    assert ops_signin(browser(app), "fiona@kestrel.example", "ledger-and-ledger").status_code == 303

    clerk = browser(app)  # only admins invite
    ops_signin(clerk, "fiona@kestrel.example", "ledger-and-ledger")
    r = clerk.post("/ops/people/invite", data={"csrf": csrf(clerk.get("/ops/people").text),
                                               "email": "x@kestrel.example", "kind": "staff", "roles": ["admin"]})
    assert r.status_code == 403 and People(hub.db, hub.clock).find("x@kestrel.example") is None


def test_a_buyer_admin_invites_a_colleague_of_their_own_account_only(app: Any, hub: Any) -> None:
    admin = browser(app)
    assert portal_signin(admin, buyer(hub, account="C-1001", roles=("admin",), name="Rita Ries")).status_code == 303
    page = admin.get("/portal/people")
    assert page.status_code == 200 and "People of C-1001" in page.text
    r = admin.post("/portal/people/invite", data={"csrf": csrf(page.text), "email": "sam@rheinland.example",
                                                  "name": "Sam", "roles": "buyer"})
    assert r.status_code == 303
    link = re.search(r'id="invite-link">https?://[^/]+(/portal/invite/[^<]+)<', admin.get("/portal/people").text)
    assert link
    sam = browser(app)
    r = sam.post(link.group(1), data={"name": "Sam Sommer", "password": "bearings-by-the-box",
                                      "repeat": "bearings-by-the-box"})
    assert r.status_code == 303
    catalog = sam.get("/portal/catalog").text
    assert 'id="account">C-1001<' in catalog and "Sam Sommer" in catalog and 'id="nav-people"' not in catalog
    assert sam.get("/portal/people").status_code == 403  # a buyer, not the account's admin
    person = People(hub.db, hub.clock).find("sam@rheinland.example")
    assert person is not None and person.account_id == "C-1001" and person.invited_by == "Rita Ries <" + \
        person.invited_by.split("<", 1)[1]  # type: ignore[union-attr]

    other = People(hub.db, hub.clock).find(buyer(hub, account="C-1002"))
    assert other is not None
    r = admin.post(f"/portal/people/{other.id}/disable", data={"csrf": csrf(admin.get("/portal/people").text)})
    assert r.status_code == 404 and People(hub.db, hub.clock).get(other.id).active  # another account's person


def test_a_viewer_sees_but_cannot_order(app: Any, hub: Any) -> None:
    viewer = browser(app)
    portal_signin(viewer, buyer(hub, account="C-1001", roles=("viewer",)))
    assert viewer.get("/portal/orders").status_code == 200
    r = viewer.post("/portal/cart/checkout", data={"csrf": csrf(viewer.get("/portal/catalog").text)})
    assert r.status_code == 403 and "does not allow this" in r.text


# -- probes: floods, spoofing, proxies ---------------------------------------------------------------------

@pytest.mark.parametrize("area", ["portal", "ops"])
def test_a_sign_in_flood_from_one_source_locks_nobody_else_out(app: Any, hub: Any, area: str) -> None:
    make = (lambda: buyer(hub, account="C-1001")) if area == "portal" else (lambda: staff(hub, "finance"))
    signin = portal_signin if area == "portal" else ops_signin
    victim, colleague, elsewhere = make(), make(), make()
    regular = browser(app, ATTACKER)  # the colleague's own browser, behind the attacker's proxy
    assert signin(regular, colleague).status_code == 303  # signed in before: the browser is known
    regular.cookies.delete(f"ordersync_{area}")

    attacker = browser(app, ATTACKER)
    answers = [signin(attacker, victim if i % 2 else f"guess{i}@example.com", f"guess-{i}").status_code
               for i in range(200)]
    assert answers[0] == 401 and answers[-1] == 429 and set(answers) == {401, 429}
    assert sum(a == 401 for a in answers) <= 20  # the source's limit: the rest were not even tried
    r = signin(attacker, victim)  # the right password from the attacker's browser: still waits
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0

    assert signin(regular, colleague).status_code == 303  # same source, known browser: in
    assert signin(browser(app, ("192.0.2.44", 1)), elsewhere).status_code == 303  # another source: in
    assert signin(browser(app, ("192.0.2.45", 1)), victim).status_code == 303  # the victim too, elsewhere

    for i in range(12):  # guesses at the victim's address from many sources: unknown browsers wait...
        signin(browser(app, (f"203.0.113.{i}", 1)), victim, f"guess-{i}")
    assert signin(browser(app, ("192.0.2.47", 1)), victim).status_code == 429
    # ...but not the victim's own browser, known from an earlier sign-in (its device cookie)
    own = browser(app, ("192.0.2.46", 1))
    own.cookies.set("ordersync_device", _device(victim))
    assert signin(own, victim).status_code == 303


def _device(email: str) -> str:
    from ordersync.web.signin import device_cookie

    return device_cookie(email)


def test_an_action_is_recorded_under_the_person_never_a_name_the_caller_states(app: Any, hub: Any) -> None:
    order_id, case_id = held_credit_case(hub)
    clerk = browser(app)
    ops_signin(clerk, staff(hub, "finance", name="Fiona Finance", email="fiona@kestrel.example"))
    page = clerk.get(f"/ops/cases/{case_id}").text
    r = clerk.post(f"/ops/cases/{case_id}/actions", data={"csrf": csrf(page), "action": "release_hold",
                                                         "actor": "ceo@kestrel.example", "comment": "paid"})
    assert r.status_code == 303
    with hub.uow() as uow:
        history = uow.cases.get(case_id).history
    assert history[-1].actor == "Fiona Finance <fiona@kestrel.example>"
    assert all("ceo" not in h.actor for h in history)

    _, other_case = held_credit_case(hub, "PO-HELD-2")
    key = api_key(hub, "ops", client="ops")
    r = TestClient(app).post(f"/v1/ops/cases/{other_case}/actions", headers={"Authorization": f"Bearer {key}"},
                             json={"action": "assign", "owner_team": "finance-lead", "actor": "ceo@kestrel.example"})
    assert r.status_code == 200, r.text
    last = r.json()["case"]["history"][-1]
    assert last["actor"] == f"key:{key.split('_')[1]} (test)" and "[stated by the caller: ceo@kestrel.example]" in \
        last["comment"]
    settle(hub)
    assert record(hub, order_id).state is OrderState.ACCEPTED


def test_roles_decide_who_decides_and_anyone_hands_a_case_on(app: Any, hub: Any) -> None:
    order_id, case_id = held_credit_case(hub)
    carla = browser(app)
    ops_signin(carla, staff(hub, "commerce", name="Carla Commerce"))
    page = carla.get(f"/ops/cases/{case_id}").text
    r = carla.post(f"/ops/cases/{case_id}/actions", data={"csrf": csrf(page), "action": "release_hold"})
    assert r.status_code == 403 and "do not act on credit_hold cases" in r.text
    settle(hub)
    assert record(hub, order_id).state is OrderState.ON_HOLD
    r = carla.post(f"/ops/cases/{case_id}/actions", data={"csrf": csrf(page), "action": "assign",
                                                         "owner_team": "finance-lead"})
    assert r.status_code == 303


def test_cookies_are_secure_behind_a_trusted_tls_proxy_and_forwarded_headers_count_only_from_it(
        app: Any, hub: Any) -> None:
    email = buyer(hub, account="C-1001")
    proxied = browser(app, ("10.0.0.2", 1), **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"})
    r = portal_signin(proxied, email)
    cookies = r.headers.get_list("set-cookie")
    assert r.status_code == 303 and all("Secure" in c for c in cookies), cookies

    spoofing = browser(app, ("203.0.113.5", 1), **{"X-Forwarded-Proto": "https"})  # not a trusted proxy
    r = portal_signin(spoofing, email)
    assert r.status_code == 303 and not any("Secure" in c for c in r.headers.get_list("set-cookie"))

    # the throttle counts the forwarded client behind the trusted proxy, and the peer elsewhere: a client
    # that invents X-Forwarded-For addresses does not escape it
    liar = browser(app, ATTACKER)
    for i in range(120):
        liar.headers["X-Forwarded-For"] = f"192.0.2.{i % 250}"
        portal_signin(liar, f"nobody{i}@example.com", "wrong-password")
    assert portal_signin(liar, email).status_code == 429
    other_client = browser(app, ("10.0.0.2", 1), **{"X-Forwarded-For": "198.51.100.10"})
    assert portal_signin(other_client, email).status_code == 303

    always = WebSettings(secure_cookies="always")
    hub.settings.web.__dict__["secure_cookies"] = always.secure_cookies  # a frozen model: as configured
    r = portal_signin(browser(app, ("192.0.2.60", 1)), email)
    assert all("Secure" in c for c in r.headers.get_list("set-cookie"))


def test_replaying_dead_letters_resending_edi_and_mapping_shopify_need_their_roles(app: Any, hub: Any) -> None:
    clerk = browser(app)
    ops_signin(clerk, staff(hub, "finance"))
    token = csrf(clerk.get("/ops/dead-letters").text)
    r = clerk.post("/ops/dead-letters/replay", data={"csrf": token, "ids": ["x"]})
    assert r.status_code == 403 and "needs one of the roles operations" in r.text
    r = clerk.post("/ops/edi/x/resend", data={"csrf": token})
    assert r.status_code == 403
    r = clerk.post("/ops/shopify/map", data={"csrf": token, "shop": "s", "location": "l", "account": "a"})
    assert r.status_code == 403 and "operations, commerce" in r.text


def test_no_dashboard_address_answers_json_and_a_reloaded_form_goes_back_to_its_page(app: Any, hub: Any) -> None:
    clerk = browser(app)
    assert clerk.get("/ops/no-such-page").status_code == 404  # signed out: a page too
    assert "text/html" in clerk.get("/ops/no-such-page").headers["content-type"]
    ops_signin(clerk, staff(hub))
    r = clerk.get("/ops/no/such/page")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"] and 'id="missing"' in r.text
    assert clerk.get("/ops/cases/abc/actions").headers["location"] == "/ops/cases/abc"  # a reloaded action
    assert clerk.get("/ops/people/invite").headers["location"] == "/ops/people"
    assert clerk.put("/ops/people").headers["location"] == "/ops/people"


def test_refusals_on_the_pages_are_pages_and_on_the_api_problem_documents(app: Any, hub: Any) -> None:
    clerk = browser(app)
    ops_signin(clerk, staff(hub))
    r = clerk.post("/ops/signout", data={"csrf": "stale"})  # a stale form
    assert r.status_code == 403 and "text/html" in r.headers["content-type"] and 'id="error-detail"' in r.text
    r = clerk.get("/ops/cases", params={"view": "x" * 300})  # a field over its length
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    r = clerk.get("/v1/orders/x")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
