"""Account isolation, walked over every route of the app.

Two accounts of the MemoryErp ``main`` profile get data through the API (an accepted order each, and
invoices and return requests where those routes exist). A key bound to account A, holding every scope
(so that a 403 can only come from isolation, not from a missing scope), then calls each route with its
path parameters and its ``account_id``/``order_id`` fields pointed at account B's resources: the answer
must be 403 or 404, never a 2xx with B's data. The same request pointed at A's own resources must
succeed, which proves the request was well-formed and the 404 was isolation, not a typo.

The walk is data-driven: ``TARGETS`` says how to point each route at an account, ``UNSCOPED`` lists the
routes with no account-scoped data (checked not to leak B's identifiers). A route in neither table fails
the walk, so a new route cannot slip by without someone deciding how it is isolated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.api.keys import Scope
from ordersync.canonical.v1 import CaseType
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub, settle

A, B = "C-1001", "C-1002"
ORDERS = {  # account -> (ship-to, SKU) of the MemoryErp "main" profile
    A: ("RIS-DUS", "BRG-6204-2RS"),
    B: ("AFS-MUC", "SEN-PX-M12-NPN"),
}
# What only B has in the demo profile: its name, ship-to addresses and customer part numbers.
B_STATIC = ("C-1002", "Alpen Field Service", "AFS-MUC", "AFS-NUE", "AFS-HAM", "AFS-SNS-0012", "AFS-VLV-024")


@dataclass
class World:
    """One account's resources, created through the API."""

    account: str
    token: str
    order_id: str = ""
    external: str = ""
    sku: str = ""
    erp_refs: list[str] = field(default_factory=list)
    invoice_ids: list[str] = field(default_factory=list)
    invoice_numbers: list[str] = field(default_factory=list)
    return_ids: list[str] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)

    def dynamic_markers(self) -> list[str]:
        """Identifiers created in this run, long enough to be unique anywhere in a body (ERP references
        of the memory twin contain the order id)."""
        return [i for i in (self.order_id, self.external, *self.return_ids, *self.erp_refs, *self.case_ids) if i]

    def short_ids(self) -> set[str]:
        """ERP document ids and numbers ("32", "2"): unique only as the value of an identifier field."""
        return {*self.invoice_ids, *self.invoice_numbers}


@dataclass
class Call:
    """One request, pointed at some account's resources. ``path`` None: the route's path as it is."""

    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    # "denied": 403 or 404. "empty": a filter within the caller's own account that names the other
    # account's resource: a 2xx is fine as long as none of the other account's data is in it.
    expect: str = "denied"


def _order_body(w: World, external: str) -> dict[str, Any]:
    ship_to, sku = ORDERS[w.account]
    return {"external_order_number": external, "account_id": w.account, "ship_to_id": ship_to,
            "lines": [{"line_no": 1, "sku": sku, "quantity": "10"}]}


# How to point each route at an account's resources. Add a route here (or to UNSCOPED) when it is added.
TARGETS: dict[tuple[str, str], Callable[[World], list[Call]]] = {
    ("POST", "/v1/orders"): lambda w: [Call(json=_order_body(w, f"ISO-NEW-{w.account}"))],
    ("GET", "/v1/orders/{order_id}"): lambda w: [Call(f"/v1/orders/{w.order_id}")],
    ("GET", "/v1/orders"): lambda w: [
        Call(params={"account_id": w.account}),
        Call(params={"external_order_number": w.external}, expect="empty"),
    ],
    ("POST", "/v1/orders/{order_id}/reorder"): lambda w: [
        Call(f"/v1/orders/{w.order_id}/reorder", json={"external_order_number": f"ISO-RE-{w.account}"})],
    ("POST", "/v1/orders/{order_id}/amendments"): lambda w: [
        Call(f"/v1/orders/{w.order_id}/amendments", json={"changes": [{"line_no": 1, "quantity": "9"}]})],
    ("GET", "/v1/invoices"): lambda w: [
        Call(params={"account_id": w.account}),
        Call(params={"order_id": w.order_id}, expect="empty"),
    ],
    ("POST", "/v1/invoices/{invoice_id}/disputes"): lambda w: [
        Call(f"/v1/invoices/{w.invoice_ids[0]}/disputes", json={"reason": "wrong price"}),
        Call(f"/v1/invoices/{w.invoice_ids[0]}/disputes", json={"reason": "wrong price", "account_id": w.account})],
    ("POST", "/v1/returns"): lambda w: [
        Call(json={"order_id": w.order_id, "lines": [{"line_no": 1, "quantity": "1", "reason": "damaged"}]})],
    ("GET", "/v1/returns/{return_id}"): lambda w: [Call(f"/v1/returns/{w.return_ids[0]}")],
    ("GET", "/v1/catalog"): lambda w: [Call(params={"account_id": w.account})],
    ("GET", "/v1/prices"): lambda w: [Call(params={"account_id": w.account, "sku": w.sku})],
    ("GET", "/v1/availability"): lambda w: [Call(params={"account_id": w.account, "sku": w.sku})],
    ("GET", "/v1/ops/cases"): lambda w: [
        Call(params={"account_id": w.account}),
        Call(params={"order_id": w.order_id}, expect="empty"),
    ],
    ("GET", "/v1/ops/cases/{case_id}"): lambda w: [Call(f"/v1/ops/cases/{w.case_ids[0]}")],
    ("POST", "/v1/ops/cases/{case_id}/actions"): lambda w: [
        Call(f"/v1/ops/cases/{w.case_ids[0]}/actions", json={"action": "assign", "owner_team": "iso-team"})],
    ("GET", "/v1/ops/sla"): lambda w: [
        Call(params={"account_id": w.account}),
        Call(params={"group_by": "account"}, expect="empty"),
    ],
}
# Routes with no account-scoped data: answered to A's key without any of B's identifiers.
UNSCOPED = {
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/v1/openapi.json"), ("GET", "/v1/docs"),
    ("GET", "/docs/oauth2-redirect"), ("GET", "/metrics"),
    # the warehouse's webhook: a system-wide key of client wms (the walk's portal key gets 403) whose events
    # may name any account's order; it answers with nothing but the order id the event itself named
    ("POST", "/v1/wms/events"),
    # the operations dashboard: a session of an ops key bound to no account (a bound key cannot sign in,
    # tests/integration/test_web_ops.py); a bearer key gets the sign-in page. /static: files of no account
    ("GET", "/ops"), ("GET", "/ops/signin"), ("POST", "/ops/signin"), ("POST", "/ops/signout"),
    ("GET", "/ops/cases"), ("GET", "/ops/cases/{case_id}"), ("POST", "/ops/cases/{case_id}/actions"),
    ("GET", "/ops/dead-letters"), ("POST", "/ops/dead-letters/preview"), ("POST", "/ops/dead-letters/replay"),
    ("GET", "/ops/orders"), ("GET", "/ops/orders/{order_id}"), ("?", "/static"),
    ("POST", "/ops/filters"), ("POST", "/ops/filters/{filter_id}/delete"),
    ("GET", "/ops/edi"), ("GET", "/ops/edi/{interchange_id}"), ("POST", "/ops/edi/{interchange_id}/resend"),
    ("GET", "/ops/shopify"), ("POST", "/ops/shopify/map/preview"), ("POST", "/ops/shopify/map"),
    # staff sign-in (a password or the identity provider), invitations and the people list: staff only
    ("GET", "/ops/oidc/start"), ("GET", "/ops/oidc/callback"), ("GET", "/ops/invite/{token}"),
    ("POST", "/ops/invite/{token}"), ("GET", "/ops/people"), ("POST", "/ops/people/invite"),
    ("POST", "/ops/people/{person_id}/roles"), ("POST", "/ops/people/{person_id}/disable"),
    # inbound drift and quarantined payloads (system-wide: the WMS and the channels, no account's view)
    ("GET", "/ops/drift"), ("POST", "/ops/drift/{entry_id}/replay"), ("POST", "/ops/drift/{entry_id}/discard"),
    # what no dashboard page answers: a "not found" page or a redirect to the nearest page, no data
    ("GET", "/ops/{rest:path}"), ("POST", "/ops/{rest:path}"), ("PUT", "/ops/{rest:path}"),
    ("PATCH", "/ops/{rest:path}"), ("DELETE", "/ops/{rest:path}"),
    # EDI partners' AS2 messages: no key (AS2 authenticates by signature, docs/edi.md); it keeps what it is
    # sent and answers with an MDN naming only the message it received
    ("POST", "/as2"),
    # Shopify's webhooks: no key (Shopify signs each body with the app's secret, HMAC-SHA256, docs/shopify.md);
    # a delivery is kept or refused, and the answer names only the event it kept
    ("POST", "/shopify/webhooks"),
    # the buyer portal: a session of a key bound to one account (an unbound key cannot sign in); another
    # account's order, return form and reorder answer 404 to a session (tests/integration/test_web_portal.py);
    # a bearer key without a session gets the sign-in page
    ("GET", "/portal"), ("GET", "/portal/"), ("GET", "/portal/signin"), ("POST", "/portal/signin"),
    ("POST", "/portal/signout"), ("GET", "/portal/cart"), ("POST", "/portal/cart/add"),
    ("POST", "/portal/cart/checkout"), ("POST", "/portal/cart/update"), ("GET", "/portal/catalog"),
    ("GET", "/portal/invoices"), ("GET", "/portal/orders"), ("GET", "/portal/orders/{order_id}"),
    ("POST", "/portal/orders/{order_id}/reorder"), ("GET", "/portal/orders/{order_id}/return"),
    ("POST", "/portal/orders/{order_id}/return"), ("GET", "/portal/returns/{return_id}"),
    # buyers' sign-in and invitations; a buyer admin's people are those of their own account (another
    # account's person is not found: tests/integration/test_people.py)
    ("GET", "/portal/oidc/start"), ("GET", "/portal/oidc/callback"), ("GET", "/portal/invite/{token}"),
    ("POST", "/portal/invite/{token}"), ("GET", "/portal/people"), ("POST", "/portal/people/invite"),
    ("POST", "/portal/people/{person_id}/roles"), ("POST", "/portal/people/{person_id}/disable"),
    # after the order and quick order: a session's own account only (another account's invoice PDF, dispute
    # or confirmation answers 404: tests/integration/test_web_portal_after.py); the catch-all answers every
    # other /portal path with an HTML page (404, or a redirect to the page a form belongs to)
    ("GET", "/portal/invoices/{invoice_id}.pdf"), ("POST", "/portal/invoices/{invoice_id}/dispute"),
    ("GET", "/portal/orders/{order_id}/confirmation.pdf"), ("GET", "/portal/quick-order"),
    ("POST", "/portal/quick-order/add"), ("GET", "/portal/returns"),
    ("GET", "/portal/{rest:path}"), ("POST", "/portal/{rest:path}"), ("PUT", "/portal/{rest:path}"),
    ("PATCH", "/portal/{rest:path}"), ("DELETE", "/portal/{rest:path}"),
}
# Listings a key bound to A reads without naming an account: A's own data only.
LISTINGS = ("/v1/orders", "/v1/invoices", "/v1/catalog")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, included routers flattened; a route without methods (a
    mount, a websocket) is listed with method "?" so that the walk refuses it until it is decided on."""
    found = set()
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or repr(ctx.original_route)
        for method in ctx.methods or {"?"}:
            found.add((method, path))
    return sorted(found, key=lambda r: (r[1], r[0]))


def walk_key(method: str, path: str) -> tuple[str, str]:
    """HEAD is served by the GET handler: it is walked as that GET."""
    return ("GET", path) if method == "HEAD" else (method, path)


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Iterator[Any]:
    h = erp_hub(tmp_path, {"main": erp})
    yield h
    h.close()


@pytest.fixture
def app(hub: Any) -> FastAPI:
    return create_app(hub)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def auth(w: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.token}"}


def served(app: FastAPI, method: str, path: str) -> bool:
    return (method, path) in app_routes(app)


@pytest.fixture
def worlds(hub: Any, erp: MemoryErp, app: FastAPI, client: TestClient) -> dict[str, World]:
    """A and B with an accepted order each; their invoices and a return request where the routes exist."""
    scopes = [s.value for s in Scope]
    out = {acct: World(acct, api_key(hub, *scopes, account=acct), sku=ORDERS[acct][1]) for acct in (A, B)}
    for w in out.values():
        w.external = f"ISO-{w.account}-1"
        r = client.post("/v1/orders", json=_order_body(w, w.external), headers=auth(w))
        assert r.status_code == 202, r.text
        w.order_id = r.json()["order_id"]
    settle(hub)
    for w in out.values():
        view = client.get(f"/v1/orders/{w.order_id}", headers=auth(w)).json()
        assert view["state"] == "accepted", view
        w.erp_refs = [o["reference"] for o in view["erp_orders"]]
        for ref in w.erp_refs:  # ship and invoice in the ERP; the poller brings the invoices to the hub
            erp.ship(ref)
            erp.post_invoices(ref)
    assert hub.poller is not None
    hub.poller.poll_all()
    settle(hub)
    for w in out.values():
        if served(app, "GET", "/v1/invoices"):
            items = client.get("/v1/invoices", headers=auth(w)).json()["items"]
            assert items, f"no invoice reached the hub for {w.account}"
            w.invoice_ids = [i["id"] for i in items]
            w.invoice_numbers = [i["number"] for i in items]
        if served(app, "POST", "/v1/returns"):
            r = client.post("/v1/returns", json={"order_id": w.order_id, "lines": [{"line_no": 1, "quantity": "2"}]},
                            headers=auth(w))
            assert r.status_code == 201, r.text
            w.return_ids = [r.json()["id"]]
        if served(app, "GET", "/v1/ops/cases/{case_id}"):  # a case of the account's order
            with hub.uow() as uow:
                case = open_case(CaseType.FULFILLMENT_DISCREPANCY, summary="isolation", next_action="look",
                                 now=uow.now(), policy=CasePolicy(), order_id=w.order_id, account_id=w.account)
                uow.cases.add(case)
            w.case_ids = [case.id]
    return out


def b_state(hub: Any) -> dict[str, Any]:
    """B's rows as the store holds them: nothing A does may change them."""
    with hub.db.read() as conn:
        tables = [t for t in ("orders", "invoices", "return_requests", "shipments")
                  if conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = :n"), {"n": t}).scalar()]
        return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t} WHERE account_id = :a"), {"a": B})))
                for t in tables}


def _id_values(data: Any) -> Iterator[str]:
    """The string values of identifier fields (``id``, ``*_id``, ``*number``, ``*reference``)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and (k == "id" or k.endswith(("_id", "number", "reference"))):
                yield v
            else:
                yield from _id_values(v)
    elif isinstance(data, list):
        for v in data:
            yield from _id_values(v)


def leaks(body: str, w: World, static: bool = True) -> list[str]:
    """What of ``w`` is in ``body``: its run's identifiers, its demo-profile names (``static``), and its
    short document ids where the body (if JSON) holds an identifier."""
    found = [m for m in (*w.dynamic_markers(), *(B_STATIC if static else ())) if m in body]
    try:
        data = json.loads(body)
    except ValueError:
        return found
    return found + sorted(set(_id_values(data)) & w.short_ids())


def unknown_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [r for r in app_routes(app) if walk_key(*r) not in TARGETS and walk_key(*r) not in UNSCOPED]


def test_every_route_is_known_to_the_walk(app: FastAPI) -> None:
    unknown = unknown_routes(app)
    assert not unknown, (f"routes the isolation walk cannot point at another account: {unknown}; add each to "
                         "TARGETS (how to aim it at an account) or UNSCOPED (it has no account data)")
    print("\nroutes walked:", ", ".join(f"{m} {p}" for m, p in app_routes(app)))


def test_a_new_route_is_caught_by_the_walk_until_it_is_added_to_a_table(app: FastAPI) -> None:
    """The guard itself: routes added to the app, a router included later, or a mount, are all seen."""
    from fastapi import APIRouter
    from starlette.applications import Starlette

    router = APIRouter(prefix="/v1")
    router.add_api_route("/quotes/{quote_id}", lambda quote_id: {}, methods=["GET", "DELETE"])
    app.include_router(router)
    app.mount("/files", Starlette())
    assert set(unknown_routes(app)) == {("GET", "/v1/quotes/{quote_id}"), ("DELETE", "/v1/quotes/{quote_id}"),
                                        ("?", "/files")}


def test_a_key_of_one_account_never_reaches_another_accounts_resources(
    hub: Any, app: FastAPI, client: TestClient, worlds: dict[str, World]
) -> None:
    a, b = worlds[A], worlds[B]
    hub.heartbeat.beat()  # a live worker: /ready answers 200 (without one it is 503, which the walk counts)
    before = b_state(hub)
    assert before["orders"], "B has nothing to protect: the seeding did not work"
    routes = app_routes(app)
    assert not unknown_routes(app)
    failures: list[str] = []
    controls: list[tuple[str, Call]] = []
    for method, path in routes:
        key = walk_key(method, path)
        if key in UNSCOPED:
            r = client.request(method, path, headers=auth(a))
            # static demo names may appear in docs (examples); identifiers of this run may not
            if r.status_code >= 500 or leaks(r.text, b, static=False):
                failures.append(f"{method} {path} -> {r.status_code}, B's ids: {leaks(r.text, b, static=False)}")
            continue
        assert key in TARGETS, f"{method} {path} is not in TARGETS or UNSCOPED"
        for call in TARGETS[key](b):
            r = client.request(method, call.path or path, params=call.params, json=call.json, headers=auth(a))
            where = f"{method} {call.path or path} {call.params or ''} {call.json or ''}".strip()
            if call.expect == "denied" and r.status_code not in (403, 404):
                failures.append(f"{where} -> {r.status_code} (want 403/404): {r.text[:300]}")
            elif call.expect == "empty" and not (200 <= r.status_code < 300 and not leaks(r.text, b)):
                failures.append(f"{where} -> {r.status_code}, B's data: {leaks(r.text, b)}")
            if r.status_code in (403, 404):
                assert r.headers["content-type"] == "application/problem+json"
        if method != "HEAD":
            controls.extend((method, Call(c.path or path, c.params, c.json, c.expect)) for c in TARGETS[key](a))
    assert not failures, "account A's key reached account B:\n" + "\n".join(failures)
    assert b_state(hub) == before, "a request with A's key changed B's data"

    # The same requests aimed at A's own resources succeed: the refusals above were isolation.
    bad = []
    for method, call in controls:
        r = client.request(method, call.path or "", params=call.params, json=call.json, headers=auth(a))
        if not 200 <= r.status_code < 300:
            bad.append(f"{method} {call.path} {call.params or ''} -> {r.status_code}: {r.text[:300]}")
    assert not bad, "requests aimed at the caller's own resources failed (the walk's table is stale?):\n" + \
        "\n".join(bad)


def test_listings_for_one_account_never_show_another_accounts_ids(
    app: FastAPI, client: TestClient, worlds: dict[str, World]
) -> None:
    a, b = worlds[A], worlds[B]
    listed = [p for p in LISTINGS if served(app, "GET", p)]
    assert "/v1/orders" in listed or not served(app, "GET", "/v1/orders/{order_id}")
    for path in listed:
        r = client.get(path, headers=auth(a))
        assert r.status_code == 200, (path, r.text)
        assert not leaks(r.text, b), (path, leaks(r.text, b))
    if "/v1/orders" in listed:
        assert a.order_id in client.get("/v1/orders", headers=auth(a)).text  # the listing is not just empty
    if "/v1/invoices" in listed:
        assert a.invoice_ids and a.invoice_ids[0] in client.get("/v1/invoices", headers=auth(a)).text
    for path in ("/v1/prices", "/v1/availability"):
        if served(app, "GET", path):
            r = client.get(path, params={"sku": [a.sku, b.sku]}, headers=auth(a))
            assert r.status_code == 200 and not leaks(r.text, b), (path, r.text[:300])
