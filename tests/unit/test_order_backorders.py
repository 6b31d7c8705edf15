"""Backordered lines after acceptance: a date the ERP revises reaches the buyer (honestly: not the ERP's
first sighting of an earlier date), and a promise that passes unshipped becomes one case per date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.canonical.erp import ErpOrder, ErpOrderLine, ErpOrderState
from ordersync.canonical.v1 import CaseType, Shipment, ShipmentLine, ShipmentState
from ordersync.domain.events import BackorderDateRevised, CaseEscalated, CaseOpened
from ordersync.domain.order import OrderRecord
from ordersync.domain.order.backorders import shipped_by_plant
from tests.unit.orders import AT, CASES, accepted, make_order, reference, stock


def backordered() -> tuple[OrderRecord, dt.date]:
    record = accepted(make_order(("BRG", 10), ("FIT", 20)), atp=stock(BRG_N=4, FIT_N=100))
    [backorder] = [a for a in record.allocations if a.backorder]
    return record, backorder.promised_date


def erp_order(*dates: dt.date | None, shipped: int = 0) -> ErpOrder:
    lines = tuple(ErpOrderLine(line_no=i, sku="BRG" if i == 1 else "FIT", quantity=Decimal(10), unit_price=Decimal(1),
                               promised_date=d) for i, d in enumerate(dates, start=1))
    shipments = (Shipment(id="1", order_id="o1", plant="PLANT-N", state=ShipmentState.SHIPPED,
                          lines=(ShipmentLine(line_no=1, sku="BRG", quantity=Decimal(shipped)),)),) if shipped else ()
    return ErpOrder(reference=reference("o1", "PLANT-N"), order_id="o1", plant="PLANT-N", erp_order_id="1",
                    erp_order_number="SO1", state=ErpOrderState.PROCESSING, account_id="C-1", currency="EUR",
                    lines=lines, shipments=shipments)


def test_the_erps_first_earlier_date_is_a_baseline_not_a_revision() -> None:
    record, promised = backordered()
    earlier = promised - dt.timedelta(days=10)
    assert record.revise_promises([erp_order(earlier, earlier)], AT)
    assert record.pending_events == [] and record.backorders.erp_promised == {"PLANT-N:1": earlier}
    assert [a.promised_date for a in record.allocations if a.backorder] == [promised]


def test_a_later_date_and_every_change_after_the_first_sighting_are_revisions_the_buyer_is_told() -> None:
    record, promised = backordered()
    later = promised + dt.timedelta(days=20)
    record.revise_promises([erp_order(later, later)], AT)
    [event] = record.pending_events
    assert isinstance(event, BackorderDateRevised) and (event.previous_date, event.revised_date) == (promised, later)
    sooner = later - dt.timedelta(days=5)
    record.revise_promises([erp_order(sooner, sooner)], AT)
    assert [(r.previous, r.revised) for r in record.backorders.revisions] == [
        (promised, later), (later, sooner)]
    assert record.revise_promises([erp_order(sooner, sooner)], AT) is False


def test_a_line_that_has_shipped_something_is_not_dated_by_its_first_shipment() -> None:
    record, promised = backordered()
    assert not record.revise_promises([erp_order(promised + dt.timedelta(days=9), None, shipped=4)], AT)


def test_a_passed_promise_opens_a_case_once_and_escalates_the_open_one_for_a_new_date() -> None:
    record, promised = backordered()
    shipped = shipped_by_plant([])
    assert record.passed_promises(shipped, promised) == []
    due = record.passed_promises(shipped, promised + dt.timedelta(days=1))
    assert [(a.line_no, a.quantity) for a in due] == [(1, Decimal(6))]
    events = record.flag_passed_promises(due, open_case_now=None, at=AT, policy=CASES)
    [case] = record.new_cases
    assert case.type is CaseType.ALLOCATION_SHORTFALL and isinstance(events[-1], CaseOpened)
    assert f"was promised by {promised.isoformat()}" in case.summary
    assert record.passed_promises(shipped, promised + dt.timedelta(days=2)) == []
    record.allocations = tuple(a.model_copy(update={"promised_date": promised + dt.timedelta(days=3)})
                               if a.backorder else a for a in record.allocations)
    due = record.passed_promises(shipped, promised + dt.timedelta(days=4))
    events = record.flag_passed_promises(due, open_case_now=case, at=AT, policy=CASES)
    assert isinstance(events[-1], CaseEscalated) and record.changed_cases[0].owner_level == 2


def test_shipped_backorders_are_not_outstanding() -> None:
    record, _ = backordered()
    shipment = Shipment(id="1", order_id="o1", plant="PLANT-N", state=ShipmentState.SHIPPED,
                        lines=(ShipmentLine(line_no=1, sku="BRG", quantity=Decimal(10)),))
    assert record.outstanding_backorders(shipped_by_plant([shipment])) == []
    assert len(record.outstanding_backorders({})) == 1
