"""The Shopify channel's check plugged into reconciliation, on the Shopify double and the twin: a shipment
whose fulfillment was never queued for Shopify opens one case (once); a clean run opens none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.bootstrap import build_hub
from ordersync.canonical.v1 import CaseType, ExceptionCase
from ordersync.config import ErpSettings, ReconcileSettings, Settings, ShopifySettings, ShopifyShopSettings
from ordersync.domain.clock import FakeClock
from ordersync.ports.erp import order_reference
from ordersync.runtime.hub import Hub
from ordersync.server import create_app
from ordersync.store.schema import cases, orders, shopify_tasks
from tests.support.hub import settle
from tests.support.shopify import ShopifyDouble

SHOP = "kestrel"


@pytest.fixture
def double() -> ShopifyDouble:
    d = ShopifyDouble(plan="plus")
    hamburg = d.add_location("Hamburg")
    d.add_product("BRG-6204-2RS", "BRG-6204-2RS", "4.80", {hamburg: 500})
    d.add_company("Rheinland Industrial Supply GmbH", external_id="C-1001",
                  locations=[{"name": "Düsseldorf", "external_id": "RIS-DUS", "currency": "EUR"}])
    return d


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock, double: ShopifyDouble) -> Iterator[Hub]:
    shop = ShopifyShopSettings(name=SHOP, domain=double.shop, token=double.token, secret=double.secret, plan="plus",
                               webhook_url="http://testserver/shopify/webhooks")
    settings = Settings(data_dir=tmp_path / "hub", erp=[ErpSettings(name="main", kind="memory", retries=1)],
                        shopify=ShopifySettings(shops=[shop]),
                        reconcile=ReconcileSettings(interval_seconds=0, settle_seconds=60))
    h = build_hub(settings, clock=clock, erps={"main": erp}, shopify_transport=double.transport())
    yield h
    h.close()


def work(hub: Hub) -> None:
    for _ in range(5):
        hub.shopify.inbound.process_waiting()
        settle(hub)


def shopify_cases(hub: Hub) -> list[ExceptionCase]:
    with hub.db.read() as conn:
        rows = conn.execute(select(cases.c.body).where(cases.c.type == CaseType.ERP_DISCREPANCY.value)).scalars()
        return [ExceptionCase.model_validate_json(b) for b in rows]


def test_a_fulfillment_never_queued_for_shopify_opens_one_case(hub: Hub, double: ShopifyDouble, erp: MemoryErp,
                                                               clock: FakeClock) -> None:
    with TestClient(create_app(hub)) as client:
        double.webhooks.use_client(client)
        double.subscribe("ORDERS_CREATE", "http://testserver/shopify/webhooks")
        hub.shopify.syncs[SHOP].push_prices()
        _, body = double.execute("{ companyLocations(first: 10) { nodes { id } } }")
        location = body["data"]["companyLocations"]["nodes"][0]["id"]
        double.place_order(location, [("BRG-6204-2RS", 20)])
        double.webhooks.deliver_due()
        work(hub)
    with hub.db.read() as conn:
        (order_id, state), = conn.execute(select(orders.c.id, orders.c.state)).all()
    assert state == "accepted"
    erp.ship(order_reference(order_id, "PLANT-N"))
    assert hub.poller is not None
    hub.poller.poll_all()
    work(hub)
    clock.advance(120)
    assert hub.reconciler is not None
    assert hub.reconciler.run().discrepancies == []  # the fulfillment is queued: nothing owed

    with hub.db.write() as conn:  # the task is lost (as if its consumer had failed for good)
        conn.execute(delete(shopify_tasks).where(shopify_tasks.c.order_id == order_id))
    (outcome,) = hub.reconciler.run().outcomes
    assert (outcome.discrepancy.kind, outcome.status, outcome.discrepancy.order_id) == (
        "fulfillment_not_sent", "opened", order_id)
    assert "no fulfillment queued for kestrel" in outcome.discrepancy.diffs[0].erp
    assert [o.status for o in hub.reconciler.run().outcomes] == ["open"]
    assert len(shopify_cases(hub)) == 1


