"""A return against a real Tryton: order, ship, ask for a return over the API, see it authorized as a
return sale in Tryton, receive the goods and post the credit note there, and read both back through the
API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.ports.erp import order_reference, return_reference
from ordersync.server import create_app
from tests.support.hub import api_key, settle
from tests.support.tryton import admin, erp_settings

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


@pytest.fixture
def hub(tryton: Any, tmp_path: Path) -> Iterator[Any]:
    h = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1)]))
    yield h
    h.close()


@pytest.fixture
def erp_side(tryton: Any) -> Iterator[TrytonSimulator]:
    simulator = TrytonSimulator.connect(tryton.url, "main")
    yield simulator
    simulator.close()


def until(hub: Any, done: Callable[[], bool], what: str, rounds: int = 300) -> None:
    """Poll the ERP and run the worker until ``done()``."""
    for _ in range(rounds):
        hub.poller.poll_all()
        settle(hub)
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def test_a_return_asked_for_over_the_api_is_authorized_received_and_credited_in_tryton(
    hub: Any, tryton: Any, erp_side: TrytonSimulator
) -> None:
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    key = {"Authorization": "Bearer " + api_key(hub, "orders:read", "orders:write", "returns:write",
                                                  account="C-1001")}
    lines = [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"},
             {"line_no": 2, "sku": "SEN-PX-M12-NPN", "quantity": "4"}]
    placed = client.post("/v1/orders", headers=key,
                         json={"external_order_number": "RT-E2E-1", "ship_to_id": "RIS-DUS", "lines": lines})
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]

    def order() -> Any:
        return client.get(f"/v1/orders/{order_id}", headers=key).json()

    until(hub, lambda: order()["state"] == "accepted", "order accepted")
    erp_side.ship(order_reference(order_id, "PLANT-N"), {1: Decimal(6)})
    until(hub, lambda: any(s["state"] == "shipped" for s in order()["shipments"]), "shipment reported")

    asked = client.post("/v1/returns", headers=key, json={"order_id": order_id, "lines": [
        {"line_no": 1, "quantity": "4", "reason": "wrong size"}]})
    assert asked.status_code == 201, asked.text
    location = asked.headers["Location"]

    def state() -> str:
        result: str = client.get(location, headers=key).json()["state"]
        return result

    until(hub, lambda: state() != "requested", "return decided")
    body = client.get(location, headers=key).json()
    reference = return_reference(body["id"], "PLANT-N")
    assert body["state"] == "approved", body
    [part] = body["erp_returns"]
    assert (part["plant"], part["reference"], part["state"]) == ("PLANT-N", reference, "approved") and part["number"]

    client_admin = admin(tryton)
    try:  # Tryton holds a confirmed return sale of the original sale, 4 coming back
        [(original_id, _)] = erp_side.sales_with_reference(order_reference(order_id, "PLANT-N"))
        [sale] = client_admin.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None,
                                   ["state", "number", "origin", "lines", "shipment_returns"])
        assert sale["state"] == "processing" and sale["number"] == part["number"]
        assert sale["origin"] == f"sale.sale,{original_id}" and len(sale["shipment_returns"]) == 1
        [line] = client_admin.call("sale.line", "read", sale["lines"], ["quantity", "sequence"])
        assert (line["sequence"], line["quantity"]) == (1, -4.0)
    finally:
        client_admin.close()

    erp_side.receive_return(reference)
    until(hub, lambda: state() == "received", "return received")
    erp_side.post_invoices(reference)
    until(hub, lambda: state() == "credited", "return credited")
    assert client.get(location, headers=key).json()["erp_returns"][0]["state"] == "credited"
