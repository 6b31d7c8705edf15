"""ERP facts about Shopify orders back to Shopify, with the Shopify double: a shipment that left becomes a
fulfillment with tracking (once, even when the task is sent again after a crash), a rejection a
cancellation, a credited return a refund; an unreachable Shopify is retried, then a dead letter and a
case."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordersync.canonical.v1 import (
    Order,
    OrderLine,
    OrderState,
    ReturnAuthorization,
    ReturnLine,
    ReturnState,
    Shipment,
    ShipmentLine,
    ShipmentState,
)
from ordersync.channels.shopify.client import CostBudget, ShopifyClient
from ordersync.channels.shopify.inbound import Shop
from ordersync.channels.shopify.outbound import ShopifyOutbound, ShopifySender, plan, tracking_url
from ordersync.config import ShopifySettings, ShopifyShopSettings
from ordersync.devkit.shopify import ShopifyDouble
from ordersync.domain.clock import FakeClock
from ordersync.domain.events import ErpShipmentChanged, Message, OrderRejected, OrderStateChanged, ReturnStateChanged
from ordersync.domain.order.aggregate import OrderRecord
from ordersync.domain.order.parts import PricedLine
from ordersync.store import shopify as store
from ordersync.store.db import Database
from ordersync.store.schema import cases
from ordersync.store.uow import unit_of_work
from tests.unit.shopify.test_sync import Spy, migrated  # noqa: F401  (a fixture: the migrated store to copy)

ORDER_ID = "ord-5601"


class Crash(BaseException):
    """The worker dies (nothing in the hub catches this)."""


class Down(httpx.BaseTransport):
    """Shopify answers 503 to everything while ``down``."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.down = inner, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"errors": "Service Unavailable"})
        return self.inner.handle_request(request)


class Hub:
    """The double with one B2B order from Hamburg, the hub's record of where it came from, the consumer
    and the sender."""

    def __init__(self, db: Database, clock: FakeClock, *, max_attempts: int = 3) -> None:
        self.db, self.clock = db, clock
        self.d = ShopifyDouble(plan="plus")
        self.hamburg = self.d.add_location("Hamburg")
        self.augsburg = self.d.add_location("Augsburg")
        for sku in ("BRG-6204-2RS", "FIT-ELB-G12-SS"):
            self.d.add_product(sku, sku, "10.00", inventory={self.hamburg: 100, self.augsburg: 100})
        company = self.d.add_company("Rheinland Industrial Supply", "C-1001")
        self.order = self.d.place_order(company["locations"][0], [("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 5)])
        self.settings = ShopifyShopSettings(name="kestrel", domain=self.d.shop, token=self.d.token, plan="plus",
                                            locations={"PLANT-N": self.hamburg, "PLANT-S": self.augsburg},
                                            notify_customer=False)
        self.spy = Spy(self.d.transport())
        self.wire = Down(self.spy)
        client = ShopifyClient(self.d.shop, self.d.token, plan="plus", transport=self.wire,
                               budget=CostBudget(1000, 10000), sleep=lambda seconds: None)
        self.consumer = ShopifyOutbound([self.settings])
        self.sender = ShopifySender(db, clock, [Shop(self.settings, client)],
                                    ShopifySettings(shops=[self.settings], max_attempts=max_attempts, base_seconds=1,
                                                    cap_seconds=5))
        with db.write() as conn:
            store.save_order(conn, shop="kestrel", shopify_id=self.order, name="#1001", at=clock.now(),
                             source="webhook", state="taken", order_id=ORDER_ID, account_id="C-1001")

    def tell(self, message: Message) -> None:
        with unit_of_work(self.db, self.clock) as uow:
            self.consumer.handle(message, uow)

    def tasks(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [dict(r) for r in store.tasks_of(conn, order_id=ORDER_ID)]

    def send_until_settled(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            self.sender.send_due()
            if all(t["state"] in ("done", "dead") for t in self.tasks()):
                return
            self.clock.advance(10)

    def cases(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [{**r, **json.loads(r["body"])} for r in conn.execute(select(cases)).mappings()]


@pytest.fixture
def hub(migrated: Path, tmp_path: Path) -> Iterator[Hub]:  # noqa: F811
    path = tmp_path / "ordersync.db"
    shutil.copy(migrated, path)
    db = Database(f"sqlite:///{path}")
    yield Hub(db, FakeClock(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)))
    db.dispose()


def shipped(quantities: dict[str, int], *, shipment: str = "77", plant: str = "PLANT-N",
            state: ShipmentState = ShipmentState.SHIPPED, order_id: str = ORDER_ID) -> ErpShipmentChanged:
    lines = tuple(ShipmentLine(line_no=n, sku=sku, quantity=Decimal(q)) for n, (sku, q) in
                  enumerate(quantities.items(), 1))
    return ErpShipmentChanged(erp="main", reference=f"HUB-{order_id}-N", order_id=order_id, shipment=Shipment(
        id=shipment, order_id=order_id, plant=plant, state=state, carrier="DHL Express",
        tracking_number="00340434161234567890", lines=lines))


# -- fulfillments ----------------------------------------------------------------------------------------

def test_a_shipment_that_left_becomes_a_fulfillment_with_tracking(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 10, "FIT-ELB-G12-SS": 5}))
    [task] = hub.tasks()
    assert task["kind"] == "fulfillment" and task["business_key"] == "fulfillment:main/77"
    assert json.loads(task["body"])["lines"] == {"BRG-6204-2RS": "10", "FIT-ELB-G12-SS": "5"}

    assert hub.sender.send_due() == 1

    [fulfillment] = hub.d.fulfillments(hub.order)
    assert fulfillment["tracking"] == [{"company": "DHL Express", "number": "00340434161234567890",
                                        "url": tracking_url("DHL Express", "00340434161234567890")}]
    assert sorted((li["sku"], li["quantity"]) for li in fulfillment["line_items"]) == [
        ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 5)]
    [task] = hub.tasks()
    assert task["state"] == "done" and fulfillment["id"] in task["result"]
    assert hub.d.order(hub.order)["fulfillment_status"] == "fulfilled"


def test_only_facts_about_shopify_orders_that_left_make_tasks_once(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 4}, state=ShipmentState.PACKED))
    hub.tell(shipped({"BRG-6204-2RS": 4}, order_id="ord-from-edi"))
    assert hub.tasks() == []

    hub.tell(shipped({"BRG-6204-2RS": 4}))
    hub.tell(shipped({"BRG-6204-2RS": 4}, state=ShipmentState.IN_TRANSIT))  # the same shipment moving on
    hub.tell(shipped({"BRG-6204-2RS": 4}, state=ShipmentState.DELIVERED))

    assert [t["business_key"] for t in hub.tasks()] == ["fulfillment:main/77"]


def test_a_partial_shipment_sent_again_after_a_crash_fulfils_once(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 4}))

    def die(variables: dict[str, Any]) -> None:
        raise Crash  # Shopify made the fulfillment; the worker died before it could note it

    hub.spy.after["FulfillmentCreate"] = die
    with pytest.raises(Crash):
        hub.sender.send_due()
    del hub.spy.after["FulfillmentCreate"]
    assert hub.sender.send_due() == 0  # still leased to the dead worker

    hub.clock.advance(600)
    assert hub.sender.send_due() == 1

    [fulfillment] = hub.d.fulfillments(hub.order)
    assert [(li["sku"], li["quantity"]) for li in fulfillment["line_items"]] == [("BRG-6204-2RS", 4)]
    assert hub.d.mutations_by_name["fulfillmentCreate"] == 1
    [task] = hub.tasks()
    assert task["state"] == "done" and "earlier attempt" in task["result"]

    hub.tell(shipped({"BRG-6204-2RS": 6, "FIT-ELB-G12-SS": 5}, shipment="78"))  # the rest, later
    hub.sender.send_due()
    assert len(hub.d.fulfillments(hub.order)) == 2
    assert hub.d.order(hub.order)["fulfillment_status"] == "fulfilled"


def test_a_fulfillment_whose_answer_was_lost_is_not_made_twice(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 4}))

    def lost(variables: dict[str, Any]) -> None:
        raise httpx.ReadTimeout("the answer never came")

    hub.spy.after["FulfillmentCreate"] = lost
    hub.sender.send_due()
    [task] = hub.tasks()
    assert task["state"] == "queued" and "may have been applied" in task["last_error"]
    del hub.spy.after["FulfillmentCreate"]

    hub.send_until_settled()

    assert len(hub.d.fulfillments(hub.order)) == 1 and hub.d.mutations_by_name["fulfillmentCreate"] == 1
    assert hub.tasks()[0]["state"] == "done"


def test_a_shipment_whose_lines_are_fulfilled_already_is_done_without_a_call(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 10, "FIT-ELB-G12-SS": 5}))
    hub.sender.send_due()
    with hub.db.write() as conn:  # as if the task had been put back after it was done
        store.queue_task(conn, task_id="again", shop="kestrel", kind="fulfillment", business_key="again",
                         body=json.loads(hub.tasks()[0]["body"]), now=hub.clock.now(), order_id=ORDER_ID)

    hub.sender.send_due()

    assert hub.d.mutations_by_name["fulfillmentCreate"] == 1
    assert [t["result"] for t in hub.tasks() if t["id"] == "again"] == ['{"fulfillments": [], "outcome": '
                                                                         '"already fulfilled", "sent": {}}']


def test_open_fulfillment_orders_at_the_plants_location_are_taken_first() -> None:
    def fo(gid: str, location: str, remaining: int, status: str = "OPEN") -> dict[str, Any]:
        return {"id": gid, "status": status, "assignedLocation": {"location": {"id": location}},
                "lineItems": {"nodes": [{"id": f"{gid}-1", "sku": "A", "remainingQuantity": remaining}]}}

    orders = [fo("fo-s", "south", 5), fo("fo-n", "north", 3), fo("fo-x", "north", 9, "CLOSED")]
    groups = plan(orders, {"A": 6}, "north")
    assert [[(g["fulfillmentOrderId"], g["fulfillmentOrderLineItems"]) for g in group] for group in groups] == [
        [("fo-n", [{"id": "fo-n-1", "quantity": 3}])], [("fo-s", [{"id": "fo-s-1", "quantity": 3}])]]


# -- cancellations and refunds ---------------------------------------------------------------------------

def test_an_erp_rejection_cancels_the_shopify_order(hub: Hub) -> None:
    hub.tell(OrderRejected(order_id=ORDER_ID, channel="shopify-kestrel", account_id="C-1001",
                           reasons=({"code": "erp_rejected", "message": "credit limit exceeded", "line_no": None},)))
    hub.tell(OrderStateChanged(order_id=ORDER_ID, channel="shopify-kestrel", account_id="C-1001",
                               from_state=OrderState.SUBMITTED_TO_ERP, to_state=OrderState.REJECTED, cause="x",
                               at=hub.clock.now()))
    [task] = hub.tasks()
    assert task["business_key"] == f"cancel:{ORDER_ID}" and json.loads(task["body"])["reason"] == "DECLINED"

    hub.sender.send_due()

    assert hub.d.order(hub.order)["cancel_reason"] == "declined"
    assert hub.tasks()[0]["state"] == "done"
    with hub.db.write() as conn:  # sent again (a crash before it was noted): Shopify says it is cancelled
        store.queue_task(conn, task_id="again", shop="kestrel", kind="cancel", business_key="again",
                         body=json.loads(task["body"]), now=hub.clock.now(), order_id=ORDER_ID)
    hub.sender.send_due()
    assert hub.d.mutations_by_name["orderCancel"] == 1
    assert "already cancelled" in next(t for t in hub.tasks() if t["id"] == "again")["result"]


def test_an_order_the_buyer_cancelled_in_shopify_is_not_cancelled_again(hub: Hub) -> None:
    with hub.db.write() as conn:
        store.save_order(conn, shop="kestrel", shopify_id=hub.order, name="#1001", at=hub.clock.now(),
                         source="webhook", state="cancelled", cancelled_at=hub.clock.now())
    hub.tell(OrderStateChanged(order_id=ORDER_ID, channel="shopify-kestrel", account_id="C-1001",
                               from_state=OrderState.ACCEPTED, to_state=OrderState.CANCELLED, cause="buyer",
                               at=hub.clock.now()))
    assert hub.tasks() == []


def test_a_credited_return_refunds_the_returned_items_once(hub: Hub) -> None:
    order = Order(id=ORDER_ID, channel="shopify-kestrel", external_order_number="1001", account_id="C-1001",
                  lines=(OrderLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(10)),
                         OrderLine(line_no=2, sku="FIT-ELB-G12-SS", quantity=Decimal(5))))
    priced = tuple(PricedLine(line_no=n, sku=sku, quantity=Decimal(q), contract_unit_price=Decimal(10),
                              unit_price=Decimal(10)) for n, sku, q in ((1, "BRG-6204-2RS", 10),
                                                                        (2, "FIT-ELB-G12-SS", 5)))
    with unit_of_work(hub.db, hub.clock) as uow:
        uow.add_order(OrderRecord(order=order, state=OrderState.SHIPPED, lines=priced))
        uow.returns.add(ReturnAuthorization(id="ret-1", order_id=ORDER_ID, account_id="C-1001",
                                            state=ReturnState.CREDITED,
                                            lines=(ReturnLine(line_no=2, quantity=Decimal(2)),)), hub.clock.now())
    hub.tell(shipped({"BRG-6204-2RS": 10, "FIT-ELB-G12-SS": 5}))
    hub.sender.send_due()

    hub.tell(ReturnStateChanged(return_id="ret-1", order_id=ORDER_ID, account_id="C-1001",
                                from_state=ReturnState.RECEIVED, to_state=ReturnState.CREDITED, cause="credit note",
                                at=hub.clock.now()))
    refund = next(t for t in hub.tasks() if t["kind"] == "refund")
    assert refund["business_key"] == "refund:ret-1" and json.loads(refund["body"])["lines"] == {"FIT-ELB-G12-SS": "2"}

    def die(variables: dict[str, Any]) -> None:
        raise Crash

    hub.spy.after["RefundCreate"] = die
    with pytest.raises(Crash):
        hub.sender.send_due()
    del hub.spy.after["RefundCreate"]
    hub.clock.advance(600)
    hub.sender.send_due()

    [made] = hub.d.refunds(hub.order)
    assert [(li["sku"], li["quantity"], li["restock_type"]) for li in made["line_items"]] == [
        ("FIT-ELB-G12-SS", 2, "NO_RESTOCK")]
    assert next(t for t in hub.tasks() if t["kind"] == "refund")["state"] == "done"


# -- failures --------------------------------------------------------------------------------------------

def test_an_unreachable_shopify_is_retried_then_a_dead_letter_with_a_case(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 10}))
    hub.wire.down = True

    hub.sender.send_due()
    [task] = hub.tasks()
    assert task["state"] == "queued" and task["attempts"] == 1 and "Unavailable" in task["last_error"]
    assert task["next_attempt_at"] > hub.clock.now()
    assert hub.sender.send_due() == 0  # not due yet

    hub.send_until_settled()

    [task] = hub.tasks()
    assert task["state"] == "dead" and task["attempts"] == 3
    [case] = hub.cases()
    assert case["order_id"] == ORDER_ID and "#1001" in case["summary"] and "Unavailable" in case["summary"]
    assert hub.d.fulfillments(hub.order) == []


def test_a_refusal_is_retried_until_max_attempts_then_a_dead_letter_with_the_error(hub: Hub) -> None:
    hub.tell(shipped({"BRG-6204-2RS": 10}))
    hub.send_until_settled()  # shipped: the order can no longer be cancelled
    hub.tell(OrderStateChanged(order_id=ORDER_ID, channel="shopify-kestrel", account_id="C-1001",
                               from_state=OrderState.ON_HOLD, to_state=OrderState.CANCELLED, cause="hold released",
                               at=hub.clock.now()))

    hub.send_until_settled()

    cancel = next(t for t in hub.tasks() if t["kind"] == "cancel")
    assert cancel["state"] == "dead" and cancel["attempts"] == 3 and "fulfillments" in cancel["last_error"]
    [case] = hub.cases()
    assert "cancel of order #1001" in case["summary"] and "fulfillments" in case["summary"]
