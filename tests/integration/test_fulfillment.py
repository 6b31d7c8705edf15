"""Fulfillment, invoicing and invoice disputes on the ERP twin: the order follows its shipments and
invoices (split across plants, partial, short, over, out of order, repeated), discrepancies become one
case each, the WMS webhook is signed and idempotent, and disputes open one finance case per invoice
within the buyer's account."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import CaseType, Shipment, ShipmentLine, ShipmentState
from ordersync.config import WmsSettings
from ordersync.devkit import demo_data
from ordersync.domain.cases import resolve_case
from ordersync.domain.clock import FakeClock
from ordersync.domain.events import ErpShipmentChanged
from ordersync.domain.order import LineAmendment
from ordersync.flows.services.amendments import amend_order
from ordersync.flows.services.wms import sign
from ordersync.ports.erp import order_reference
from ordersync.reads.orders import fulfillment_record
from ordersync.reads.orders import webhook_attempts as attempts
from ordersync.server import create_app
from ordersync.store.schema import cases, outbox, wms_events
from tests.support.hub import api_key, erp_hub, events, order, place, record, settle, state

MAIN = demo_data.profile("main")
SECRET = "wms-shared-secret"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock) -> Any:
    h = erp_hub(tmp_path, {"main": erp}, clock=clock, wms=WmsSettings(secret=SECRET))
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def wms(hub: Any) -> str:
    return api_key(hub, "fulfillment:write", client="wms")


def accepted(hub: Any, *lines: tuple[str, int], account: str = "C-1001", ship_to: str | None = "RIS-DUS",
             external: str = "F-1") -> str:
    receipt = place(hub, order(account, *lines, external=external, ship_to=ship_to))
    settle(hub)
    assert state(hub, receipt.order_id) == "accepted"
    return receipt.order_id


def poll(hub: Any) -> None:
    hub.poller.poll_all()
    settle(hub)


def transitions(hub: Any, order_id: str) -> list[str]:
    return [t["to"] for t in view(hub, order_id)["history"]]


def view(hub: Any, order_id: str) -> dict[str, Any]:
    from ordersync.reads.orders import order_view

    with hub.db.read() as conn:
        found = order_view(conn, order_id)
    assert found is not None
    return found


def discrepancy_cases(hub: Any, order_id: str | None = None) -> list[dict[str, Any]]:
    query = select(cases.c.body).where(cases.c.type == CaseType.FULFILLMENT_DISCREPANCY.value)
    if order_id is not None:
        query = query.where(cases.c.order_id == order_id)
    with hub.db.read() as conn:
        return [json.loads(b) for b in conn.execute(query.order_by(cases.c.opened_at)).scalars()]


def report(hub: Any, order_id: str | None, reference: str, shipment: Shipment) -> None:
    """An ERP shipment change as the poller would emit it (for states the twin cannot reach)."""
    with hub.uow() as uow:
        uow.emit(ErpShipmentChanged(erp="main", reference=reference, order_id=order_id, shipment=shipment),
                 correlation_id=order_id)
    settle(hub)


def post_event(client: TestClient, key: str, clock: FakeClock, secret: str = SECRET, *, age: float = 0,
               signature: str | None = None, **event: Any) -> Any:
    """POST a WMS event signed like a warehouse would (``age``: seconds before now it was signed)."""
    payload = {"occurred_at": clock.now().isoformat(), **event}
    body = json.dumps(payload).encode()
    timestamp = str(int(clock.now().timestamp() - age))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
               "X-Ordersync-Timestamp": timestamp,
               "X-Ordersync-Signature": signature if signature is not None else sign(secret.encode(), timestamp, body)}
    return client.post("/v1/wms/events", content=body, headers=headers)


# -- the order follows its shipments and invoices ---------------------------------------------------------

def test_a_split_order_ships_plant_by_plant_and_is_invoiced_once_every_invoice_is_posted(
    hub: Any, erp: MemoryErp
) -> None:
    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    order_id = accepted(hub, ("BRG-6204-2RS", home + 30))
    north, south = (order_reference(order_id, p) for p in ("PLANT-N", "PLANT-S"))
    assert {o.reference for o in erp.orders_for(order_id)} == {north, south}

    erp.ship(north)
    poll(hub)
    assert state(hub, order_id) == "partially_shipped"
    times = record(hub, order_id).fulfillment
    assert times.first_shipped_at and times.shipped_at is None

    erp.ship(south)
    poll(hub)
    assert state(hub, order_id) == "shipped"
    assert record(hub, order_id).fulfillment.shipped_at

    erp.post_invoices(north)
    poll(hub)
    assert state(hub, order_id) == "shipped"  # the southern part is not invoiced yet
    times = view(hub, order_id)["fulfillment"]
    assert times["invoice_posted_at"] and times["invoice_visible_at"] and times["invoiced_at"] is None

    erp.post_invoices(south)
    poll(hub)
    assert state(hub, order_id) == "invoiced"
    assert transitions(hub, order_id)[-4:] == ["accepted", "partially_shipped", "shipped", "invoiced"]
    assert view(hub, order_id)["fulfillment"]["invoiced_at"]
    per_invoice = record(hub, order_id).fulfillment.invoices  # one invoice-sync clock per invoice
    assert len(per_invoice) == 2 and all(i.posted_at and i.visible_at and i.number for i in per_invoice.values())
    assert discrepancy_cases(hub) == []


def test_an_invoice_posted_before_shipping_is_recorded_and_the_order_is_invoiced_when_it_ships(
    hub: Any, erp: MemoryErp, clock: FakeClock
) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20))
    reference = order_reference(order_id, "PLANT-N")
    erp.post_invoices(reference)  # Tryton invoices on order: the invoice can come first
    poll(hub)
    assert state(hub, order_id) == "accepted"
    posted = record(hub, order_id).fulfillment.invoice_visible_at
    assert posted is not None
    clock.advance(3600)
    erp.ship(reference)
    poll(hub)
    assert state(hub, order_id) == "invoiced"
    assert transitions(hub, order_id)[-3:] == ["accepted", "shipped", "invoiced"]  # shipped is recorded on the way
    times = record(hub, order_id).fulfillment
    assert times.invoice_visible_at == posted and times.shipped_at is not None and times.shipped_at > posted


def test_a_partial_shipment_waits_for_the_rest_and_a_cancelled_rest_opens_one_short_case(
    hub: Any, erp: MemoryErp
) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10))
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference, {1: Decimal(4)})
    poll(hub)
    assert state(hub, order_id) == "partially_shipped"
    assert discrepancy_cases(hub) == []  # the rest waits in a new shipment: nothing is short yet

    [rest] = [s for s in erp.order(reference).shipments if s.state is ShipmentState.WAITING]  # type: ignore[union-attr]
    cancelled = rest.model_copy(update={"state": ShipmentState.CANCELLED})
    report(hub, order_id, reference, cancelled)  # the warehouse gave the rest up
    [case] = discrepancy_cases(hub, order_id)
    assert case["owner_team"] == "operations" and case["account_id"] == "C-1001"
    assert "line 1 (BRG-6204-2RS): 4 of 10 shipped and the rest was cancelled" in case["summary"]
    assert "ship the missing 6" in case["next_action"]
    assert state(hub, order_id) == "partially_shipped"

    version = record(hub, order_id).version
    report(hub, order_id, reference, cancelled)  # the same report again
    assert len(discrepancy_cases(hub, order_id)) == 1 and record(hub, order_id).version == version

    outcome = amend_order(hub.deps, order_id, [LineAmendment(line_no=1, quantity=Decimal(4))], account_id=None,
                          actor="operations")
    assert [a.line_no for a in outcome.applied] == [1]
    settle(hub)
    assert state(hub, order_id) == "shipped"  # the amended quantity has shipped in full


def test_an_over_shipment_and_an_unknown_line_open_one_case_each(hub: Any) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10))
    reference = order_reference(order_id, "PLANT-N")
    shipment = Shipment(id="9001", order_id=order_id, plant="PLANT-N", erp_ref="SH-9001", state=ShipmentState.SHIPPED,
                        lines=(ShipmentLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(12)),
                               ShipmentLine(line_no=7, sku="VLV-SV-24V-G12", quantity=Decimal(1))))
    report(hub, order_id, reference, shipment)
    report(hub, order_id, reference, shipment)
    summaries = sorted(c["summary"] for c in discrepancy_cases(hub, order_id))
    assert summaries == ["ERP main shipment SH-9001 lists line 7, which the order does not have",
                         "line 1 (BRG-6204-2RS): 12 shipped, 10 ordered (2 too many)"]
    assert state(hub, order_id) == "shipped"
    assert len(events(hub, "case.opened")) == 2


def test_an_event_for_an_unknown_order_opens_a_case_and_other_erp_orders_are_not_the_hubs(
    hub: Any, client: TestClient, wms: str, clock: FakeClock
) -> None:
    ghost = Shipment(id="77", order_id="gone", plant="PLANT-N", state=ShipmentState.SHIPPED,
                     lines=(ShipmentLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(1)),))
    report(hub, "gone", order_reference("gone", "PLANT-N"), ghost)
    report(hub, None, "PHONE-ORDER-12", ghost.model_copy(update={"id": "78"}))  # keyed in the ERP directly
    for event_id in ("E-1", "E-2"):
        r = post_event(client, wms, clock, event_id=event_id, type="ship", reference="NOPE-123",
                       lines=[{"line_no": 1, "quantity": "5"}], carrier="DHL", tracking_number="JD0001")
        assert r.status_code == 202 and r.json() == {"event_id": event_id, "status": "accepted", "order_id": None}
    settle(hub)
    found = discrepancy_cases(hub)
    assert len(found) == 2 and all(c["order_id"] is None for c in found)
    erp_case, wms_case = sorted(c["summary"] for c in found)
    assert erp_case.startswith("ERP main shipment 77 belongs to OS-gone-PLANT-N, but the hub has no such order")
    assert wms_case.startswith("wms event E-1 (ship) names order 'NOPE-123', but the hub has no such order")


def test_reports_out_of_order_or_repeated_never_move_an_order_back(
    hub: Any, client: TestClient, wms: str, clock: FakeClock
) -> None:
    first = accepted(hub, ("BRG-6204-2RS", 10), external="O-1")
    second = accepted(hub, ("BRG-6204-2RS", 10), external="O-2")

    def send(order_id: str, event_id: str, kind: str, quantity: int | None = None, **extra: Any) -> None:
        lines = [{"line_no": 1, "quantity": str(quantity)}] if quantity is not None else []
        r = post_event(client, wms, clock, event_id=event_id, type=kind, order_id=order_id, lines=lines, **extra)
        assert r.status_code in (200, 202), r.text
        settle(hub)
        clock.advance(60)

    send(first, "A-1", "pick", 10, shipment_ref="P-1")
    assert state(hub, first) == "in_fulfillment"
    send(first, "A-2", "ship", 4, shipment_ref="P-1", carrier="DHL", tracking_number="JD01")
    assert state(hub, first) == "partially_shipped"
    send(first, "A-3", "ship", 6, shipment_ref="P-2", carrier="DHL", tracking_number="JD02")
    assert state(hub, first) == "shipped"

    delivered_at = clock.now().isoformat()
    send(second, "B-1", "delivered", 10, carrier="UPS", tracking_number="1Z9")  # straight on: nothing before
    assert state(hub, second) == "shipped" and transitions(hub, second)[-2:] == ["accepted", "shipped"]
    version = record(hub, second).version
    send(second, "B-2", "pick", 10)  # late
    send(second, "B-3", "in_transit", carrier="UPS", tracking_number="1Z9")  # late
    send(second, "B-1", "delivered", 10, carrier="UPS", tracking_number="1Z9",
         occurred_at=delivered_at)  # the warehouse delivers the first event again (signed anew)
    assert record(hub, second).version == version and state(hub, second) == "shipped"

    [parcel] = [s for s in view(hub, second)["shipments"] if s["source"] == "wms"]  # the ERP's waits, unnamed
    assert (parcel["source"], parcel["carrier"], parcel["tracking_number"], parcel["carrier_status"]) == (
        "wms", "UPS", "1Z9", "delivered")
    assert view(hub, second)["fulfillment"]["delivered_at"]
    tracking = {s["tracking_number"]: s["state"] for s in view(hub, first)["shipments"] if s["source"] == "wms"}
    assert tracking == {"JD01": "shipped", "JD02": "shipped"}
    assert discrepancy_cases(hub) == []


def test_tracking_from_the_warehouse_shows_on_the_erp_shipment_it_names(
    hub: Any, erp: MemoryErp, client: TestClient, wms: str, clock: FakeClock
) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10))
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference, carrier="")  # no carrier in the ERP: what the warehouse reports is all there is
    poll(hub)
    [shipment] = view(hub, order_id)["shipments"]
    with hub.db.read() as conn:
        number = fulfillment_record(conn, order_id).shipments[f"erp:main:{shipment['id']}"].erp_ref
    assert number and number != shipment["id"]  # the warehouse knows the ERP's shipment number
    r = post_event(client, wms, clock, event_id="T-1", type="exception", reference=reference, shipment_ref=number,
                   carrier="DHL", tracking_number="JD77", detail="address not found")
    assert r.status_code == 202 and r.json()["order_id"] == order_id
    settle(hub)
    [shown] = view(hub, order_id)["shipments"]
    assert (shown["source"], shown["state"], shown["carrier"], shown["tracking_number"], shown["carrier_status"]) == (
        "erp", "shipped", "DHL", "JD77", "exception")
    [case] = discrepancy_cases(hub, order_id)
    assert case["summary"] == "DHL reports an exception for JD77: address not found"
    assert state(hub, order_id) == "shipped"


# -- the signed webhook ---------------------------------------------------------------------------------

def test_the_wms_webhook_takes_signed_fresh_events_once_and_records_every_refusal(
    hub: Any, client: TestClient, wms: str, clock: FakeClock
) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10))
    event = {"event_id": "W-1", "type": "pick", "order_id": order_id, "lines": [{"line_no": 1, "quantity": "10"}]}

    def count(table: Any) -> int:
        with hub.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    refused = [
        (post_event(client, wms, clock, "wrong-secret", **event), "bad_signature"),
        (post_event(client, wms, clock, signature="", **event), "missing_signature"),
        (post_event(client, wms, clock, signature="md5=abc", **event), "malformed_signature"),
        (post_event(client, wms, clock, age=301, **event), "stale_timestamp"),
        (post_event(client, wms, clock, age=-400, **event), "future_timestamp"),
    ]
    for r, reason in refused:
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["reason"] == reason
    outbox_before = count(outbox)
    assert count(wms_events) == 0 and state(hub, order_id) == "accepted"

    good = post_event(client, wms, clock, age=299, **event)
    assert good.status_code == 202 and good.json() == {"event_id": "W-1", "status": "accepted", "order_id": order_id}
    replay = client.post("/v1/wms/events", content=good.request.content, headers=dict(good.request.headers))
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    clock.advance(10)
    late = client.post("/v1/wms/events", content=good.request.content, headers=dict(good.request.headers))
    assert late.status_code == 401 and late.json()["reason"] == "stale_timestamp"  # a captured request expires
    reused = post_event(client, wms, clock, **{**event, "type": "pack"})
    assert reused.status_code == 409
    settle(hub)
    assert state(hub, order_id) == "in_fulfillment"
    assert count(wms_events) == 1 and count(outbox) > outbox_before
    assert len(events(hub, "wms.shipment_event")) == 1

    with hub.db.read() as conn:
        seen = [(a["outcome"], a["reason"]) for a in reversed(attempts(conn))]
    assert seen == [("refused", reason) for _, reason in refused] + [
        ("accepted", "ok"), ("duplicate", "redelivery"), ("refused", "stale_timestamp"),
        ("refused", "event_id_reused")]


def test_the_wms_webhook_needs_a_wms_key_with_its_scope_and_quarantines_an_invalid_event(
    hub: Any, client: TestClient, wms: str, clock: FakeClock
) -> None:
    event = {"event_id": "K-1", "type": "ship", "order_id": "x"}
    portal = api_key(hub, "fulfillment:write", client="portal")
    reader = api_key(hub, "orders:read", client="wms")
    assert post_event(client, portal, clock, **event).status_code == 403
    assert post_event(client, reader, clock, **event).status_code == 403
    assert client.post("/v1/wms/events", json=event).status_code == 401
    with hub.db.read() as conn:
        assert attempts(conn) == []  # the keys were refused before the signature check
    bad_events = (
        ({"event_id": "K-2", "type": "ship"}, "name the order"),
        ({"event_id": "K-3", "type": "teleport", "order_id": "x"}, "$.type: Input should be 'pick'"),
        ({"event_id": "K-4", "type": "ship", "order_id": "x", "lines": [{"line_no": 0, "quantity": "1"}]},
         "$.lines[0].line_no: Input should be greater than or equal to 1"),
        ({**event, "occurred_at": "2026-01-05T09:00:00"}, "$.occurred_at"),
    )
    for bad, reason in bad_events:  # signed but invalid: kept with the reason (docs/contracts.md), not applied
        r = post_event(client, wms, clock, **bad)
        assert r.status_code == 202 and r.json()["status"] == "quarantined", r.text
        assert reason in r.json()["reason"] and r.json()["quarantine_id"]
    with hub.db.read() as conn:
        assert [a["outcome"] for a in attempts(conn)] == ["quarantined"] * 4
        assert int(conn.execute(select(func.count()).select_from(wms_events)).scalar_one()) == 0
    unsigned_and_bad = post_event(client, wms, clock, "wrong-secret", event_id="K-5", type="teleport")
    assert unsigned_and_bad.status_code == 401  # the signature is checked before the body is looked at


def test_without_a_configured_secret_the_webhook_refuses_everything(tmp_path: Path, clock: FakeClock) -> None:
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, clock=clock)
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        key = api_key(hub, "fulfillment:write", client="wms")
        r = post_event(client, key, clock, event_id="N-1", type="ship", order_id="x")
        assert r.status_code == 503 and r.headers["Retry-After"]
        with hub.db.read() as conn:
            assert [a["reason"] for a in attempts(conn)] == ["not_configured"]
    finally:
        hub.close()


# -- invoice disputes -----------------------------------------------------------------------------------

def test_a_dispute_opens_one_finance_case_per_invoice_within_the_buyers_account(
    hub: Any, erp: MemoryErp, client: TestClient
) -> None:
    order_id = accepted(hub, ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20))
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference)
    erp.post_invoices(reference)
    poll(hub)
    assert state(hub, order_id) == "invoiced"
    mine = {"Authorization": f"Bearer {api_key(hub, 'orders:read', 'invoices:write', account='C-1001')}"}
    theirs = {"Authorization": f"Bearer {api_key(hub, 'orders:read', 'invoices:write', account='C-1002')}"}
    reader = {"Authorization": f"Bearer {api_key(hub, 'orders:read', account='C-1001')}"}
    ops = {"Authorization": f"Bearer {api_key(hub, 'invoices:write', client='ops')}"}
    [invoice] = client.get("/v1/invoices", headers=mine).json()["items"]
    assert invoice["disputed"] is False
    url = f"/v1/invoices/{invoice['id']}/disputes"
    body = {"reason": "price of line 1 is not our contract price", "lines": [{"line_no": 1}], "amount": "10.00"}

    assert client.post(url, json=body, headers=theirs).status_code == 404
    assert client.post(url, json={**body, "account_id": "C-1002"}, headers=mine).status_code == 404
    assert client.post(url, json=body, headers=ops).status_code == 422  # an unbound key names the account
    assert client.post(url, json=body, headers=reader).status_code == 403
    assert client.post("/v1/invoices/999999/disputes", json=body, headers=mine).status_code == 404
    for bad in ({**body, "lines": [{"line_no": 9}]}, {**body, "amount": "999999"},
                {**body, "lines": [{"line_no": 1, "quantity": "11"}]}, {"reason": ""}):
        r = client.post(url, json=bad, headers=mine)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (bad, r.text)
    assert events(hub, "invoice.disputed") == []

    first = client.post(url, json=body, headers=mine)
    assert first.status_code == 201, first.text
    out = first.json()
    assert (out["owner_team"], out["case_state"], out["created"], out["order_id"]) == ("finance", "open", True,
                                                                                       order_id)
    again = client.post(url, json={"reason": "and line 2 arrived damaged", "comment": "photos by mail"}, headers=mine)
    assert again.status_code == 200 and again.json()["dispute_id"] == out["dispute_id"] and not again.json()["created"]
    by_ops = client.post(url, json={"reason": "buyer called", "account_id": "C-1001"}, headers=ops)
    assert by_ops.status_code == 200 and by_ops.json()["case_id"] == out["case_id"]

    [case] = [c for c in view(hub, order_id)["cases"] if c["type"] == "invoice_dispute"]
    assert case["id"] == out["case_id"] and case["owner_team"] == "finance"
    assert "not our contract price" in case["summary"]
    assert [e["action"] for e in case["history"]] == ["opened", "disputed_again", "disputed_again"]
    assert "line 2 arrived damaged; photos by mail" in case["history"][1]["comment"]
    [disputed] = [json.loads(b)["payload"] for b in events(hub, "invoice.disputed")]
    assert (disputed["invoice_id"], disputed["case_id"], disputed["account_id"]) == (invoice["id"], case["id"],
                                                                                     "C-1001")
    assert view(hub, order_id)["invoices"][0]["disputed"] is True
    assert client.get("/v1/invoices", headers=mine).json()["items"][0]["disputed"] is True
    assert client.get(f"/v1/orders/{order_id}", headers=mine).json()["invoices"][0]["disputed"] is True
    assert client.get("/v1/invoices", headers=theirs).json()["items"] == []

    with hub.uow() as uow:  # finance resolves it: the invoice is no longer disputed, a new dispute is new
        uow.cases.save(resolve_case(uow.cases.get(case["id"]), action="credit_note", actor="finance",
                                    comment="credit note issued", now=uow.now()))
    assert client.get("/v1/invoices", headers=mine).json()["items"][0]["disputed"] is False
    fresh = client.post(url, json={"reason": "still wrong"}, headers=mine)
    assert fresh.status_code == 201 and fresh.json()["case_id"] != out["case_id"]
    assert len(events(hub, "invoice.disputed")) == 2


def test_shipments_cases_webhook_and_disputes_work_the_same_on_postgresql(tmp_path: Path, store_url: str,
                                                                          clock: FakeClock) -> None:
    erp = MemoryErp.from_profile("main", name="main")
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, store=store_url, wms=WmsSettings(secret=SECRET))
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        order_id = accepted(hub, ("BRG-6204-2RS", 10))
        reference = order_reference(order_id, "PLANT-N")
        erp.ship(reference, {1: Decimal(7)})
        erp.post_invoices(reference)
        poll(hub)
        assert state(hub, order_id) == "partially_shipped"
        [rest] = [s for s in erp.order(reference).shipments if s.state is ShipmentState.WAITING]  # type: ignore[union-attr]
        for _ in range(2):
            report(hub, order_id, reference, rest.model_copy(update={"state": ShipmentState.CANCELLED}))
        [case] = discrepancy_cases(hub, order_id)
        assert "7 of 10 shipped" in case["summary"]

        key = api_key(hub, "fulfillment:write", client="wms")
        r = post_event(client, key, clock, event_id="PG-1", type="in_transit", reference=reference,
                       carrier="DHL", tracking_number="JD9")
        assert r.status_code == 202 and r.json()["order_id"] == order_id
        again = client.post("/v1/wms/events", content=r.request.content, headers=dict(r.request.headers))
        assert again.json()["status"] == "duplicate"
        settle(hub)
        assert "JD9" in {s["tracking_number"] for s in view(hub, order_id)["shipments"]}

        buyer = {"Authorization": f"Bearer {api_key(hub, 'orders:read', 'invoices:write', account='C-1001')}"}
        [invoice] = client.get("/v1/invoices", headers=buyer).json()["items"]
        first = client.post(f"/v1/invoices/{invoice['id']}/disputes", json={"reason": "short"}, headers=buyer)
        second = client.post(f"/v1/invoices/{invoice['id']}/disputes", json={"reason": "still"}, headers=buyer)
        assert (first.status_code, second.status_code) == (201, 200)
        assert client.get("/v1/invoices", headers=buyer).json()["items"][0]["disputed"] is True
    finally:
        hub.close()
