"""SLA clocks with controlled timestamps (percentiles, breaches, groups, windows), the ``/v1/ops/sla``
report, and the Prometheus ``/metrics`` page."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.bootstrap import build_hub
from ordersync.canonical.v1 import CaseType, Invoice, InvoiceState, OrderState
from ordersync.config import Settings, SlaSettings
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import Unavailable
from ordersync.domain.events import OrderReceived
from ordersync.domain.order.parts import FulfillmentTimes, Hold, InvoiceClock
from ordersync.domain.sla import (
    ClockReading,
    ClockSummary,
    SlaClock,
    SlaThresholds,
    acknowledgment_samples,
    hold_samples,
    hourly_percentiles,
    percentile,
    summarize,
    summarize_holds,
)
from ordersync.flows.services.intake import receive_order
from ordersync.reads.sla import SlaScope, holds, readings, untimed_clocks
from ordersync.server import create_app
from ordersync.store.schema import dead_letters, invoices
from ordersync.store.uow import unit_of_work
from ordersync.web import ops_charts
from tests.support.hub import api_key, erp_hub, order, place, settle
from tests.support.orders import make_order

S = OrderState
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
LIMITS = SlaSettings(ack_seconds=60, fulfillment_seconds=7200, invoice_sync_seconds=300)
TO_ACCEPTED = (S.VALIDATED, S.PRICED, S.ALLOCATED, S.SUBMITTED_TO_ERP, S.ACCEPTED)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def hub(tmp_path: Path, clock: FakeClock) -> Any:
    h = build_hub(Settings(data_dir=tmp_path / "hub", sla=LIMITS), clock=clock)
    yield h
    h.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def placed(hub: Any, *, at: dt.datetime, account: str = "C-1", channel: str = "portal",
           moves: tuple[tuple[OrderState, float], ...] = (), times: FulfillmentTimes | None = None) -> str:
    """An order received at ``at`` and moved through ``moves`` (state, seconds after ``at``)."""
    with unit_of_work(hub.db, FakeClock(at)) as uow:  # received at ``at``
        record, _ = receive_order(uow, make_order(channel=channel, account=account))
        for state, seconds in moves:
            if state is S.ON_HOLD:  # held by a credit case, as the flows hold an order
                record.hold = Hold(case_id=f"case-{record.id}", type=CaseType.CREDIT_HOLD, reason="over the limit",
                                   interrupted=record.state)
            record.move_to(state, at + dt.timedelta(seconds=seconds), "credit_hold: over the limit")
        if times is not None:
            record.fulfillment = times
        uow.save_order(record)
    return str(record.id)


def accepted_after(ack: float, shipped: float | None = None) -> tuple[tuple[OrderState, float], ...]:
    path = tuple((s, ack) for s in TO_ACCEPTED)
    return path + (((S.SHIPPED, ack + shipped),) if shipped is not None else ())


# -- arithmetic -------------------------------------------------------------------------------------------

def test_percentiles_are_nearest_rank_measured_values() -> None:
    values = [float(v) for v in range(1, 11)]
    assert [percentile(values, q) for q in (50, 90, 99, 100)] == [5.0, 9.0, 10.0, 10.0]
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None
    now = T0 + dt.timedelta(hours=1)
    found = [ClockReading(SlaClock.ACKNOWLEDGMENT, "all", T0, T0 + dt.timedelta(seconds=s)) for s in (30, 90)]
    found += [ClockReading(SlaClock.ACKNOWLEDGMENT, "all", now - dt.timedelta(seconds=s)) for s in (10, 100)]
    found += [ClockReading(SlaClock.INVOICE_SYNC, "all", T0, now, precise=False)]
    [by_clock] = summarize(found, SlaThresholds(acknowledgment=60), now).values()
    ack, sync = by_clock[SlaClock.ACKNOWLEDGMENT], by_clock[SlaClock.INVOICE_SYNC]
    assert (ack.count, ack.p50, ack.p99, ack.breached, ack.open, ack.open_breached) == (2, 30, 90, 1, 2, 1)
    assert (sync.count, sync.unmeasured, sync.p50) == (0, 1, None)
    assert by_clock[SlaClock.FULFILLMENT].count == 0


# -- clocks from the store ------------------------------------------------------------------------------------

def test_clocks_come_from_transitions_with_percentiles_and_breaches_per_group(hub: Any, clock: FakeClock) -> None:
    for i in range(10):  # acknowledged after 10..100 s; shipped an hour later, the last one after 3 hours
        placed(hub, at=T0 + dt.timedelta(minutes=i), moves=accepted_after(10 * (i + 1), 10800 if i == 9 else 3600))
    placed(hub, at=T0, account="C-2", channel="edi", moves=accepted_after(30))  # still to ship
    placed(hub, at=T0, account="C-2", channel="edi", moves=((S.REJECTED, 5),))  # never acknowledged: no clock
    placed(hub, at=T0, account="C-2", channel="edi", moves=(*accepted_after(20), (S.CANCELLED, 100)))
    placed(hub, at=T0 + dt.timedelta(hours=3), account="C-2", channel="edi")  # waiting for the ERP
    placed(hub, at=T0 - dt.timedelta(days=3), moves=accepted_after(9999))  # before the window
    now = T0 + dt.timedelta(hours=5)
    with hub.db.read() as conn:
        found = readings(conn, SlaScope(since=T0 - dt.timedelta(hours=1), group_by="channel"))
    report = summarize(found, SlaThresholds(acknowledgment=60, fulfillment=7200), now)
    portal, edi = report["portal"], report["edi"]
    ack = portal[SlaClock.ACKNOWLEDGMENT]
    assert (ack.count, ack.p50, ack.p90, ack.p99, ack.breached, ack.open) == (10, 50, 90, 100, 4, 0)
    ful = portal[SlaClock.FULFILLMENT]
    assert (ful.count, ful.p50, ful.p99, ful.breached, ful.open) == (10, 3600, 10800, 1, 0)
    ack = edi[SlaClock.ACKNOWLEDGMENT]
    assert (ack.count, ack.p99, ack.breached, ack.open, ack.open_breached) == (2, 30, 0, 1, 1)  # 2 h > 60 s
    ful = edi[SlaClock.FULFILLMENT]  # the cancelled order's clock is gone; the open one runs since T0+30s
    assert (ful.count, ful.open, ful.open_breached) == (0, 1, 1)
    with hub.db.read() as conn:
        mine = readings(conn, SlaScope(since=T0 - dt.timedelta(days=7), account_id="C-1", group_by="account"))
    assert {r.group for r in mine} == {"C-1"} and len([r for r in mine if r.clock is SlaClock.ACKNOWLEDGMENT]) == 11


def _invoice_row(order_id: str, invoice_id: str, posted: dt.datetime, recorded: dt.datetime) -> dict[str, Any]:
    body = Invoice(id=invoice_id, order_id=order_id, account_id="C-1", number=invoice_id, state=InvoiceState.POSTED,
                   currency="EUR", untaxed_amount=1, tax_amount=0, total_amount=1, posted_at=posted)
    return {"erp": "main", "invoice_id": invoice_id, "order_id": order_id, "account_id": "C-1", "number": invoice_id,
            "state": "posted", "issued_at": posted, "body": body.model_dump_json(), "updated_at": recorded}


def test_invoice_sync_uses_the_fulfillment_stamps_then_the_invoice_rows_and_never_times_a_date(hub: Any) -> None:
    posted = T0 + dt.timedelta(hours=2, seconds=5)
    stamps = FulfillmentTimes(invoices={
        "main:1": InvoiceClock(posted_at=posted, visible_at=posted + dt.timedelta(seconds=40)),
        "main:2": InvoiceClock(posted_at=T0.replace(hour=0), visible_at=posted),  # a date only
    })
    stamped = placed(hub, at=T0, moves=accepted_after(10), times=stamps)
    order_level = placed(hub, at=T0, moves=accepted_after(10), times=FulfillmentTimes(
        invoice_posted_at=posted, invoice_visible_at=posted + dt.timedelta(seconds=400)))
    unstamped = placed(hub, at=T0, moves=accepted_after(10))
    with hub.db.write() as conn:
        for order_id, n in ((stamped, "1"), (order_level, "3"), (unstamped, "4")):
            row = _invoice_row(order_id, n, posted, posted + dt.timedelta(seconds=70))
            conn.execute(insert(invoices).values(**row))
    with hub.db.read() as conn:
        found = [r for r in readings(conn, SlaScope()) if r.clock is SlaClock.INVOICE_SYNC]
    timed = sorted(r.seconds(T0) for r in found if r.precise)
    assert timed == [40, 70, 400] and len(found) == 4  # stamps win over the invoice rows; the date is not timed
    sync = summarize(found, SlaThresholds(invoice_sync=300), T0)["all"][SlaClock.INVOICE_SYNC]
    assert (sync.count, sync.p50, sync.breached, sync.unmeasured) == (3, 70, 1, 1)


def test_the_sla_report_groups_filters_by_time_and_account_and_needs_ops(hub: Any, clock: FakeClock) -> None:
    for i, (account, channel) in enumerate([("C-1", "portal"), ("C-1", "edi"), ("C-2", "portal")]):
        placed(hub, at=T0, account=account, channel=channel, moves=accepted_after(30 + 60 * i))
    placed(hub, at=T0 - dt.timedelta(days=2), account="C-2", moves=accepted_after(5))
    clock.advance(3600)
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    ops = auth(api_key(hub, "ops", client="ops"))
    r = client.get("/v1/ops/sla", params={"group_by": "account"}, headers=ops)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["since"] == "2026-03-01T10:00:00Z" and body["group_by"] == "account"  # a day back by default
    ack = {g["group"]: g["clocks"]["acknowledgment"] for g in body["groups"]}
    assert ack["C-1"]["count"] == 2 and ack["C-1"]["p50"] == 30 and ack["C-1"]["p99"] == 90
    assert ack["C-1"]["breached"] == 1 and ack["C-1"]["threshold_seconds"] == 60
    assert ack["C-2"]["count"] == 1 and ack["C-2"]["breached"] == 1  # the old order is outside the window
    assert body["groups"][0]["clocks"]["fulfillment"]["open"] == 2
    earlier = client.get("/v1/ops/sla", params={"since": "2026-02-27T00:00:00+01:00"}, headers=ops).json()
    assert [(g["group"], g["clocks"]["acknowledgment"]["count"]) for g in earlier["groups"]] == [("all", 4)]
    by_channel = client.get("/v1/ops/sla", params={"group_by": "channel"}, headers=ops).json()
    assert {g["group"] for g in by_channel["groups"]} == {"portal", "edi"}
    bound = auth(api_key(hub, "ops", account="C-2"))
    mine = client.get("/v1/ops/sla", params={"group_by": "account"}, headers=bound).json()
    assert [g["group"] for g in mine["groups"]] == ["C-2"]
    assert client.get("/v1/ops/sla", params={"account_id": "C-1"}, headers=bound).status_code == 404
    assert client.get("/v1/ops/sla", params={"group_by": "sku"}, headers=ops).status_code == 422
    assert client.get("/v1/ops/sla", params={"since": "0001-01-01T00:00:00+14:00"}, headers=ops).status_code == 422
    lax = client.get("/v1/ops/sla", params={"since": "0"}, headers=ops)  # not a Unix timestamp
    assert lax.status_code == 422 and "query.since" in lax.text and "ISO 8601" in lax.text, lax.text
    buyer = auth(api_key(hub, "orders:read", account="C-1"))
    assert client.get("/v1/ops/sla", headers=buyer).status_code == 403


# -- holds apart, clocks no ERP can time ----------------------------------------------------------------------

def test_a_hold_is_peoples_time_apart_from_the_hubs_acknowledgment(hub: Any) -> None:
    # held 20 s after arrival for an hour, then on to the ERP: the hub took 50 s of the 3650
    released = ((S.VALIDATED, 10), (S.PRICED, 10), (S.ON_HOLD, 20), (S.ALLOCATED, 3620),
                (S.SUBMITTED_TO_ERP, 3630), (S.ACCEPTED, 3650))
    placed(hub, at=T0, moves=released)
    placed(hub, at=T0, moves=((S.VALIDATED, 5), (S.PRICED, 5), (S.ON_HOLD, 30)))  # still with finance
    placed(hub, at=T0, moves=accepted_after(40))  # never held
    now = T0 + dt.timedelta(hours=5)
    with hub.db.read() as conn:
        found = readings(conn, SlaScope())
        spans = holds(conn, SlaScope())
    ack = summarize(found, SlaThresholds(acknowledgment=60), now)["all"][SlaClock.ACKNOWLEDGMENT]
    # the released hold's hour is not the hub's: p99 50 s, nothing breached; the order still held has run
    # 30 s of the hub's time before the hold, and does not run on while finance decides
    assert (ack.count, ack.p50, ack.p99, ack.breached, ack.open, ack.open_breached) == (2, 40, 50, 0, 1, 0)
    assert sorted(r.seconds(now) for r in found if r.clock is SlaClock.ACKNOWLEDGMENT) == [30, 40, 50]
    assert sorted((h.kind, h.seconds(now)) for h in spans) == [("credit_hold", 3600), ("credit_hold", 5 * 3600 - 30)]
    held = summarize_holds(spans, now)
    assert (held.count, held.p50, held.p99, held.open, held.oldest_open) == (1, 3600, 3600, 1, 5 * 3600 - 30)
    # per hour: the acknowledgments by the hour the ERP accepted, the holds by the hour they were released
    starts = [T0 + dt.timedelta(hours=h) for h in range(3)]
    by_hour = hourly_percentiles(acknowledgment_samples(found), starts)
    assert [(h.count, h.p50, h.p99) for h in by_hour] == [(1, 40, 40), (1, 50, 50), (0, None, None)]
    released_hours = hourly_percentiles(hold_samples(spans), starts)
    assert [(h.count, h.p90) for h in released_hours] == [(0, None), (1, 3600), (0, None)]


def test_a_clock_the_erp_cannot_time_is_named_with_the_reason() -> None:
    untimed = ClockSummary(threshold_seconds=900, unmeasured=3)
    timed = ClockSummary(threshold_seconds=900, count=2, p50=40, unmeasured=1)
    empty = ClockSummary(threshold_seconds=900)
    hidden = untimed_clocks(["tryton"], {SlaClock.INVOICE_SYNC: empty})
    assert list(hidden) == [SlaClock.INVOICE_SYNC] and "posting date" in hidden[SlaClock.INVOICE_SYNC]
    assert SlaClock.INVOICE_SYNC in untimed_clocks(["memory", "tryton"], {SlaClock.INVOICE_SYNC: untimed})
    assert untimed_clocks(["tryton"], {SlaClock.INVOICE_SYNC: timed}) == {}  # something did time it: shown
    assert untimed_clocks(["sap"], {SlaClock.INVOICE_SYNC: empty}) == {}  # an ERP that may time it
    dates = untimed_clocks([], {SlaClock.INVOICE_SYNC: untimed})
    assert "3 readings carry a date" in dates[SlaClock.INVOICE_SYNC]


def test_the_overview_hides_invoice_sync_on_the_twin_and_shows_holds_apart(tmp_path: Path) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    erp = MemoryErp("main", name="main", clock=clock.now)
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, sla=LIMITS)
    try:
        place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS", external="OV-1"))
        place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="OV-held"))  # a credit hold
        settle(hub)
        clock.advance(4 * 3600)
        with hub.db.read() as conn:
            view = ops_charts.overview(hub, conn, clock.now())
        assert [h.clock for h in view.sla.hidden] == ["invoice_sync"]
        assert "posting date" in view.sla.hidden[0].reason
        assert [r.clock for r in view.sla.rows] == ["acknowledgment", "fulfillment"]
        ack = view.sla.rows[0].summary
        assert (ack.count, ack.breached, ack.open, ack.open_breached) == (1, 0, 1, 0)
        assert (view.sla.holds.open, view.sla.holds.count) == (1, 0)
        assert view.sla.holds.oldest_open is not None and view.sla.holds.oldest_open >= 4 * 3600
        assert view.total_24h == 2
        svg = str(view.figures["backlog"].svg)
        assert 'data-state="on_hold" data-count="1"' in svg and 'data-state="accepted" data-count="1"' in svg
        assert 'data-bucket="4-24h" data-count="3"' in str(view.figures["ageing"].svg)  # two orders, a case
        assert 'data-team="finance" data-count="1"' in str(view.figures["cases"].svg)
        assert [t.count for t in view.tiles if t.id == "tile-holds"] == [1]
    finally:
        hub.close()


# -- /metrics -------------------------------------------------------------------------------------------------

def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_metrics_show_orders_sla_cases_dead_letters_outbox_lag_and_erp_circuits(tmp_path: Path) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    erp = MemoryErp("main", name="main", clock=clock.now)
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, sla=LIMITS)
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        for i in range(3):
            place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS", external=f"M-{i}"))
        place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="M-held"))  # a credit hold
        settle(hub)
        with hub.db.write() as conn:
            conn.execute(insert(dead_letters).values(
                id=uuid.uuid4().hex, consumer="x", message_id=None, type=None, correlation_id=None, seq=None, body="{",
                reason="malformed", error="not JSON", attempts=1, history="[]", dead_at=clock.now(), status="dead",
                replay_count=0))
        with hub.uow() as uow:  # an event the relay has not picked up yet, 30 s ago
            uow.emit(OrderReceived(order=order("C-1001", ("BRG-6204-2RS", 1))), correlation_id=None)
        clock.advance(30)
        for _ in range(5):
            hub.erps.erp("main").gate.breaker.record_failure(Unavailable("down"))
        m = scrape(client)
        assert m[("ordersync_orders", (("state", "accepted"),))] == 3
        assert m[("ordersync_orders", (("state", "on_hold"),))] == 1
        assert m[("ordersync_orders", (("state", "received"),))] == 0
        ack = (("clock", "acknowledgment"),)
        assert m[("ordersync_sla_seconds_bucket", (*ack, ("le", "60")))] == 3  # the fake clock stood still
        assert m[("ordersync_sla_seconds_bucket", (*ack, ("le", "+Inf")))] == 3
        assert m[("ordersync_sla_seconds_gcount", ack)] == 3
        assert m[("ordersync_sla_open_breached", ack)] == 0 and m[("ordersync_sla_threshold_seconds", ack)] == 60
        assert m[("ordersync_cases_open", (("type", "credit_hold"),))] == 1
        assert m[("ordersync_cases_open", (("type", "price_mismatch"),))] == 0
        assert m[("ordersync_dead_letters", (("status", "dead"),))] == 1
        assert m[("ordersync_outbox_unpublished", ())] == 1 and m[("ordersync_outbox_lag_seconds", ())] == 30
        assert m[("ordersync_erp_circuit", (("erp", "main"), ("state", "open")))] == 1
        assert m[("ordersync_erp_circuit", (("erp", "main"), ("state", "closed")))] == 0
        # what reached the ERP, per lane: the orders' calls (credit, prices, submission) in the orders lane,
        # and every port call the twin answered counted on its wire under the lane of its gate
        wire = {lane: n for (name, labels), n in m.items() if name == "ordersync_erp_wire_calls_total"
                for (_, erp_name), (_, lane) in [labels] if erp_name == "main"}
        port = {lane: n for (name, labels), n in m.items() if name == "ordersync_erp_calls_total"
                for (_, erp_name), (_, lane) in [labels] if erp_name == "main"}
        assert wire["orders"] >= 4 and port["orders"] >= 4
        assert sum(wire.values()) == sum(erp.calls.values())
        clock.advance(4 * 3600)  # the held order waits for finance: people's time, not the hub's breach
        m = scrape(client)
        assert m[("ordersync_sla_open_breached", ack)] == 0
        assert m[("ordersync_cases_overdue", (("type", "credit_hold"),))] == 1
        assert "C-1004" not in client.get("/metrics").text  # counts only: no account, order or case ids
        assert "/metrics" not in json.dumps(client.get("/v1/openapi.json").json()["paths"])
    finally:
        hub.close()
