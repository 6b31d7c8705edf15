"""Fulfillment and invoicing against a real Tryton: the warehouse ships in Tryton (one plant, then the
other; less than ordered with the rest cancelled), the accountant posts invoices, and the hub's order
follows through the change poller; the buyer sees the invoices and disputes one, finance gets the case."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.devkit import demo_data
from ordersync.ports.erp import order_reference
from ordersync.server import create_app
from tests.contract.drivers import TrytonDriver
from tests.support.hub import api_key, order, place, record, settle, state
from tests.support.tryton import admin, erp_settings

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]
MAIN = demo_data.profile("main")


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


@pytest.fixture
def hub(tryton: Any, tmp_path: Path) -> Iterator[Any]:
    h = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1)]))
    yield h
    h.close()


@pytest.fixture
def driver(tryton: Any) -> Iterator[TrytonDriver]:
    client = admin(tryton)
    yield TrytonDriver(client)
    client.close()


def until(hub: Any, order_id: str, wanted: str, rounds: int = 300) -> None:
    """Poll Tryton and run the worker until the order is in state ``wanted``."""
    for _ in range(rounds):
        hub.poller.poll_all()
        settle(hub)
        if state(hub, order_id) == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} is {state(hub, order_id)}, not {wanted}")


def accepted(hub: Any, *lines: tuple[str, int | Decimal], external: str) -> str:
    order_id = place(hub, order("C-1001", *lines, external=external, ship_to="RIS-DUS")).order_id  # type: ignore[arg-type]
    until(hub, order_id, "accepted")
    return order_id


def cancel_waiting_shipments(driver: TrytonDriver, reference: str) -> list[int]:
    """The warehouse gives up the rest: cancel the sale's shipments still waiting (as a Tryton user would)."""
    (sale,) = driver.c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None,
                            ["shipments"])
    waiting = driver.c.call("stock.shipment.out", "search", [("id", "in", sale["shipments"]),
                                                             ("state", "=", "waiting")], 0, None, None)
    driver._call_acknowledging("stock.shipment.out", "cancel", waiting)
    return list(waiting)


def test_a_split_order_ships_plant_by_plant_is_invoiced_and_a_dispute_goes_to_finance(
    hub: Any, driver: TrytonDriver
) -> None:
    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    order_id = accepted(hub, ("BRG-6204-2RS", home + 30), external="FUL-1")
    north, south = (order_reference(order_id, p) for p in ("PLANT-N", "PLANT-S"))
    assert sorted(e.reference for e in record(hub, order_id).erp_orders) == sorted([north, south])

    driver.ship(north)
    until(hub, order_id, "partially_shipped")
    driver.ship(south)
    until(hub, order_id, "shipped")
    driver.post_invoices(north)
    driver.post_invoices(south)
    until(hub, order_id, "invoiced")

    times = record(hub, order_id).fulfillment.times()
    assert all(times[k] for k in ("first_shipped_at", "shipped_at", "invoice_posted_at", "invoice_visible_at",
                                  "invoiced_at"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    buyer = {"Authorization": f"Bearer {api_key(hub, 'orders:read', 'invoices:write', account='C-1001')}"}
    view = client.get(f"/v1/orders/{order_id}", headers=buyer).json()
    assert [h["to"] for h in view["history"]][-4:] == ["accepted", "partially_shipped", "shipped", "invoiced"]
    assert {s["plant"] for s in view["shipments"] if s["state"] == "shipped"} == {"PLANT-N", "PLANT-S"}
    listed = client.get("/v1/invoices", params={"order_id": order_id}, headers=buyer).json()["items"]
    assert len(listed) == 2 and {i["state"] for i in listed} == {"posted"}
    assert sum(Decimal(i["total_amount"]) for i in listed) == Decimal(view["total"])

    r = client.post(f"/v1/invoices/{listed[0]['id']}/disputes", headers=buyer,
                    json={"reason": "the southern part arrived late", "lines": [{"line_no": 1}]})
    assert r.status_code == 201, r.text
    assert r.json()["owner_team"] == "finance"
    [case] = [c for c in client.get(f"/v1/orders/{order_id}", headers=buyer).json()["cases"]
              if c["type"] == "invoice_dispute"]
    assert case["id"] == r.json()["case_id"] and "arrived late" in case["summary"]
    disputed = {i["id"]: i["disputed"] for i in client.get("/v1/invoices", params={"order_id": order_id},
                                                            headers=buyer).json()["items"]}
    assert disputed == {listed[0]["id"]: True, listed[1]["id"]: False}
    assert not [c for c in view["cases"] if c["type"] == "fulfillment_discrepancy"]


def test_a_short_shipment_with_the_rest_cancelled_in_tryton_opens_one_case(hub: Any, driver: TrytonDriver) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20), external="FUL-2")
    reference = order_reference(order_id, "PLANT-N")

    driver.ship(reference, {1: Decimal(6)})
    until(hub, order_id, "partially_shipped")
    with hub.uow() as uow:
        assert uow.cases.open_for_order(order_id) == []  # the rest waits in a new shipment

    assert cancel_waiting_shipments(driver, reference)
    for _ in range(300):  # the cancellation reaches the hub through the poller
        hub.poller.poll_all()
        settle(hub)
        with hub.uow() as uow:
            found = uow.cases.open_for_order(order_id)
        if found:
            break
        time.sleep(0.1)
    [case] = found
    assert case.type.value == "fulfillment_discrepancy" and case.owner_team == "operations"
    assert "line 1 (BRG-6204-2RS): 6 of 10 shipped and the rest was cancelled" in case.summary
    assert state(hub, order_id) == "partially_shipped"
    hub.poller.poll_all()  # nothing new: still one case
    settle(hub)
    with hub.uow() as uow:
        assert [c.id for c in uow.cases.open_for_order(order_id)] == [case.id]
