"""Shopify orders in, on the in-memory ERP and the Shopify double (SQLite and PostgreSQL): a webhook is
kept before it is answered and worked later; a delivery three times and out of order (``orders/paid``
before ``orders/create``) is one hub order and one ERP sale; a forged delivery is refused (401) and
recorded; a webhook the double never delivers is found by the reconciliation sweep; a company that
matches no ERP account opens a case and its order waits for a mapping; a cancellation in Shopify
cancels the ERP order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.bootstrap import build_hub
from ordersync.config import ErpSettings, Settings, ShopifySettings, ShopifyShopSettings
from ordersync.domain.clock import FakeClock
from ordersync.runtime.hub import Hub
from ordersync.server import create_app
from ordersync.store import shopify as store
from ordersync.store.schema import cases, orders, shopify_events, shopify_refused
from tests.support.hub import settle
from tests.support.shopify import ShopifyDouble, sign

SHOP = "kestrel"


@pytest.fixture
def double() -> ShopifyDouble:
    d = ShopifyDouble(plan="plus")
    hamburg, augsburg = d.add_location("Hamburg"), d.add_location("Augsburg")
    for sku, price in (("BRG-6204-2RS", "4.80"), ("FIT-ELB-G12-SS", "4.60"), ("VLV-SV-24V-G12", "41.00")):
        d.add_product(sku, sku, price, {hamburg: 500, augsburg: 200})
    d.add_company("Rheinland Industrial Supply GmbH", external_id="C-1001",
                  locations=[{"name": "Düsseldorf", "external_id": "RIS-DUS", "currency": "EUR"}])
    d.add_company("Unbekannt AG", external_id=None, locations=[{"name": "Bonn", "tax_id": "DE999999999"}])
    return d


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock, store_url: str, double: ShopifyDouble) -> Iterator[Hub]:
    shop = ShopifyShopSettings(name=SHOP, domain=double.shop, token=double.token, secret=double.secret, plan="plus",
                               webhook_url="http://testserver/shopify/webhooks")
    settings = Settings(data_dir=tmp_path / "hub", store=store_url,
                        erp=[ErpSettings(name="main", kind="memory", retries=1, reset_timeout=0.2)],
                        shopify=ShopifySettings(shops=[shop]))
    hub = build_hub(settings, clock=clock, erps={"main": erp}, shopify_transport=double.transport())
    yield hub
    hub.close()


@pytest.fixture
def api(hub: Hub, double: ShopifyDouble) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as client:
        double.webhooks.use_client(client)
        for topic in ("ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_PAID", "ORDERS_CANCELLED"):
            double.subscribe(topic, "http://testserver/shopify/webhooks")
        # the company's catalog carries its contract prices (otherwise the price it was shown is held)
        report = hub.shopify.syncs[SHOP].push_prices()
        assert report["errors"] == [] if "errors" in report else True
        yield client


def _location_of(double: ShopifyDouble, company: str) -> str:
    _, body = double.execute("{ companyLocations(first: 10) { nodes { id company { name } } } }")
    return next(n["id"] for n in body["data"]["companyLocations"]["nodes"] if n["company"]["name"] == company)


def work(hub: Hub) -> None:
    """What the worker does: events, then the order's flow, until nothing is left."""
    for _ in range(5):
        hub.shopify.inbound.process_waiting()
        settle(hub)


def hub_orders(hub: Hub) -> list[Any]:
    with hub.db.read() as conn:
        return list(conn.execute(select(orders.c.id, orders.c.state, orders.c.external_order_number)
                                 .where(orders.c.channel == "shopify-kestrel")).mappings())


def test_an_order_delivered_three_times_and_out_of_order_is_one_order_and_one_erp_sale(
        hub: Hub, api: TestClient, double: ShopifyDouble, erp: MemoryErp) -> None:
    double.webhooks.hold()
    double.webhooks.duplicate_next(3)
    gid = double.place_order(_location_of(double, "Rheinland Industrial Supply GmbH"),
                             [("BRG-6204-2RS", 20), ("FIT-ELB-G12-SS", 10)], po_number="RIS-4711", paid=True)
    double.webhooks.release("reverse")  # orders/paid first, then three copies of orders/create
    assert double.webhooks.deliver_due() >= 4
    with hub.db.read() as conn:
        kept = list(conn.execute(select(shopify_events.c.topic, shopify_events.c.deliveries,
                                        shopify_events.c.state)).mappings())
    assert sorted((k["topic"], k["deliveries"]) for k in kept) == [("orders/create", 3), ("orders/paid", 1)]
    assert {k["state"] for k in kept} == {"received"}  # kept; nothing worked before the answer
    work(hub)
    found = hub_orders(hub)
    assert len(found) == 1 and found[0]["state"] == "accepted"
    assert found[0]["external_order_number"] == gid.rsplit("/", 1)[1]
    assert len(erp.orders_for(found[0]["id"])) == 1
    with hub.db.read() as conn:
        states = dict(conn.execute(select(shopify_events.c.topic, shopify_events.c.state)).all())
        link = store.order_link(conn, SHOP, gid)
    assert link is not None and link["order_id"] == found[0]["id"] and link["paid"]
    assert states["orders/paid"] == "processed" and states["orders/create"] in ("processed", "stale")
    with hub.db.read() as conn:  # nothing for a person: the repeats were worked before the order was priced
        assert [b for b in conn.execute(select(cases.c.body)).scalars() if "Shopify" in b] == []
    # a late redelivery of the same event changes nothing
    sweep = hub.shopify.inbound.reconcile(SHOP)
    work(hub)
    assert len(hub_orders(hub)) == 1 and sweep.taken == [] and sweep.known >= 1


def test_a_forged_or_unknown_delivery_is_refused_and_recorded(hub: Hub, api: TestClient,
                                                               double: ShopifyDouble) -> None:
    body = json.dumps({"admin_graphql_api_id": "gid://shopify/Order/1", "updated_at": "2026-12-05T10:00:00Z"})
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": double.shop,
               "X-Shopify-Event-Id": "ev-forged", "X-Shopify-Webhook-Id": "wh-1",
               "X-Shopify-Hmac-Sha256": sign(body.encode(), "not-the-secret"), "Content-Type": "application/json"}
    assert api.post("/shopify/webhooks", content=body, headers=headers).status_code == 401
    unknown = {**headers, "X-Shopify-Shop-Domain": "someone-else.myshopify.com",
               "X-Shopify-Hmac-Sha256": sign(body.encode(), double.secret)}
    assert api.post("/shopify/webhooks", content=body, headers=unknown).status_code == 401
    good = {**headers, "X-Shopify-Hmac-Sha256": sign(body.encode(), double.secret)}
    answer = api.post("/shopify/webhooks", content=body, headers=good)
    assert answer.status_code == 200 and answer.json()["duplicate"] is False
    with hub.db.read() as conn:
        refused = [(r.reason, r.shop_domain) for r in conn.execute(select(shopify_refused))]
        kept = conn.execute(select(func.count()).select_from(shopify_events)).scalar_one()
    assert refused == [("HMAC signature does not match", double.shop), ("unknown shop", "someone-else.myshopify.com")]
    assert kept == 1


def test_a_webhook_the_double_never_delivers_is_taken_in_by_the_reconciliation(
        hub: Hub, api: TestClient, double: ShopifyDouble, erp: MemoryErp) -> None:
    double.webhooks.drop_next()
    gid = double.place_order(_location_of(double, "Rheinland Industrial Supply GmbH"), [("VLV-SV-24V-G12", 2)])
    double.webhooks.deliver_due()
    hub.shopify.inbound.process_waiting()
    assert hub_orders(hub) == []  # nothing came
    sweep = hub.shopify.inbound.reconcile(SHOP)
    assert sweep.taken == [double.order(gid)["name"]] and sweep.seen == 1
    work(hub)
    found = hub_orders(hub)
    assert [o["state"] for o in found] == ["accepted"] and len(erp.orders_for(found[0]["id"])) == 1
    again = hub.shopify.inbound.reconcile(SHOP)
    assert again.taken == [] and again.known == 1
    with hub.db.read() as conn:
        assert store.order_link(conn, SHOP, gid)["source"] == "reconciliation"  # type: ignore[index]
    with hub.db.read() as conn:
        report = store.get_state(conn, SHOP, "report", "reconcile")
    assert report["known"] == 1 and report["taken"] == []


def test_a_company_no_account_matches_opens_a_case_and_its_order_waits_for_a_mapping(
        hub: Hub, api: TestClient, double: ShopifyDouble, erp: MemoryErp) -> None:
    location = _location_of(double, "Unbekannt AG")
    double.place_order(location, [("BRG-6204-2RS", 10)])
    double.webhooks.deliver_due()
    work(hub)
    assert hub_orders(hub) == []
    with hub.db.read() as conn:
        summaries = [json.loads(b)["summary"] for b in conn.execute(select(cases.c.body)).scalars()
                     if "Shopify" in b]
        waiting = conn.execute(select(shopify_events.c.state)).scalars().all()
    assert len(summaries) == 1 and "matches no ERP account" in summaries[0] and "DE999999999" in summaries[0]
    assert waiting == ["waiting"]
    double.webhooks.duplicate_next(2)  # the order changes meanwhile: no second case
    assert hub.shopify.inbound.map_company(SHOP, location, "C-1002") == 1
    work(hub)
    found = hub_orders(hub)
    # taken in once; held, since the company saw list prices (its account's catalog was not pushed yet)
    assert [o["state"] for o in found] == ["on_hold"]
    with hub.db.read() as conn:
        assert sum("Shopify" in b for b in conn.execute(select(cases.c.body)).scalars()) == 1
        assert conn.execute(select(orders.c.account_id).where(orders.c.id == found[0]["id"])).scalar_one() == "C-1002"


def test_a_cancellation_in_shopify_cancels_the_erp_order(hub: Hub, api: TestClient, double: ShopifyDouble,
                                                         erp: MemoryErp) -> None:
    gid = double.place_order(_location_of(double, "Rheinland Industrial Supply GmbH"), [("BRG-6204-2RS", 20)])
    double.webhooks.deliver_due()
    work(hub)
    [order] = hub_orders(hub)
    assert order["state"] == "accepted"
    double.cancel_order(gid)
    double.webhooks.deliver_due()
    work(hub)
    assert [o["state"] for o in hub_orders(hub)] == ["cancelled"]


def test_an_order_edited_in_shopify_is_amended_in_the_erp(
        hub: Hub, api: TestClient, double: ShopifyDouble, erp: MemoryErp) -> None:
    double.subscribe("ORDERS_EDITED", "http://testserver/shopify/webhooks")
    gid = double.place_order(_location_of(double, "Rheinland Industrial Supply GmbH"),
                             [("BRG-6204-2RS", 20), ("FIT-ELB-G12-SS", 10)])
    double.webhooks.deliver_due()
    work(hub)
    [order] = hub_orders(hub)
    assert order["state"] == "accepted"
    double.edit_order(gid, {"BRG-6204-2RS": 10, "FIT-ELB-G12-SS": 0})
    double.webhooks.deliver_due()
    work(hub)
    with hub.uow() as uow:
        record = uow.orders.get(order["id"])
    assert record.ordered == {1: 10, 2: 0}
    [sale] = erp.orders_for(order["id"])
    assert {line.sku: line.quantity for line in sale.lines if line.quantity} == {"BRG-6204-2RS": 10}
    with hub.db.read() as conn:
        assert not [b for b in conn.execute(select(cases.c.body)).scalars() if "edited" in b]


def test_an_edit_whose_webhook_never_came_is_followed_by_the_reconciliation(
        hub: Hub, api: TestClient, double: ShopifyDouble) -> None:
    gid = double.place_order(_location_of(double, "Rheinland Industrial Supply GmbH"),
                             [("BRG-6204-2RS", 20), ("FIT-ELB-G12-SS", 10)])
    double.webhooks.deliver_due()
    work(hub)
    [order] = hub_orders(hub)
    time.sleep(1.1)  # Shopify's times are to the second: the edit is a later one
    double.webhooks.drop_next()  # its orders/updated never comes
    double.edit_order(gid, {"FIT-ELB-G12-SS": 4})
    assert double.webhooks.deliver_due() == 0
    hub.shopify.inbound.process_waiting()
    sweep = hub.shopify.inbound.reconcile(SHOP)
    assert sweep.updated and sweep.updated[0].startswith(double.order(gid)["name"]), sweep.as_dict()
    with hub.uow() as uow:
        assert uow.orders.get(order["id"]).ordered == {1: 20, 2: 4}


def test_an_order_webhook_whose_order_id_changed_type_is_kept_and_recorded_as_drift(
        hub: Hub, api: TestClient, double: ShopifyDouble) -> None:
    from ordersync.store import drift as drift_store

    def deliver(event_id: str, payload: dict[str, Any]) -> Any:
        body = json.dumps(payload).encode()
        return api.post("/shopify/webhooks", content=body, headers={
            "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": double.shop, "X-Shopify-Event-Id": event_id,
            "X-Shopify-Webhook-Id": f"wh-{event_id}", "X-Shopify-Hmac-Sha256": sign(body, double.secret),
            "Content-Type": "application/json"})

    # the fields the connector does not read are no drift: Shopify's order body is large and grows
    usual = {"admin_graphql_api_id": "gid://shopify/Order/1", "updated_at": "2026-12-05T10:00:00Z",
             "line_items": [{"sku": "BRG-6204-2RS"}], "note_attributes": []}
    assert deliver("ev-usual", usual).status_code == 200
    changed = {**usual, "admin_graphql_api_id": 1}
    assert deliver("ev-changed", changed).status_code == 200
    assert deliver("ev-changed", changed).json()["duplicate"] is True  # counted once per event
    with hub.db.read() as conn:
        found = [(d["source"], d["field"], d["kind"], d["seen"], d["count"]) for d in drift_store.drift(conn)]
        kept = dict(conn.execute(select(shopify_events.c.event_id, shopify_events.c.deliveries)).all())
        opened = [b for b in conn.execute(select(cases.c.body)).scalars() if "drifted" in b]
    assert found == [("shopify.orders/create", "$.admin_graphql_api_id", "type_changed", "integer", 1)]
    assert kept == {"ev-usual": 1, "ev-changed": 2}  # kept as delivered: nothing is dropped at the door
    assert len(opened) == 1 and "shopify.orders/create payloads drifted" in opened[0]
