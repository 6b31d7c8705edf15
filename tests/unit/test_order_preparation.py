"""Preparing an order (validate, price, shown price, credit, allocate) and what the order records of it:
rejections, holds with their cases, releases, and readiness for the ERP. No store, no ERP."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.canonical.v1 import CaseType, OrderState
from ordersync.domain.errors import IllegalTransition
from ordersync.domain.events import CaseOpened, OrderHeld, OrderReadyForErp, OrderRejected, OrderStateChanged
from tests.unit.orders import (
    AT,
    CASES,
    PLANTS,
    POLICY,
    PRODUCTS,
    credit,
    make_order,
    plan_for,
    prepared,
    received,
    stock,
)

S = OrderState


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_an_order_within_stock_is_validated_priced_allocated_and_ready_for_the_erp() -> None:
    record = received(make_order(("BRG", 10), ("FIT", 20)))
    events = record.apply_plan(plan_for(record.order), AT, CASES)
    assert record.state is S.ALLOCATED and [t.to_state for t in record.new_transitions] == [
        S.VALIDATED, S.PRICED, S.ALLOCATED]
    assert kinds(events) == ["OrderStateChanged"] * 3 + ["OrderReadyForErp"]
    assert [(x.sku, x.category, x.unit_price) for x in record.lines] == [
        ("BRG", "bearings", Decimal("8.1600")), ("FIT", "fittings", Decimal("2.5000"))]
    assert record.total == Decimal("131.60") and record.plants() == ["PLANT-N"]
    assert record.new_transitions[-1].cause == "allocated from PLANT-N"
    assert record.credit is not None and record.credit.available == Decimal(100_000)


def test_an_unknown_item_rejects_the_order_with_a_reason_per_line_and_nothing_else() -> None:
    record = received(make_order(("BRG", 10), ("NOPE", 4)))
    events = record.apply_plan(plan_for(record.order), AT, CASES)
    assert record.state is S.REJECTED and not record.lines and not record.allocations
    assert [r.as_dict() for r in record.rejection] == [
        {"code": "unknown_item", "message": "item NOPE is not in the assortment", "line_no": 2}]
    assert isinstance(events[-1], OrderRejected) and events[-1].reasons[0]["code"] == "unknown_item"


def test_a_quantity_off_the_pack_multiple_is_refused_with_its_reason() -> None:
    record = prepared(make_order(("FIT", 15)))
    assert record.state is S.REJECTED and record.rejection[0].code == "not_pack_multiple"


def test_a_price_shown_beyond_the_tolerance_holds_the_order_for_commerce_with_a_case() -> None:
    record = received(make_order(("BRG", 10, "7.00")))
    events = record.apply_plan(plan_for(record.order), AT, CASES)
    assert record.state is S.ON_HOLD and record.held_from is S.PRICED
    assert record.hold is not None and record.hold.type is CaseType.PRICE_MISMATCH
    assert "line 1: shown 7.00, ours 8.1600" in record.hold.reason
    [case] = record.new_cases
    assert (case.id, case.owner_team, case.order_id) == (record.hold.case_id, "commerce", record.id)
    assert kinds(events)[-2:] == ["OrderHeld", "CaseOpened"]
    assert record.credit is None and not record.allocations  # nothing after the hold was asked


def test_a_price_shown_within_the_tolerance_is_ours() -> None:
    record = prepared(make_order(("BRG", 10, "8.18")))
    assert record.state is S.ALLOCATED and record.lines[0].unit_price == Decimal("8.1600")


def test_an_order_over_the_available_credit_is_held_for_finance() -> None:
    record = prepared(make_order(("BRG", 100)), available=500)
    assert record.state is S.ON_HOLD and record.hold is not None and record.hold.type is CaseType.CREDIT_HOLD
    assert record.hold.reason == ("Order total 816.00 EUR exceeds available credit 500 (limit 1000, exposure 500)")
    assert record.new_cases[0].owner_team == "finance" and not record.allocations


def test_what_no_plant_has_is_backordered_at_the_preferred_plant() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=0))
    assert record.state is S.BACKORDERED and record.is_backordered
    assert [(a.plant, a.quantity, a.backorder) for a in record.allocations] == [
        ("PLANT-N", Decimal(4), False), ("PLANT-N", Decimal(6), True)]
    assert "backordered line 1: 6 by" in record.new_transitions[-1].cause


def test_an_order_short_at_home_is_split_across_plants() -> None:
    record = prepared(make_order(("BRG", 10)), atp=stock(BRG_N=4, BRG_S=100))
    assert record.plants() == ["PLANT-N", "PLANT-S"] and not record.is_backordered


def test_releasing_a_credit_hold_allocates_without_asking_for_credit_again_and_remembers_the_approval() -> None:
    record = prepared(make_order(("BRG", 100)), available=500)
    plan = record.prepared_again()
    plan.allocate(record.order, PRODUCTS, stock(BRG_N=1000), PLANTS, AT.date(), POLICY)
    events = record.release_hold(decision="release", case_type=CaseType.CREDIT_HOLD, actor="fiona", at=AT,
                                 plan=plan, cases=CASES)
    assert record.state is S.ALLOCATED and record.hold is None and record.credit_approved
    assert record.new_transitions[-1].cause == "allocated from PLANT-N (hold released)"
    ready = [e for e in events if isinstance(e, OrderReadyForErp)]
    assert len(ready) == 1 and ready[0].credit_approved


def test_honouring_the_shown_price_prices_the_lines_at_it_and_keeps_the_contract_price() -> None:
    record = prepared(make_order(("BRG", 10, "7.00"), ("FIT", 10)))
    plan = record.prepared_again()
    plan.honor_shown_prices(record.order)
    plan.check_credit(credit())
    plan.allocate(record.order, PRODUCTS, stock(BRG_N=100, FIT_N=100), PLANTS, AT.date(), POLICY)
    record.release_hold(decision="honor_shown_price", case_type=CaseType.PRICE_MISMATCH, actor="carla", at=AT,
                        plan=plan, cases=CASES)
    assert record.state is S.ALLOCATED
    assert [(x.unit_price, x.contract_unit_price) for x in record.lines] == [
        (Decimal("7.00"), Decimal("8.1600")), (Decimal("2.5000"), Decimal("2.5000"))]
    assert record.total == Decimal("95.00") and not record.credit_approved


def test_a_released_price_hold_over_the_credit_limit_is_held_again_for_finance() -> None:
    record = prepared(make_order(("BRG", 100, "1.00")))
    plan = record.prepared_again()
    plan.check_credit(credit(available=100))
    record.release_hold(decision="accept_erp_price", case_type=CaseType.PRICE_MISMATCH, actor="carla", at=AT,
                        plan=plan, cases=CASES)
    assert record.state is S.ON_HOLD and record.hold is not None and record.hold.type is CaseType.CREDIT_HOLD
    assert [t.to_state for t in record.new_transitions][-2:] == [S.PRICED, S.ON_HOLD]
    assert len(record.new_cases) == 2  # the price case and now the credit case


def test_cancelling_a_hold_cancels_the_order() -> None:
    record = prepared(make_order(("BRG", 100)), available=500)
    events = record.release_hold(decision="cancel", case_type=CaseType.CREDIT_HOLD, actor="fiona", at=AT, plan=None,
                                 cases=CASES)
    assert record.state is S.CANCELLED and record.hold is None and record.is_terminal
    assert isinstance(events[-1], OrderStateChanged) and events[-1].cause == "hold released by fiona: cancel"


def test_an_order_cannot_be_put_on_hold_from_a_final_state() -> None:
    record = prepared(make_order(("NOPE", 1)))
    with pytest.raises(IllegalTransition):
        record.put_on_hold(CaseType.CREDIT_HOLD, "late", "none", AT, CASES)
    assert record.state is S.REJECTED and record.hold is None and not record.new_cases


def test_a_hold_opens_exactly_one_case_with_its_events() -> None:
    record = received(make_order(("BRG", 1)))
    events = record.put_on_hold(CaseType.INTEGRATION_FAILURE, "stuck", "retry", AT, CASES)
    assert [type(e) for e in events] == [OrderStateChanged, OrderHeld, CaseOpened]
    assert record.held_by(record.new_cases[0].id) and not record.held_by("another")
