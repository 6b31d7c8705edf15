"""The order lifecycle is a transition table; illegal moves raise and change nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ordersync.canonical.v1 import CaseType, Order, OrderLine, OrderState
from ordersync.domain.cases import CasePolicy
from ordersync.domain.errors import IllegalTransition
from ordersync.domain.events import OrderStateChanged
from ordersync.domain.lifecycle import TERMINAL, TRANSITIONS
from ordersync.domain.order import OrderRecord

AT = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def make_order() -> Order:
    return Order(
        id="o-1", channel="portal", external_order_number="PO-1", account_id="ACME",
        lines=(OrderLine(line_no=1, sku="BRG-6204", quantity=Decimal(10)),),
    )


def test_a_received_order_records_its_first_transition_and_event() -> None:
    record = OrderRecord.receive(make_order(), AT, "test")
    assert record.state is OrderState.RECEIVED
    assert [t.to_state for t in record.new_transitions] == [OrderState.RECEIVED]
    assert isinstance(record.pending_events[0], OrderStateChanged)


def test_the_happy_path_is_legal() -> None:
    record = OrderRecord.receive(make_order(), AT, "test")
    path = [OrderState.VALIDATED, OrderState.PRICED, OrderState.ALLOCATED, OrderState.SUBMITTED_TO_ERP,
            OrderState.ACCEPTED, OrderState.IN_FULFILLMENT, OrderState.PARTIALLY_SHIPPED, OrderState.SHIPPED,
            OrderState.INVOICED, OrderState.CLOSED]
    for i, state in enumerate(path):
        record.move_to(state, AT + dt.timedelta(minutes=i), f"step {i}")
    assert record.state is OrderState.CLOSED and record.is_terminal
    assert [t.to_state for t in record.new_transitions] == [OrderState.RECEIVED, *path]


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in OrderState for t in OrderState if t not in TRANSITIONS[c]],
)
def test_every_move_outside_the_table_is_refused_and_changes_nothing(current: OrderState, target: OrderState) -> None:
    record = OrderRecord(order=make_order(), state=current)
    with pytest.raises(IllegalTransition) as err:
        record.move_to(target, AT, "test")
    assert record.state is current
    assert record.new_transitions == [] and record.pending_events == []
    assert current.value in str(err.value) and target.value in str(err.value)


def test_terminal_states_have_no_way_out() -> None:
    assert TERMINAL == {OrderState.CLOSED, OrderState.CANCELLED, OrderState.REJECTED}


def test_every_state_is_reachable_from_received() -> None:
    seen = {OrderState.RECEIVED}
    frontier = [OrderState.RECEIVED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(OrderState)


def test_a_released_hold_resumes_where_the_flow_stopped() -> None:
    record = OrderRecord(order=make_order(), state=OrderState.PRICED)
    record.put_on_hold(CaseType.CREDIT_HOLD, "credit limit", "release or cancel", AT, CasePolicy())
    assert record.state is OrderState.ON_HOLD and record.held_from is OrderState.PRICED
    record.move_to(record.resume_state(), AT, "released by finance")
    assert record.state is OrderState.PRICED and record.held_from is None and record.hold is None


def test_an_order_is_held_only_by_a_case() -> None:
    record = OrderRecord(order=make_order(), state=OrderState.PRICED)
    with pytest.raises(IllegalTransition):
        record.move_to(OrderState.ON_HOLD, AT, "no case")
    assert record.state is OrderState.PRICED and record.new_transitions == []


def test_resume_is_refused_when_not_on_hold() -> None:
    record = OrderRecord(order=make_order(), state=OrderState.PRICED)
    with pytest.raises(IllegalTransition):
        record.resume_state()
