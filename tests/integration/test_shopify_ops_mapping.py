"""Mapping a Shopify company from ``/ops/shopify``: an order whose company matches no ERP account waits; a
signed-in operator picks the account, confirms, and the waiting orders are taken in, their cases resolved
in the operator's name and the mapping kept with it. Only an operator's session may post it, with the
session's CSRF token; an account the ERP does not have is refused with a reason, and nothing changes."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ordersync.bootstrap import build_hub
from ordersync.config import ErpSettings, Settings, ShopifySettings, ShopifyShopSettings
from ordersync.runtime.hub import Hub
from ordersync.server import create_app
from ordersync.store import shopify as store
from ordersync.store.schema import cases, orders
from ordersync.web.people import People
from tests.support.people import PASSWORD, buyer, staff
from tests.support.shopify import ShopifyDouble

SHOP = "kestrel"
HOOKS = "http://testserver/shopify/webhooks"


def seeded() -> ShopifyDouble:
    double = ShopifyDouble(plan="plus")
    warehouse = double.add_location("Hamburg")
    for sku, price in (("BRG-6204-2RS", "4.80"), ("FIT-ELB-G12-SS", "4.60")):
        double.add_product(sku, sku, price, {warehouse: 500})
    double.add_company("Unbekannt AG", locations=[{"name": "Bonn", "tax_id": "DE999999999", "currency": "EUR"}])
    return double


@pytest.fixture
def double() -> ShopifyDouble:
    return seeded()


@pytest.fixture
def hub(tmp_path: Path, double: ShopifyDouble) -> Iterator[Hub]:
    shop = ShopifyShopSettings(name=SHOP, domain=double.shop, token=double.token, secret=double.secret, plan="plus",
                               webhook_url=HOOKS)
    settings = Settings(data_dir=tmp_path / "hub", erp=[ErpSettings(name="main", kind="memory", retries=1)],
                        shopify=ShopifySettings(shops=[shop]))
    built = build_hub(settings, shopify_transport=double.transport())
    yield built
    built.close()


@pytest.fixture
def client(hub: Hub) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


class Waiting:
    """Two orders of Unbekannt AG (Bonn) waiting: one a webhook brought, one the sweep found."""

    def __init__(self, hub: Hub, client: TestClient, double: ShopifyDouble) -> None:
        _, body = double.execute("{ companyLocations(first: 10) { nodes { id } } }")
        self.location = str(body["data"]["companyLocations"]["nodes"][0]["id"])
        double.webhooks.use_client(client)
        double.subscribe("ORDERS_CREATE", HOOKS)
        self.by_webhook = double.place_order(self.location, [("BRG-6204-2RS", 10)])
        assert double.webhooks.deliver_due() == 1
        hub.shopify.inbound.process_waiting()
        double.webhooks.drop_next()
        self.by_sweep = double.place_order(self.location, [("FIT-ELB-G12-SS", 4)])
        double.webhooks.deliver_due()
        assert double.order(self.by_sweep)["name"] in hub.shopify.inbound.reconcile(SHOP).unmatched
        self.names = {gid: double.order(gid)["name"] for gid in (self.by_webhook, self.by_sweep)}
        with hub.db.read() as conn:
            self.cases = [json.loads(b) for b in conn.execute(select(cases.c.body)).scalars()]
        assert len(self.cases) == 2 and all("matches no ERP account" in c["summary"] for c in self.cases)

    def form(self, token: str, account: str = "C-1002") -> dict[str, str]:
        return {"csrf": token, "shop": SHOP, "location": self.location, "account": account}


@pytest.fixture
def waiting(hub: Hub, client: TestClient, double: ShopifyDouble) -> Waiting:
    return Waiting(hub, client, double)


def operator(hub: Hub, client: TestClient, name: str = "Dana Ops", *roles: str) -> str:
    """Sign ``client`` in as a new staff member (operations by default); their e-mail address."""
    email = staff(hub, *(roles or ("operations",)), name=name)
    signed = client.post("/ops/signin", data={"email": email, "password": PASSWORD, "next": "/ops/shopify"},
                         follow_redirects=False)
    assert signed.status_code == 303, signed.text
    return email


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def mapping(hub: Hub) -> dict[str, Any]:
    with hub.db.read() as conn:
        return store.all_state(conn, SHOP, "mapping")


def text(page: str) -> str:
    """The page's words (tags dropped, entities read), for what a person reads."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_only_an_operators_session_may_map(hub: Hub, client: TestClient, waiting: Waiting) -> None:
    for path in ("/ops/shopify/map/preview", "/ops/shopify/map"):  # no session: to the sign-in, nothing mapped
        r = client.post(path, data=waiting.form("x"), follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ops/signin"), path
    email = buyer(hub, account="C-1002")  # a buyer is no operator: no session on the dashboard
    r = client.post("/ops/signin", data={"email": email, "password": PASSWORD, "next": "/ops/shopify"},
                    follow_redirects=False)
    assert r.status_code == 401
    assert client.post("/ops/shopify/map", data=waiting.form("x"), follow_redirects=False).status_code == 303

    email = operator(hub, client)  # an operator who is disabled meanwhile is signed out
    token = csrf(client.get("/ops/shopify").text)
    people = People(hub.db, hub.clock)
    people.disable(people.find(email).id)  # type: ignore[union-attr]
    r = client.post("/ops/shopify/map", data=waiting.form(token), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ops/signin")
    assert mapping(hub) == {}


def test_the_forms_need_the_sessions_csrf_token_and_this_origin(hub: Hub, client: TestClient,
                                                                 waiting: Waiting) -> None:
    operator(hub, client)
    token = csrf(client.get("/ops/shopify").text)
    for path in ("/ops/shopify/map/preview", "/ops/shopify/map"):
        for bad in ("", "forged"):
            r = client.post(path, data=waiting.form(bad))
            assert r.status_code == 403 and "reload the page" in r.text, (path, bad)
        r = client.post(path, data=waiting.form(token), headers={"Origin": "https://evil.example"})
        assert r.status_code == 403, path
    assert mapping(hub) == {}
    with hub.db.read() as conn:
        assert [r["name"] for r in store.unmatched_orders(conn, SHOP)] == list(waiting.names.values())


def test_mapping_a_waiting_company_takes_its_orders_in_and_resolves_their_cases(
        hub: Hub, client: TestClient, waiting: Waiting) -> None:
    email = operator(hub, client, "Dana Ops")
    page = client.get("/ops/shopify")
    assert page.status_code == 200 and "style=" not in page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # CSP: no inline code
    words = text(page.text)
    assert 'id="waiting" class="panel" data-count="2"' in page.text
    assert "Waiting for a mapping" in words and "Unbekannt AG Bonn" in words and "DE999999999" in words
    section = page.text[page.text.index('data-location-id="' + waiting.location):]
    section = section[:section.index("</article>")]
    assert all(name in section for name in waiting.names.values()) and "matches no ERP account" in section
    assert section.count('href="/ops/cases/') == 2  # each waiting order's case
    options = re.findall(r'<option value="(C-\d+)"', section)
    assert options == sorted(options) and {"C-1001", "C-1002"} <= set(options)
    assert "C-1005" not in options  # the ERP's active accounts only

    preview = client.post("/ops/shopify/map/preview", data=waiting.form(csrf(page.text)))
    assert preview.status_code == 200, preview.text
    said = text(preview.text)
    assert re.search(r"Map Unbekannt AG, Bonn to C-1002 .+\?", said)
    assert "2 waiting orders will be taken in" in said and 'id="map-confirm"' in preview.text
    assert 'data-count="2"' in preview.text and 'href="/ops/shopify#waiting-' in preview.text  # confirm / cancel
    assert mapping(hub) == {}  # the confirmation changed nothing

    done = client.post("/ops/shopify/map", data=waiting.form(csrf(preview.text)), follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/ops/shopify?shop=kestrel&mapped=")
    assert mapping(hub) == {waiting.location: "C-1002"}
    with hub.db.read() as conn:
        links = {gid: store.order_link(conn, SHOP, gid) for gid in waiting.names}
        kept = store.get_state(conn, SHOP, "mapped", waiting.location)
        accounts = set(conn.execute(select(orders.c.account_id)).scalars())
        resolved = [json.loads(b) for b in conn.execute(select(cases.c.body)).scalars()]
        assert store.all_state(conn, SHOP, "waiting") == {}
    assert all(link is not None and link["state"] == "taken" and link["order_id"] for link in links.values())
    assert accounts == {"C-1002"}
    assert kept["by"] == "Dana Ops" and kept["actor"] == f"Dana Ops <{email}>" and kept["account"] == "C-1002"
    assert len(resolved) == 2 and all(c["state"] == "resolved" for c in resolved)
    for case in resolved:
        last = case["history"][-1]
        assert last["action"] == "resolve" and last["actor"] == f"Dana Ops <{email}>"
        assert last["comment"].startswith("Dana Ops mapped Unbekannt AG at Bonn to ERP account C-1002")

    after = client.get(done.headers["location"])  # post/redirect/get: the outcome, then nothing waiting
    words = text(after.text)
    assert re.search(r"Mapped Unbekannt AG, Bonn to ERP account C-1002 .+; 2 orders taken in: ", words)
    for gid, link in links.items():
        assert f'href="/ops/orders/{link["order_id"]}" data-order-id="{link["order_id"]}">{waiting.names[gid]}<' \
            in after.text  # type: ignore[index]
    assert 'id="waiting" class="panel" data-count="0"' in after.text and "No Shopify order waits" in words

    again = client.post("/ops/shopify/map", data=waiting.form(csrf(after.text)), follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]  # sent twice: once
    other = client.post("/ops/shopify/map/preview", data=waiting.form(csrf(after.text), "C-1001"))
    assert other.status_code == 409 and "nothing to map" in other.text and "mapped to C-1002 by Dana Ops" in other.text


def test_an_account_the_erp_does_not_have_is_refused_and_nothing_changes(hub: Hub, client: TestClient,
                                                                         waiting: Waiting) -> None:
    operator(hub, client)
    token = csrf(client.get("/ops/shopify").text)
    for path in ("/ops/shopify/map/preview", "/ops/shopify/map"):
        for account in ("C-9999", "C-1005"):  # unknown; inactive
            r = client.post(path, data=waiting.form(token, account))
            assert r.status_code == 422, (path, r.text)
            assert f"{account} is not an active ERP account: nothing was mapped. Choose one from the list." \
                in text(r.text)
            assert 'id="error" role="alert"' in r.text and 'data-count="2"' in r.text  # the page again, waiting
        empty = client.post(path, data=waiting.form(token, ""))
        assert empty.status_code == 422 and "Choose the ERP account Unbekannt AG, Bonn buys for." in text(empty.text)
    stranger = client.post("/ops/shopify/map", data={**waiting.form(token), "location": "gid://shopify/Company/1"})
    assert stranger.status_code == 409 and "waits for gid://shopify/Company/1 any more" in text(stranger.text)
    assert mapping(hub) == {}
    with hub.db.read() as conn:
        assert len(store.unmatched_orders(conn, SHOP)) == 2
        assert all(json.loads(b)["state"] == "open" for b in conn.execute(select(cases.c.body)).scalars())
