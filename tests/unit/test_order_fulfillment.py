"""Fulfillment on the order: the fulfillment record's facts move the order forward only and stamp each SLA
time once; invoices get one sync clock each. And the order's stored document: typed both ways, other
shapes refused."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ordersync.canonical.v1 import InvoiceState, OrderState, ShipmentState
from ordersync.domain.fulfillment import FulfillmentRecord, progress
from ordersync.domain.order import OrderRecord
from ordersync.domain.order.aggregate import load_record
from ordersync.domain.order.parts import dump_parts, load_parts
from tests.unit.orders import AT, accepted, make_order, prepared, stock

S = OrderState
Sh = ShipmentState


def report(f: FulfillmentRecord, key: str, state: ShipmentState, quantity: int, *, source: str = "erp",
           at: dt.datetime = AT, delivered: dt.datetime | None = None) -> bool:
    return f.put_shipment(key, {"source": source, "erp": "main", "id": key, "wms": "wms", "state": state,
                                "lines": {1: Decimal(quantity)}, "delivered_at": delivered}, at)


def follow(record: OrderRecord, f: FulfillmentRecord, at: dt.datetime = AT) -> bool:
    shipments, invoices = f.facts()
    return record.follow_fulfillment(progress(record.ordered, shipments, invoices), at, "test",
                                     delivered_at=f.delivered_at())


def test_the_order_moves_forward_with_what_shipped_and_stamps_each_time_once() -> None:
    record = accepted(make_order(("BRG", 10)))
    f = FulfillmentRecord()
    report(f, "erp:1", Sh.PICKED, 10)
    assert follow(record, f) and record.state is S.IN_FULFILLMENT and record.fulfillment.in_fulfillment_at == AT
    later = AT + dt.timedelta(hours=2)
    report(f, "erp:1", Sh.SHIPPED, 4, at=later)
    report(f, "erp:2", Sh.WAITING, 6, at=later)
    assert follow(record, f, later) and record.state is S.PARTIALLY_SHIPPED
    assert record.fulfillment.first_shipped_at == later and record.fulfillment.in_fulfillment_at == AT
    report(f, "erp:2", Sh.SHIPPED, 6, at=later)
    follow(record, f, later + dt.timedelta(hours=1))
    assert record.state is S.SHIPPED and record.fulfillment.shipped_at == later + dt.timedelta(hours=1)
    assert not follow(record, f, later + dt.timedelta(hours=5))  # nothing new: nothing changes
    assert [t.to_state for t in record.new_transitions] == [S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED, S.SHIPPED]


def test_a_report_that_repeats_what_is_known_changes_nothing() -> None:
    f = FulfillmentRecord()
    assert report(f, "erp:1", Sh.SHIPPED, 4)
    assert not report(f, "erp:1", Sh.SHIPPED, 4, at=AT + dt.timedelta(hours=1))
    assert f.shipments["erp:1"].first_seen_at == AT


def test_an_order_not_yet_accepted_is_never_moved_by_fulfillment_reports() -> None:
    record = prepared(make_order(("BRG", 10)))
    f = FulfillmentRecord()
    report(f, "erp:1", Sh.SHIPPED, 10)
    assert not follow(record, f) and record.state is S.ALLOCATED and record.fulfillment.shipped_at is None


def test_delivered_is_stamped_when_every_warehouse_shipment_that_left_is_delivered() -> None:
    record = accepted(make_order(("BRG", 10)), atp=stock(BRG_N=1000))
    f = FulfillmentRecord()
    when = AT + dt.timedelta(days=2)
    report(f, "wms:1", Sh.DELIVERED, 10, source="wms", delivered=when)
    follow(record, f)
    assert record.state is S.SHIPPED and record.fulfillment.delivered_at == when


def test_an_invoice_gets_its_sync_clock_once_and_the_order_its_first() -> None:
    record = accepted(make_order(("BRG", 10)))
    posted, seen = AT - dt.timedelta(hours=1), AT
    assert record.record_invoice_clock("main:1", "INV1", posted, seen)
    assert not record.record_invoice_clock("main:1", "INV1", posted, seen + dt.timedelta(hours=1))
    assert record.record_invoice_clock("main:2", "INV2", posted, seen + dt.timedelta(hours=2))
    assert record.fulfillment.invoice_visible_at == seen and len(record.fulfillment.invoices) == 2
    f = FulfillmentRecord()
    report(f, "erp:1", Sh.SHIPPED, 10)
    f.put_invoice("main:1", {"erp": "main", "id": "1", "state": InvoiceState.POSTED, "lines": {1: Decimal(10)}}, AT)
    follow(record, f)
    assert record.state is S.INVOICED and [t.to_state for t in record.new_transitions] == [S.SHIPPED, S.INVOICED]


def test_the_stored_document_reads_back_as_the_same_parts() -> None:
    record = accepted(make_order(("BRG", 10), ("FIT", 20)), atp=stock(BRG_N=4, FIT_N=100))
    record.record_invoice_clock("main:1", "INV1", AT, AT)
    data = dump_parts(record)
    assert data.startswith('{"shape":2,')
    again = load_record(record.order.model_dump_json(), record.state, record.version, data)
    assert again == record and load_parts(data).total == record.total == Decimal("131.60")
    spaced = json.dumps(json.loads(data))  # the same document as another writer would space it
    assert load_record(record.order.model_dump_json(), record.state, record.version, spaced) == record


def test_a_document_of_another_shape_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="ordersync init"):
        load_parts('{"lines": {"1": {}}}')
