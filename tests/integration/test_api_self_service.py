"""Order self-service over HTTP (in-process ASGI, ERP twin): history with keyset pages, shipments and
invoices from ERP changes, reorders, amendments decided by the ERP, return requests; account isolation
throughout."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.config import ErpSettings
from ordersync.devkit import demo_data
from ordersync.domain.clock import FakeClock
from ordersync.domain.events import MESSAGE_TYPES
from ordersync.ports.erp import order_reference
from ordersync.server import create_app
from ordersync.store.schema import invoices, return_requests, shipments
from tests.support.hub import api_key, erp_hub, events, record, settle

MAIN = demo_data.profile("main")


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Any:
    # the ERP's changes reach the hub when a test polls (``hub.poller.poll_all()``), not when the worker's
    # periodic poll happens to come round during a slow ``settle`` (a shipment reported that early
    # changes what a return may ask for)
    h = erp_hub(tmp_path, {"main": erp}, erp=[ErpSettings(name="main", kind="memory", retries=1, reset_timeout=0.2,
                                                          poll_seconds=3600)])
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def mine(hub: Any) -> dict[str, str]:
    """A portal key of account C-1001 with every self-service scope."""
    return auth(api_key(hub, "orders:read", "orders:write", "returns:write", account="C-1001"))


@pytest.fixture
def theirs(hub: Any) -> dict[str, str]:
    return auth(api_key(hub, "orders:read", "orders:write", "returns:write", account="C-1002"))


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def place(client: TestClient, headers: dict[str, str], number: str, *lines: tuple[str, int], **extra: Any) -> str:
    """Place an order over the API; an item ``part:<number>`` is a customer part number."""
    body = {"external_order_number": number, "ship_to_id": "RIS-DUS", **extra, "lines": [
        {"line_no": i, "quantity": str(q),
         **({"customer_part_number": item[5:]} if item.startswith("part:") else {"sku": item})}
        for i, (item, q) in enumerate(lines, 1)]}
    r = client.post("/v1/orders", json=body, headers=headers)
    assert r.status_code == 202, r.text
    order_id: str = r.json()["order_id"]
    return order_id


def ship_and_invoice(hub: Any, erp: MemoryErp, order_id: str, quantities: dict[int, Decimal] | None = None) -> None:
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference, quantities)
    erp.post_invoices(reference)
    hub.poller.poll_all()
    settle(hub)


def amended_events(hub: Any) -> list[dict[str, Any]]:
    return [json.loads(b)["payload"] for b in events(hub, "order.amended")]


def count(hub: Any, table: Any) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# -- history --------------------------------------------------------------------------------------------

def test_history_pages_newest_first_without_repeats_or_gaps_while_orders_arrive(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, clock=clock)
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        key = auth(api_key(hub, "orders:read", "orders:write", account="C-1001"))
        other = auth(api_key(hub, "orders:read", "orders:write", account="C-1002"))
        placed = []
        for i in range(11):
            placed.append(place(client, key, f"H-{i}", ("BRG-6204-2RS", 1), buyer_po_number=f"PO-{i % 3}"))
            if i % 4 == 3:
                clock.advance(60)  # the others share a received_at: the id breaks the tie
        place(client, other, "H-X", ("SEN-PX-M12-NPN", 5), ship_to_id=None)
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/orders", params=params, headers=key).json()
            seen += page["items"]
            if len(seen) == 4:  # a new order arriving mid-walk shows on no later page
                late = place(client, key, "H-late", ("BRG-6204-2RS", 1))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ids = [o["id"] for o in seen]
        assert sorted(ids) == sorted(placed) and len(ids) == len(set(ids)) == 11
        assert late not in ids
        keys = [(o["received_at"], o["id"]) for o in seen]
        assert keys == sorted(keys, reverse=True)
        assert set(seen[0]) >= {"id", "external_order_number", "buyer_po_number", "state", "received_at",
                                "updated_at", "total", "currency", "partial"}
    finally:
        hub.close()


def test_history_filters_and_account_binding(hub: Any, client: TestClient, mine: dict[str, str],
                                             theirs: dict[str, str]) -> None:
    a = place(client, mine, "F-1", ("BRG-6204-2RS", 2), buyer_po_number="PO-77")
    b = place(client, mine, "F-2", ("BRG-6204-2RS", 2))
    settle(hub)
    c = place(client, mine, "F-3", ("BRG-6204-2RS", 2))  # still received
    place(client, theirs, "T-1", ("SEN-PX-M12-NPN", 2), ship_to_id=None)

    def ids(**params: Any) -> list[str]:
        r = client.get("/v1/orders", params=params, headers=mine)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["items"]]

    assert ids() == [c, b, a]
    assert ids(buyer_po_number="PO-77") == [a]
    assert ids(external_order_number="F-2") == [b]
    assert ids(state="received") == [c] and set(ids(state="accepted")) == {a, b}
    assert ids(channel="portal") == [c, b, a] and ids(channel="edi") == []
    today = hub.clock.now().date()
    assert ids(placed_from=today.isoformat(), placed_to=today.isoformat()) == [c, b, a]
    assert ids(placed_from="2099-01-01") == [] and ids(placed_to="2000-01-01") == []
    [summary] = client.get("/v1/orders", params={"external_order_number": "F-1"}, headers=mine).json()["items"]
    assert summary["state"] == "accepted" and summary["buyer_po_number"] == "PO-77" and Decimal(summary["total"]) > 0
    bad = client.get("/v1/orders", params={"placed_from": "2026-02-01", "placed_to": "2026-01-01"}, headers=mine)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    for lax in ("0", "1767225600", "20260101", "2026-01-01junk"):  # not read as Unix timestamps, nor cut short
        r = client.get("/v1/orders", params={"placed_to": lax}, headers=mine)
        assert r.status_code == 422 and "query.placed_to" in r.text and "ISO 8601" in r.text, r.text
    assert client.get("/v1/orders", params={"cursor": "not-a-cursor"}, headers=mine).status_code == 422
    assert client.get("/v1/orders", params={"limit": 201}, headers=mine).status_code == 422
    # a bound key cannot ask for another account; an unbound key must name one
    assert client.get("/v1/orders", params={"account_id": "C-1002"}, headers=mine).status_code == 404
    ops = auth(api_key(hub, "orders:read", client="ops"))
    assert client.get("/v1/orders", headers=ops).status_code == 422
    their_page = client.get("/v1/orders", params={"account_id": "C-1002"}, headers=ops).json()
    their_ids = [o["id"] for o in their_page["items"]]
    assert len(their_ids) == 1 and not {a, b, c} & set(their_ids)


def test_history_filters_and_pages_the_same_on_postgresql(tmp_path: Path, store_url: str) -> None:
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, store=store_url)
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        key = auth(api_key(hub, "orders:read", "orders:write", account="C-1001"))
        placed = [place(client, key, f"PG-{i}", ("BRG-6204-2RS", 1), buyer_po_number=f"PO-{i % 2}")
                  for i in range(5)]
        first = client.get("/v1/orders", params={"limit": 2, "buyer_po_number": "PO-0"}, headers=key).json()
        rest = client.get("/v1/orders", params={"limit": 2, "buyer_po_number": "PO-0",
                                                "cursor": first["next_cursor"]}, headers=key).json()
        assert [o["id"] for o in first["items"] + rest["items"]] == [placed[4], placed[2], placed[0]]
        assert rest["next_cursor"] is None
    finally:
        hub.close()


# -- shipments and invoices -----------------------------------------------------------------------------

def test_the_order_shows_shipments_and_invoices_the_erp_reported(hub: Any, erp: MemoryErp, client: TestClient,
                                                                 mine: dict[str, str], theirs: dict[str, str]) -> None:
    order_id = place(client, mine, "D-1", ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20))
    settle(hub)
    ship_and_invoice(hub, erp, order_id, {1: Decimal(4)})
    view = client.get(f"/v1/orders/{order_id}", headers=mine).json()
    by_state = {s["state"]: s for s in view["shipments"]}
    assert set(by_state) == {"shipped", "waiting"}
    assert {(x["line_no"], Decimal(x["quantity"])) for x in by_state["shipped"]["lines"]} == {
        (1, Decimal(4)), (2, Decimal(20))}
    assert [(x["line_no"], Decimal(x["quantity"])) for x in by_state["waiting"]["lines"]] == [(1, Decimal(6))]
    assert set(by_state["shipped"]) >= {"carrier", "tracking_number", "shipped_at"}
    [invoice] = view["invoices"]
    assert invoice["state"] == "posted" and invoice["number"] and invoice["due_date"]
    assert Decimal(invoice["total_amount"]) == Decimal(view["total"])
    listed = client.get("/v1/invoices", headers=mine).json()
    assert [i["number"] for i in listed["items"]] == [invoice["number"]] and listed["next_cursor"] is None
    assert client.get("/v1/invoices", headers=theirs).json()["items"] == []
    assert client.get("/v1/invoices", params={"account_id": "C-1001"}, headers=theirs).status_code == 404


def test_a_redelivered_document_change_changes_nothing(hub: Any, erp: MemoryErp, client: TestClient,
                                                       mine: dict[str, str]) -> None:
    order_id = place(client, mine, "D-2", ("BRG-6204-2RS", 10))
    settle(hub)
    ship_and_invoice(hub, erp, order_id)
    before = client.get(f"/v1/orders/{order_id}", headers=mine).json()
    with hub.db.read() as conn:
        bodies = list(conn.execute(select(shipments.c.body).order_by(shipments.c.shipment_id)).scalars())
    with hub.uow() as uow:  # the same changes once more, as a replay from the dead letters would send them
        for body in events(hub, "erp.shipment_changed") + events(hub, "erp.invoice_posted"):
            envelope = json.loads(body)
            uow.emit(MESSAGE_TYPES[envelope["type"]].model_validate(envelope["payload"]), correlation_id=order_id)
    settle(hub)
    after = client.get(f"/v1/orders/{order_id}", headers=mine).json()
    assert after["shipments"] == before["shipments"] and after["invoices"] == before["invoices"]
    assert count(hub, shipments) == len(bodies) and count(hub, invoices) == 1


def test_invoices_page_by_cursor_and_filter_by_order_and_state(hub: Any, erp: MemoryErp, client: TestClient,
                                                               mine: dict[str, str]) -> None:
    orders = [place(client, mine, f"I-{i}", ("BRG-6204-2RS", 5 + i)) for i in range(3)]
    settle(hub)
    for order_id in orders:
        ship_and_invoice(hub, erp, order_id)
    numbers = []
    cursor = None
    while True:
        page = client.get("/v1/invoices", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=mine).json()
        numbers += [i["number"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(numbers) == len(set(numbers)) == 3
    one = client.get("/v1/invoices", params={"order_id": orders[1]}, headers=mine).json()["items"]
    assert [i["order_id"] for i in one] == [orders[1]]
    assert client.get("/v1/invoices", params={"state": "paid"}, headers=mine).json()["items"] == []
    assert client.get("/v1/invoices", params={"state": "bogus"}, headers=mine).status_code == 422


# -- isolation ------------------------------------------------------------------------------------------

def test_nothing_of_another_account_is_visible_or_changeable(hub: Any, erp: MemoryErp, client: TestClient,
                                                             mine: dict[str, str], theirs: dict[str, str]) -> None:
    foreign = place(client, theirs, "ISO-1", ("SEN-PX-M12-NPN", 10), ship_to_id=None)
    settle(hub)
    erp.ship(order_reference(foreign, "PLANT-S") if erp.orders_for(foreign)[0].plant == "PLANT-S"
             else order_reference(foreign, "PLANT-N"))
    hub.poller.poll_all()
    settle(hub)
    created = client.post("/v1/returns", json={"order_id": foreign, "lines": [{"line_no": 1, "quantity": "1"}]},
                          headers=theirs)
    assert created.status_code == 201, created.text
    attempts = [
        client.get(f"/v1/orders/{foreign}", headers=mine),
        client.post(f"/v1/orders/{foreign}/reorder", headers=mine),
        client.post(f"/v1/orders/{foreign}/amendments", json={"changes": [{"line_no": 1, "cancel": True}]},
                    headers=mine),
        client.post("/v1/returns", json={"order_id": foreign, "lines": [{"line_no": 1, "quantity": "1"}]},
                    headers=mine),
        client.get(created.headers["Location"], headers=mine),
        client.get("/v1/invoices", params={"order_id": foreign, "account_id": "C-1002"}, headers=mine),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert not any("SEN-PX-M12-NPN" in r.text or "C-1002" in r.text for r in attempts[:5])
    assert client.get("/v1/orders", headers=mine).json()["items"] == []
    assert client.get("/v1/invoices", params={"order_id": foreign}, headers=mine).json()["items"] == []
    assert count(hub, return_requests) == 1 and amended_events(hub) == []
    assert record(hub, foreign).state.value == "shipped"  # as its own ERP said; nothing of A's changed it


# -- reorder --------------------------------------------------------------------------------------------

def test_a_reorder_places_the_same_lines_again_once_per_idempotency_key(hub: Any, client: TestClient,
                                                                        mine: dict[str, str]) -> None:
    past = place(client, mine, "R-1", ("part:RIS-220-0412", 20), ("BRG-6204-2RS", 10))
    settle(hub)
    first = client.post(f"/v1/orders/{past}/reorder", headers={**mine, "Idempotency-Key": "re-1"})
    assert first.status_code == 202, first.text
    again = client.post(f"/v1/orders/{past}/reorder", headers={**mine, "Idempotency-Key": "re-1"})
    assert again.json()["order_id"] == first.json()["order_id"] and again.headers["Idempotent-Replayed"] == "true"
    conflict = client.post(f"/v1/orders/{past}/reorder", json={"buyer_po_number": "X"},
                           headers={**mine, "Idempotency-Key": "re-1"})
    assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
    second = client.post(f"/v1/orders/{past}/reorder", json={"buyer_po_number": "PO-9", "requested_date": None},
                         headers={**mine, "Idempotency-Key": "re-2"})
    assert second.status_code == 202 and second.json()["order_id"] != first.json()["order_id"]
    named = client.post(f"/v1/orders/{past}/reorder", json={"external_order_number": "MY-OWN"}, headers=mine)
    settle(hub)
    new = client.get(first.headers["Location"], headers=mine).json()
    old = client.get(f"/v1/orders/{past}", headers=mine).json()
    assert new["external_order_number"] == "R-1-R1" and new["state"] == "accepted", new["rejection"]
    assert new["ship_to_id"] == old["ship_to_id"] == "RIS-DUS" and new["account_id"] == "C-1001"
    assert [(x["sku"], x["quantity"]) for x in new["lines"]] == [(x["sku"], x["quantity"]) for x in old["lines"]]
    assert new["lines"][0]["customer_part_number"] is None  # by SKU, as the hub resolved it
    second_view = client.get(second.headers["Location"], headers=mine).json()
    assert second_view["external_order_number"] == "R-1-R2" and second_view["buyer_po_number"] == "PO-9"
    assert client.get(named.headers["Location"], headers=mine).json()["external_order_number"] == "MY-OWN"
    assert len(client.get("/v1/orders", headers=mine).json()["items"]) == 4
    assert client.post("/v1/orders/nope/reorder", headers=mine).status_code == 404


# -- amendments -----------------------------------------------------------------------------------------

def test_an_amendment_is_decided_by_the_erp_and_recorded_with_the_order(hub: Any, erp: MemoryErp,
                                                                        client: TestClient,
                                                                        mine: dict[str, str]) -> None:
    order_id = place(client, mine, "A-1", ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20), ("SEN-PX-M12-NPN", 5))
    settle(hub)
    later = hub.clock.now().date() + dt.timedelta(days=30)
    r = client.post(f"/v1/orders/{order_id}/amendments", headers=mine, json={"changes": [
        {"line_no": 1, "quantity": "15"},
        {"line_no": 2, "cancel": True},
        {"line_no": 3, "requested_date": later.isoformat()},
    ]})
    assert r.status_code == 200, r.text
    out = r.json()
    reference = order_reference(order_id, "PLANT-N")
    assert [(a["line_no"], a["erp_orders"]) for a in out["applied"]] == [(1, [reference]), (2, [reference])]
    [refused] = out["refused"]
    assert refused["line_no"] == 3 and "one shipment" in refused["reason"]  # the ERP's reason, passed on
    lines = {x.line_no: x.quantity for x in erp.order(reference).lines}  # type: ignore[union-attr]
    assert lines == {1: Decimal(15), 2: Decimal(0), 3: Decimal(5)}
    view = client.get(f"/v1/orders/{order_id}", headers=mine).json()
    assert [(x["quantity"], x["cancelled"]) for x in view["lines"]] == [("15", False), ("0", True), ("5", False)]
    price = {x["line_no"]: Decimal(x["unit_price"]) for x in view["lines"]}
    assert Decimal(view["total"]) == (15 * price[1] + 5 * price[3]).quantize(Decimal("0.01"))
    assert sum(Decimal(a["quantity"]) for a in view["lines"][0]["allocations"]) == 15
    assert view["lines"][1]["allocations"] == []
    [event] = amended_events(hub)
    assert event["order_id"] == order_id and [a["line_no"] for a in event["applied"]] == [1, 2]
    assert event["refused"][0]["line_no"] == 3
    again = client.post(f"/v1/orders/{order_id}/amendments", headers=mine,
                        json={"changes": [{"line_no": 2, "quantity": "3"}]}).json()
    assert again["applied"] == [] and "cancelled" in again["refused"][0]["reason"]
    assert len(amended_events(hub)) == 1  # nothing applied, nothing recorded


def test_shipped_quantity_cannot_be_amended_away(hub: Any, erp: MemoryErp, client: TestClient,
                                                 mine: dict[str, str]) -> None:
    order_id = place(client, mine, "A-2", ("BRG-6204-2RS", 10))
    settle(hub)
    ship_and_invoice(hub, erp, order_id, {1: Decimal(6)})
    out = client.post(f"/v1/orders/{order_id}/amendments", headers=mine,
                      json={"changes": [{"line_no": 1, "quantity": "4"}]}).json()
    assert out["applied"] == [] and "already shipped" in out["refused"][0]["reason"]
    assert str(record(hub, order_id).lines[0].quantity) == "10"


def test_a_line_split_across_plants_refuses_a_new_quantity_but_cancels_every_part(
    hub: Any, erp: MemoryErp, client: TestClient, mine: dict[str, str]
) -> None:
    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    order_id = place(client, mine, "A-3", ("BRG-6204-2RS", home + 30))
    settle(hub)
    refs = [order_reference(order_id, p) for p in ("PLANT-N", "PLANT-S")]
    r = client.post(f"/v1/orders/{order_id}/amendments", headers=mine,
                    json={"changes": [{"line_no": 1, "quantity": str(home)}]}).json()
    assert r["applied"] == [] and "split across plants PLANT-N, PLANT-S" in r["refused"][0]["reason"]
    assert erp.calls["amend_order"] == 0
    r = client.post(f"/v1/orders/{order_id}/amendments", headers=mine,
                    json={"changes": [{"line_no": 1, "cancel": True}]}).json()
    assert r["applied"][0]["erp_orders"] == refs and r["refused"] == []
    assert all(x.quantity == 0 for ref in refs for x in erp.order(ref).lines)  # type: ignore[union-attr]
    assert r["state"] == "cancelled" and record(hub, order_id).state.value == "cancelled"


def test_only_orders_the_erp_accepted_can_be_amended_and_bad_changes_store_nothing(
    hub: Any, client: TestClient
) -> None:
    key = auth(api_key(hub, "orders:read", "orders:write", account="C-1004"))
    held = place(client, key, "A-4", ("MOT-IE3-4.0-4P", 8), ship_to_id=None)  # over the credit limit
    settle(hub)
    assert record(hub, held).state.value == "on_hold"
    r = client.post(f"/v1/orders/{held}/amendments", headers=key, json={"changes": [{"line_no": 1, "cancel": True}]})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "on_hold" in r.json()["detail"] and "accepted" in r.json()["detail"]
    ok = place(client, key, "A-5", ("MOT-IE3-4.0-4P", 1), ship_to_id=None)
    settle(hub)
    version = record(hub, ok).version
    for bad in ({"changes": [{"line_no": 9, "quantity": "2"}]},
                {"changes": [{"line_no": 1, "quantity": "2"}, {"line_no": 1, "cancel": True}]},
                {"changes": [{"line_no": 1, "requested_date": "2001-01-01"}]},
                {"changes": [{"line_no": 1, "cancel": True, "quantity": "1"}]},
                {"changes": [{"line_no": 1}]}, {"changes": []}):
        r = client.post(f"/v1/orders/{ok}/amendments", headers=key, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert record(hub, ok).version == version and amended_events(hub) == []


TWELVE = {"changes": [{"line_no": 1, "quantity": "12"}]}


def test_while_the_erp_is_down_an_amendment_answers_503_and_records_nothing(hub: Any, erp: MemoryErp,
                                                                           client: TestClient,
                                                                           mine: dict[str, str]) -> None:
    order_id = place(client, mine, "A-6", ("BRG-6204-2RS", 10))
    settle(hub)
    before = record(hub, order_id)
    erp.down = True
    r = client.post(f"/v1/orders/{order_id}/amendments", headers=mine, json=TWELVE)
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert r.headers["content-type"] == "application/problem+json"
    after = record(hub, order_id)
    assert after.version == before.version and after == before and amended_events(hub) == []
    erp.down = False
    [line] = erp.order(order_reference(order_id, "PLANT-N")).lines  # type: ignore[union-attr]
    assert line.quantity == 10
    r = client.post(f"/v1/orders/{order_id}/amendments", headers=mine, json=TWELVE)
    assert r.status_code == 200 and [a["line_no"] for a in r.json()["applied"]] == [1]


# -- returns --------------------------------------------------------------------------------------------

def test_returns_are_limited_to_what_was_shipped_and_not_yet_requested(hub: Any, erp: MemoryErp,
                                                                       client: TestClient,
                                                                       mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RT-1", ("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20))
    settle(hub)
    ship_and_invoice(hub, erp, order_id, {1: Decimal(4), 2: Decimal(0)})

    def ask(*lines: tuple[int, str]) -> Any:
        return client.post("/v1/returns", headers=mine, json={"order_id": order_id, "lines": [
            {"line_no": n, "quantity": q, "reason": "damaged"} for n, q in lines]})

    too_many = ask((1, "5"))
    assert too_many.status_code == 422 and "line 1: 5 is more than the 4 shipped" in too_many.text
    not_shipped = ask((2, "1"))
    assert not_shipped.status_code == 422 and "line 2: 1 is more than the 0 shipped" in not_shipped.text
    assert ask((7, "1")).status_code == 422 and ask((1, "0")).status_code == 422
    created = ask((1, "3"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["Location"] == f"/v1/returns/{body['id']}"
    assert body["state"] == "requested" and body["order_id"] == order_id and body["account_id"] == "C-1001"
    assert [(x["line_no"], Decimal(x["quantity"]), x["reason"]) for x in body["lines"]] == [(1, 3, "damaged")]
    read = client.get(created.headers["Location"], headers=mine)
    assert read.status_code == 200 and read.json() == body
    rest = ask((1, "2"))
    assert rest.status_code == 422 and "of which 3 is already requested" in rest.text
    assert ask((1, "1")).status_code == 201
    assert count(hub, return_requests) == 2
    [requested, _] = [json.loads(b)["payload"] for b in events(hub, "return.requested")]
    assert requested["return_request"]["id"] == body["id"]


def test_without_reported_shipments_returns_are_limited_to_the_ordered_quantity(
    hub: Any, client: TestClient, mine: dict[str, str]
) -> None:
    order_id = place(client, mine, "RT-2", ("BRG-6204-2RS", 10))
    early = client.post("/v1/returns", headers=mine, json={"order_id": order_id,
                                                          "lines": [{"line_no": 1, "quantity": "1"}]})
    assert early.status_code == 409  # not at the ERP yet: nothing can have been delivered
    settle(hub)
    r = client.post("/v1/returns", headers=mine,
                    json={"order_id": order_id, "lines": [{"line_no": 1, "quantity": "11"}]})
    assert r.status_code == 422 and "line 1: 11 is more than the 10 ordered" in r.json()["errors"][0]["message"]
    assert client.post("/v1/returns", headers=mine,
                       json={"order_id": order_id, "lines": [{"line_no": 1, "quantity": "10"}]}).status_code == 201
    reader = auth(api_key(hub, "orders:read", account="C-1001"))
    assert client.post("/v1/returns", headers=reader,
                       json={"order_id": order_id, "lines": [{"line_no": 1, "quantity": "1"}]}).status_code == 403
    assert count(hub, return_requests) == 1 and len(events(hub, "return.requested")) == 1
