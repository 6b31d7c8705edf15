"""Amendments of accepted orders: which ERP order takes which change, what the hub refuses itself, and how
the order stands once the ERP applied some of them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ordersync.canonical.erp import LineChange
from ordersync.canonical.v1 import OrderState
from ordersync.domain.errors import ValidationFailed
from ordersync.domain.events import AmendedLine, OrderAmended
from ordersync.domain.order import LineAmendment
from ordersync.domain.order.amendment import from_change, merge
from tests.unit.orders import AT, accepted, make_order, prepared, reference, stock

S = OrderState
NEXT_MONTH = (AT + dt.timedelta(days=30)).date()


def test_each_change_goes_to_the_erp_order_of_its_plant() -> None:
    record = accepted(make_order(("BRG", 10), ("FIT", 20)))
    requests, refused = record.route_amendment([LineAmendment(line_no=1, quantity=Decimal(6)),
                                                LineAmendment(line_no=2, cancel=True)])
    assert refused == []
    assert requests == {reference("o1", "PLANT-N"): [LineChange(line_no=1, quantity=Decimal(6)),
                                                     LineChange(line_no=2, cancel=True)]}


def test_a_new_quantity_for_a_line_split_across_plants_is_refused_but_its_date_goes_to_every_part() -> None:
    record = accepted(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=100))
    requests, refused = record.route_amendment([LineAmendment(line_no=1, quantity=Decimal(8))])
    assert requests == {} and "split across plants PLANT-N, PLANT-S" in refused[0].reason
    requests, refused = record.route_amendment([LineAmendment(line_no=1, requested_date=NEXT_MONTH)])
    assert refused == [] and sorted(requests) == [reference("o1", "PLANT-N"), reference("o1", "PLANT-S")]


def test_lines_that_do_not_exist_or_repeat_are_refused_before_anything_is_routed() -> None:
    record = accepted(make_order(("BRG", 10)))
    with pytest.raises(ValidationFailed) as refused:
        record.route_amendment([LineAmendment(line_no=7, cancel=True), LineAmendment(line_no=1, cancel=True),
                                LineAmendment(line_no=1, quantity=Decimal(2))])
    assert refused.value.reasons == ["line 7: order o1 has no such line", "line 1: changed twice in one amendment"]


def test_a_change_for_an_erp_order_the_erp_did_not_accept_is_refused() -> None:
    record = prepared(make_order(("BRG", 10)))  # allocated, never accepted
    _, refused = record.route_amendment([LineAmendment(line_no=1, quantity=Decimal(2))])
    assert refused[0].reason == f"the ERP did not accept order {reference('o1', 'PLANT-N')}"


def test_what_the_erp_applied_brings_lines_allocations_and_total_in_line() -> None:
    record = accepted(make_order(("BRG", 10), ("FIT", 20)))
    ref = reference("o1", "PLANT-N")
    applied = [AmendedLine(line_no=1, quantity=Decimal(6), references=(ref,)),
               AmendedLine(line_no=2, requested_date=NEXT_MONTH, references=(ref,))]
    events = record.amend(applied, [], actor="key:x", at=AT)
    assert [(x.line_no, x.quantity, x.requested_date) for x in record.lines] == [
        (1, Decimal(6), None), (2, Decimal(20), NEXT_MONTH)]
    assert [(a.line_no, a.quantity, a.promised_date) for a in record.allocations][1] == (2, Decimal(20), NEXT_MONTH)
    assert record.total == Decimal("98.96") and record.ordered == {1: Decimal(6), 2: Decimal(20)}
    amended = events[-1]
    assert isinstance(amended, OrderAmended) and amended.applied == tuple(applied)
    assert record.amendments[-1].actor == "key:x" and record.state is S.ACCEPTED


def test_a_smaller_quantity_comes_off_the_backorder_first() -> None:
    record = accepted(make_order(("BRG", 10)), atp=stock(BRG_N=4))
    ref = reference("o1", "PLANT-N")
    record.amend([AmendedLine(line_no=1, quantity=Decimal(5), references=(ref,))], [], actor="x", at=AT)
    assert [(a.quantity, a.backorder) for a in record.allocations] == [(Decimal(4), False), (Decimal(1), True)]
    record.amend([AmendedLine(line_no=1, quantity=Decimal(3), references=(ref,))], [], actor="x", at=AT)
    assert [(a.quantity, a.backorder) for a in record.allocations] == [(Decimal(3), False)]
    assert not record.is_backordered


def test_a_cancelled_line_stands_at_zero_and_the_last_cancelled_line_cancels_the_order() -> None:
    record = accepted(make_order(("BRG", 10), ("FIT", 20)))
    ref = reference("o1", "PLANT-N")
    record.amend([AmendedLine(line_no=2, cancel=True, references=(ref,))], [], actor="x", at=AT)
    line = record.line(2)
    assert line is not None and line.cancelled and line.quantity == 0 and record.state is S.ACCEPTED
    _, refused = record.route_amendment([LineAmendment(line_no=2, quantity=Decimal(5))])
    assert refused[0].reason == "line 2 is cancelled"
    record.amend([AmendedLine(line_no=1, cancel=True, references=(ref,))], [], actor="x", at=AT)
    assert record.state is S.CANCELLED and record.total == Decimal("0.00")
    assert record.new_transitions[-1].cause == "every line was cancelled by an amendment"


def test_entries_of_one_change_sent_to_several_erp_orders_are_merged() -> None:
    north, south = reference("o1", "PLANT-N"), reference("o1", "PLANT-S")
    change = LineChange(line_no=1, cancel=True)
    assert merge([from_change(change, north), from_change(change, south)]) == [
        AmendedLine(line_no=1, cancel=True, references=(north, south))]
