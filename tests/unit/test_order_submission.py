"""Submitting an order to its ERP: one sales order per plant, the shortfall rounds, and what the order
makes of the ERP's answers (accepted, held by the ERP's credit check, refused altogether or in part)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ordersync.canonical.erp import Shortfall, SubmitOutcome, SubmitResult
from ordersync.canonical.v1 import CaseType, OrderState
from ordersync.domain.errors import IllegalTransition
from ordersync.domain.events import OrderAccepted, OrderRejected
from ordersync.domain.order.to_erp import SHORTFALL_ROUNDS
from tests.unit.orders import AT, CASES, make_order, prepared, reference, stock

S = OrderState
LATER = (AT + dt.timedelta(days=14)).date()


def answer(ref: str, outcome: SubmitOutcome = SubmitOutcome.ACCEPTED, **kwargs: object) -> SubmitResult:
    return SubmitResult(reference=ref, outcome=outcome, erp_order_id="1", erp_order_number="SO1", **kwargs)  # type: ignore[arg-type]


def test_an_order_split_across_plants_becomes_one_erp_order_per_plant_at_the_priced_price() -> None:
    record = prepared(make_order(("BRG", 10), ("FIT", 20)), atp=stock(BRG_N=4, BRG_S=100, FIT_N=100))
    requests = record.erp_requests(credit_approved=False)
    assert [(q.reference, q.plant) for q in requests] == [(reference("o1", "PLANT-N"), "PLANT-N"),
                                                          (reference("o1", "PLANT-S"), "PLANT-S")]
    assert [(x.line_no, x.quantity, x.unit_price) for x in requests[0].lines] == [
        (1, Decimal(4), Decimal("8.1600")), (2, Decimal(20), Decimal("2.5000"))]
    assert [(x.line_no, x.quantity) for x in requests[1].lines] == [(1, Decimal(6))]
    assert all(q.currency == "EUR" and q.ship_to_id == "A-1" and not q.accept_shortfall for q in requests)


def test_a_plant_with_a_backordered_line_tells_the_erp_to_accept_the_shortfall() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4))
    [request] = record.erp_requests(credit_approved=False)
    assert request.accept_shortfall and [x.quantity for x in request.lines] == [Decimal(10)]


def test_submitting_is_recorded_before_the_erp_is_asked_and_only_from_allocated_or_backordered() -> None:
    record = prepared(make_order(("BRG", 10)))
    record.start_submission(AT)
    assert record.state is S.SUBMITTED_TO_ERP and record.new_transitions[-1].cause == "submitting to ERP main"
    with pytest.raises(IllegalTransition):
        record.start_submission(AT)


def test_every_plant_accepted_accepts_the_order_with_its_erp_orders_and_allocations() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=100))
    record.start_submission(AT)
    submission = record.submission(credit_approved=False, backorder_by=LATER)
    submission.answered([answer(q.reference) for q in submission.requests()])
    assert submission.requests() == []
    events = record.apply_results(submission.allocations, submission.results, AT, CASES)
    assert record.state is S.ACCEPTED and record.accepted_erp_orders() == {
        reference("o1", "PLANT-N"), reference("o1", "PLANT-S")}
    accepted = events[-1]
    assert isinstance(accepted, OrderAccepted)
    assert ([r.plant for r in accepted.erp_orders], accepted.total, accepted.partial) == (
        ["PLANT-N", "PLANT-S"], "81.60", False)
    assert record.new_transitions[-1].cause == "accepted by ERP main as SO1, SO1"


def test_stock_the_erp_finds_short_is_backordered_and_only_the_short_sale_is_sent_again() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=100))
    record.start_submission(AT)
    submission = record.submission(credit_approved=False, backorder_by=LATER)
    north, south = (reference("o1", p) for p in ("PLANT-N", "PLANT-S"))
    short = Shortfall(sku="BRG", plant="PLANT-S", requested=Decimal(6), available=Decimal(2))
    submission.answered([answer(north), answer(south, SubmitOutcome.STOCK_SHORTFALL, shortfalls=(short,))])
    [again] = submission.requests()
    assert again.reference == south and again.accept_shortfall
    assert [(a.plant, a.quantity, a.backorder) for a in submission.allocations if a.plant == "PLANT-S"] == [
        ("PLANT-S", Decimal(2), False), ("PLANT-S", Decimal(4), True)]
    assert max(a.promised_date for a in submission.allocations if a.backorder) >= LATER
    submission.answered([answer(south)])
    record.apply_results(submission.allocations, submission.results, AT, CASES)
    assert record.state is S.ACCEPTED and record.is_backordered
    assert "(partly backordered)" in record.new_transitions[-1].cause


def test_a_shortfall_without_a_quantity_to_move_is_sent_once_more_accepting_it_as_it_stands() -> None:
    record = prepared(make_order(("BRG", 10)))
    submission = record.submission(credit_approved=False, backorder_by=LATER)
    ref = reference("o1", "PLANT-N")
    submission.answered([answer(ref, SubmitOutcome.STOCK_SHORTFALL)])  # short, but by nothing it names
    [again] = submission.requests()
    assert again.accept_shortfall and submission.allocations == list(record.allocations)


def test_the_shortfall_rounds_end_after_three() -> None:
    record = prepared(make_order(("BRG", 10)))
    submission = record.submission(credit_approved=False, backorder_by=LATER)
    ref = reference("o1", "PLANT-N")
    sent = 0
    while requests := submission.requests():
        sent += 1
        short = Shortfall(sku="BRG", plant="PLANT-N", requested=Decimal(1), available=Decimal(0))
        submission.answered([answer(r.reference, SubmitOutcome.STOCK_SHORTFALL, shortfalls=(short,))
                             for r in requests])
    assert sent == 1 + SHORTFALL_ROUNDS and submission.rounds == SHORTFALL_ROUNDS
    record.start_submission(AT)
    events = record.apply_results(submission.allocations, submission.results, AT, CASES)
    assert record.state is S.REJECTED and isinstance(events[-1], OrderRejected)
    assert record.rejection[0].code == "erp_rejected" and ref


def test_the_erps_credit_check_holds_the_order_for_finance_until_a_person_releases_it() -> None:
    record = prepared(make_order(("BRG", 10)))
    record.start_submission(AT)
    ref = reference("o1", "PLANT-N")
    record.apply_results(record.allocations, [answer(ref, SubmitOutcome.CREDIT_HOLD, message="over limit")], AT, CASES)
    assert record.state is S.ON_HOLD and record.held_from is S.SUBMITTED_TO_ERP
    assert record.hold is not None and record.hold.reason == "ERP credit check: over limit"
    record.release_hold(decision="release", case_type=CaseType.CREDIT_HOLD, actor="fiona", at=AT, plan=None,
                        cases=CASES)
    assert record.state is S.SUBMITTED_TO_ERP and record.credit_approved
    assert all(q.credit_approved for q in record.submission(credit_approved=False, backorder_by=LATER).requests())


def test_an_erp_that_refuses_every_plant_rejects_the_order_with_its_words() -> None:
    record = prepared(make_order(("BRG", 10)))
    record.start_submission(AT)
    ref = reference("o1", "PLANT-N")
    record.apply_results(record.allocations, [answer(ref, SubmitOutcome.REJECTED, message="party blocked")], AT, CASES)
    assert record.state is S.REJECTED and [r.as_dict() for r in record.rejection] == [
        {"code": "erp_rejected", "message": "party blocked", "line_no": None}]
    assert [e.outcome for e in record.erp_orders] == [SubmitOutcome.REJECTED]


def test_an_erp_that_refuses_one_plant_of_two_holds_the_order_for_integration() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=100))
    record.start_submission(AT)
    north, south = (reference("o1", p) for p in ("PLANT-N", "PLANT-S"))
    record.apply_results(record.allocations, [answer(north), answer(south, SubmitOutcome.REJECTED, message="no")],
                         AT, CASES)
    assert record.state is S.ON_HOLD and record.hold is not None
    assert record.hold.type is CaseType.INTEGRATION_FAILURE and f"{south}: no" in record.hold.reason
