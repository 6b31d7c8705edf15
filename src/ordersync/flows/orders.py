"""The order submission process: received -> validated -> priced -> (on_hold) -> allocated/backordered
-> submitted_to_erp -> accepted, with rejections and holds as explicit outcomes.

Handlers (registered at the bottom):
- ``flow.order_prepare`` on ``order.received``: plan (ERP reads) and apply the plan.
- ``flow.erp_submit`` on ``order.ready_for_erp``: create the ERP sales orders, exactly once per plant.
  Ordered per order, so two submissions of one order never run at the same time; the ERP adapter finds
  orders left behind by a crash by their reference. When the ERP finds less stock than was allocated
  (other orders took it meanwhile), the difference is backordered and the short sales are sent again,
  up to ``SHORTFALL_ROUNDS`` times; a shortfall the ERP reports without a quantity the hub can move is
  accepted as it stands (the ERP ships what it lacks later) rather than rejecting the order.
- ``flow.order_resume`` on ``order.hold_released``: continue where the hold stopped the flow.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.guard import Priority, erp_priority
from ordersync.canonical.v1 import Allocation, CaseType, OrderState
from ordersync.domain.cases import open_case
from ordersync.domain.events import (
    CaseOpened,
    ErpOrderRef,
    HoldReleased,
    OrderAccepted,
    OrderHeld,
    OrderReadyForErp,
    OrderReceived,
    OrderRejected,
)
from ordersync.domain.order import OrderRecord
from ordersync.domain.pricing import PricedLine
from ordersync.flows.deps import FlowDeps
from ordersync.flows.planning import Plan, continue_after_pricing, plan_from_received
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import (
    SalesOrderLine,
    SalesOrderRequest,
    SubmitOutcome,
    SubmitResult,
    order_reference,
    parse_reference,
)
from ordersync.store.orders import OrderRepository
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.flows.orders")

PREPARE = "flow.order_prepare"
SUBMIT = "flow.erp_submit"
RESUME = "flow.order_resume"

S = OrderState


# -- applying plans ---------------------------------------------------------------------------------

def apply_plan(uow: UnitOfWork, record: OrderRecord, plan: Plan, deps: FlowDeps, *,
               credit_approved: bool = False) -> None:
    at = uow.now()
    data = record.data
    if plan.erp:
        data["erp"] = plan.erp
    if plan.reasons:
        data["rejection"] = [r.as_dict() for r in plan.reasons]
        record.move_to(S.REJECTED, at, "rejected: " + "; ".join(r.message for r in plan.reasons)[:500])
        record.record_event(OrderRejected(order_id=record.id, channel=record.order.channel,
                                          account_id=record.order.account_id,
                                          reasons=tuple(r.as_dict() for r in plan.reasons)))
        uow.save_order(record)
        return
    if record.state is S.RECEIVED:
        record.move_to(S.VALIDATED, at, "account, ship-to, date and every line are valid")
    if plan.lines:
        data["lines"] = {str(x.line_no): _line_data(x, plan.categories.get(x.sku, "")) for x in plan.lines}
        data["total"] = str(plan.total)
        data["ship_to_region"] = plan.ship_to_region
    if record.state is S.VALIDATED:
        record.move_to(S.PRICED, at, f"priced at {plan.total} (ERP contract prices and channel rules)")
    if plan.credit:
        data["credit"] = plan.credit
    if credit_approved:
        data["credit_approved"] = True
    if plan.hold is not None:
        hold(uow, record, *plan.hold, deps=deps)
        return
    if plan.allocations:
        data["allocations"] = [a.model_dump(mode="json") for a in plan.allocations]
        backorders = [a for a in plan.allocations if a.backorder]
        plants = sorted({a.plant for a in plan.allocations})
        cause = f"allocated from {', '.join(plants)}"
        if backorders:
            cause += "; backordered " + ", ".join(f"line {a.line_no}: {a.quantity} by {a.promised_date}"
                                                  for a in backorders)
        if record.state is S.ON_HOLD:
            record.move_to(plan.reached, at, cause + " (hold released)")
        else:
            record.move_to(plan.reached, at, cause)
        record.record_event(OrderReadyForErp(order_id=record.id, credit_approved=credit_approved))
    uow.save_order(record)


def hold(uow: UnitOfWork, record: OrderRecord, case_type: CaseType, summary: str, next_action: str, *,
         deps: FlowDeps) -> None:
    now = uow.now()
    case = open_case(case_type, summary=summary, next_action=next_action, now=now, policy=deps.cases,
                     order_id=record.id, account_id=record.order.account_id)
    uow.cases.add(case)
    record.data["hold"] = {"case_id": case.id, "type": case_type.value, "reason": summary}
    record.move_to(S.ON_HOLD, now, f"{case_type.value}: {summary}"[:500])
    record.record_event(OrderHeld(order_id=record.id, case_id=case.id, case_type=case_type, reason=summary))
    record.record_event(CaseOpened(case=case))
    uow.save_order(record)


def _line_data(line: PricedLine, category: str) -> dict[str, Any]:
    return {
        "sku": line.sku,
        "category": category,
        "quantity": str(line.quantity),
        "contract_unit_price": str(line.contract_unit_price),
        "unit_price": str(line.unit_price),
        "adjustments": [a.model_dump(mode="json") for a in line.adjustments],
        "amount": str(line.amount),
    }


def plan_from_data(record: OrderRecord) -> Plan:
    """Rebuild the priced part of a plan from what the order stored (resuming after a hold)."""
    plan = Plan(erp=record.data.get("erp"), ship_to_region=record.data.get("ship_to_region"))
    for key, line in sorted(record.data.get("lines", {}).items(), key=lambda kv: int(kv[0])):
        plan.lines.append(PricedLine(int(key), line["sku"], Decimal(line["quantity"]),
                                     Decimal(line["contract_unit_price"]), Decimal(line["unit_price"])))
        plan.categories[line["sku"]] = line.get("category", "")
    return plan


def _load(deps: FlowDeps, order_id: str) -> OrderRecord | None:
    with deps.db.read() as conn:
        return OrderRepository(conn).find(order_id)


# -- handlers ---------------------------------------------------------------------------------------

def prepare(deps: FlowDeps) -> Any:
    def handle(msg: OrderReceived, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order.id)
        if record is None or record.state is not S.RECEIVED:
            return  # a duplicate delivery or an order that moved on: nothing to do
        plan = plan_from_received(record, deps)
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order.id)
            if record.state is S.RECEIVED:
                apply_plan(uow, record, plan, deps)

    return handle


def submit(deps: FlowDeps) -> Any:
    def handle(msg: OrderReadyForErp, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order_id)
        if record is None or record.state not in (S.ALLOCATED, S.BACKORDERED, S.SUBMITTED_TO_ERP):
            return
        if record.state is not S.SUBMITTED_TO_ERP:
            # Visible before the ERP call. If we die after it, the retry finds this state and submits
            # again, and the adapter reconciles by reference: still one ERP order per plant.
            with unit_of_work(deps.db, deps.clock, causation_id=ctx.envelope.message_id) as uow:
                record = uow.orders.get(msg.order_id)
                if record.state in (S.ALLOCATED, S.BACKORDERED):
                    record.move_to(S.SUBMITTED_TO_ERP, uow.now(), f"submitting to ERP {record.data['erp']}")
                    uow.save_order(record)
                elif record.state is not S.SUBMITTED_TO_ERP:
                    return
        credit_approved = msg.credit_approved or bool(record.data.get("credit_approved"))
        erp = deps.router.erp(record.data["erp"])
        allocations = [Allocation.model_validate(a) for a in record.data["allocations"]]
        with erp_priority(Priority.ORDERS):
            results = erp.submit_orders(requests_for(record, allocations, credit_approved))
            for _ in range(SHORTFALL_ROUNDS):
                short = [r for r in results if r.outcome is SubmitOutcome.STOCK_SHORTFALL]
                if not short:
                    break
                # the ERP knows less stock than we allocated from (other orders took it meanwhile):
                # backorder the difference and submit those sales again
                moved = backorder_shortfalls(allocations, short, deps)
                retry = {r.reference for r in short}
                requests = [q for q in requests_for(record, moved, credit_approved) if q.reference in retry]
                if moved == allocations:  # short, but by nothing we can name (the figures moved again):
                    # the ERP takes the order as it stands and ships what it lacks later
                    requests = [q.model_copy(update={"accept_shortfall": True}) for q in requests]
                allocations = moved
                again = {x.reference: x for x in erp.submit_orders(requests)}
                results = [again.get(r.reference, r) for r in results]
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order_id)
            if record.state is S.SUBMITTED_TO_ERP:
                apply_results(uow, record, allocations, results, deps)

    return handle


def resume(deps: FlowDeps) -> Any:
    def handle(msg: HoldReleased, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order_id)
        if record is None or record.state is not S.ON_HOLD or record.data.get("hold", {}).get("case_id") != msg.case_id:
            return
        plan: Plan | None = None
        held_from = record.held_from
        if msg.decision == "cancel":
            if held_from is S.SUBMITTED_TO_ERP:
                erp = deps.router.erp(record.data["erp"])
                with erp_priority(Priority.ORDERS):
                    for plant in {a["plant"] for a in record.data.get("allocations", [])}:
                        erp.cancel_order(order_reference(record.id, plant))
        elif held_from is S.SUBMITTED_TO_ERP:
            pass  # resubmit below, with the credit check acknowledged
        else:
            plan = plan_from_data(record)
            if msg.case_type is CaseType.PRICE_MISMATCH and msg.decision == "honor_shown_price":
                shown = {x.line_no: x.unit_price_shown for x in record.order.lines}
                plan.lines = [PricedLine(x.line_no, x.sku, x.quantity, x.contract_unit_price,
                                         shown.get(x.line_no) or x.unit_price) for x in plan.lines]
            credit_ok = msg.case_type is CaseType.CREDIT_HOLD or bool(record.data.get("credit_approved"))
            continue_after_pricing(plan, record, deps.router.erp(plan.erp or record.data["erp"]), deps,
                                   credit_approved=credit_ok)
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order_id)
            if record.state is not S.ON_HOLD:
                return
            record.data.pop("hold", None)
            cause = f"hold released by {msg.actor}: {msg.decision}"
            if msg.decision == "cancel":
                record.move_to(S.CANCELLED, uow.now(), cause)
                uow.save_order(record)
            elif plan is None:
                record.data["credit_approved"] = True
                record.move_to(S.SUBMITTED_TO_ERP, uow.now(), cause)
                record.record_event(OrderReadyForErp(order_id=record.id, credit_approved=True))
                uow.save_order(record)
            else:
                if plan.hold is None and msg.decision == "honor_shown_price":
                    record.data["lines"] = {str(x.line_no): _line_data(x, plan.categories.get(x.sku, ""))
                                            for x in plan.lines}
                    record.data["total"] = str(plan.total)
                if plan.hold is not None:  # e.g. released a price hold, now over the credit limit
                    record.move_to(S.PRICED, uow.now(), cause)
                apply_plan(uow, record, plan, deps, credit_approved=msg.case_type is CaseType.CREDIT_HOLD)

    return handle


# -- ERP requests and results ----------------------------------------------------------------------

#: how often a submission that the ERP finds short of stock is backordered and sent again
SHORTFALL_ROUNDS = 3


def requests_for(record: OrderRecord, allocations: list[Allocation], credit_approved: bool
                 ) -> list[SalesOrderRequest]:
    """One request per plant; one ERP line per order line and plant."""
    lines = record.data["lines"]
    by_plant: dict[str, dict[int, list[Allocation]]] = defaultdict(lambda: defaultdict(list))
    for a in allocations:
        by_plant[a.plant][a.line_no].append(a)
    out = []
    for plant in sorted(by_plant):
        order_lines = []
        for line_no, parts in sorted(by_plant[plant].items()):
            order_lines.append(SalesOrderLine(
                line_no=line_no, sku=parts[0].sku, quantity=sum((p.quantity for p in parts), Decimal(0)),
                unit_price=Decimal(lines[str(line_no)]["unit_price"]),
                promised_date=max(p.promised_date for p in parts)))
        out.append(SalesOrderRequest(
            reference=order_reference(record.id, plant), order_id=record.id, account_id=record.order.account_id,
            plant=plant, currency=record.order.currency or "", lines=tuple(order_lines),
            ship_to_id=record.order.ship_to_id, buyer_po_number=record.order.buyer_po_number,
            accept_shortfall=any(p.backorder for parts in by_plant[plant].values() for p in parts),
            credit_approved=credit_approved))
    return out


def backorder_shortfalls(allocations: list[Allocation], results: list[SubmitResult], deps: FlowDeps
                         ) -> list[Allocation]:
    """Turn the quantity the ERP cannot ship now into backorders at the same plant."""
    missing: dict[tuple[str, str], Decimal] = {}
    for r in results:
        for s in r.shortfalls:
            missing[(s.sku, s.plant)] = missing.get((s.sku, s.plant), Decimal(0)) + max(Decimal(0),
                                                                                        s.requested - s.available)
    later = deps.clock.now().date() + dt.timedelta(days=deps.policy.allocation.backorder_days)
    out: list[Allocation] = []
    for a in allocations:
        gap = missing.get((a.sku, a.plant), Decimal(0))
        if a.backorder or gap <= 0:
            out.append(a)
            continue
        moved = min(gap, a.quantity)
        missing[(a.sku, a.plant)] = gap - moved
        if a.quantity - moved > 0:
            out.append(a.model_copy(update={"quantity": a.quantity - moved}))
        out.append(a.model_copy(update={"quantity": moved, "backorder": True,
                                        "promised_date": max(a.promised_date, later)}))
    return out


def apply_results(uow: UnitOfWork, record: OrderRecord, allocations: list[Allocation], results: list[SubmitResult],
                  deps: FlowDeps) -> None:
    now = uow.now()
    record.data["allocations"] = [a.model_dump(mode="json") for a in allocations]
    record.data["erp_orders"] = {
        r.reference: {"outcome": r.outcome.value, "number": r.erp_order_number, "id": r.erp_order_id,
                      "message": r.message, "reconciled": r.reconciled}
        for r in results
    }
    held = [r for r in results if r.outcome is SubmitOutcome.CREDIT_HOLD]
    refused = [r for r in results if r.outcome in (SubmitOutcome.REJECTED, SubmitOutcome.STOCK_SHORTFALL)]
    accepted = [r for r in results if r.outcome is SubmitOutcome.ACCEPTED]
    if held:
        hold(uow, record, CaseType.CREDIT_HOLD, f"ERP credit check: {held[0].message or 'over the credit limit'}",
             "release the hold (the ERP's credit warning is acknowledged) or cancel the order", deps=deps)
        return
    if refused and not accepted:
        reasons = tuple({"code": "erp_rejected", "message": r.message or r.outcome.value, "line_no": None}
                        for r in refused)
        record.data["rejection"] = list(reasons)
        record.move_to(S.REJECTED, now, "ERP refused: " + "; ".join(str(x["message"]) for x in reasons)[:500])
        record.record_event(OrderRejected(order_id=record.id, channel=record.order.channel,
                                          account_id=record.order.account_id, reasons=reasons))
        uow.save_order(record)
        return
    if refused:
        hold(uow, record, CaseType.INTEGRATION_FAILURE,
             "ERP accepted part of the order and refused " + ", ".join(f"{r.reference}: {r.message}" for r in refused),
             "fix the cause in the ERP and release, or cancel the refused part", deps=deps)
        return
    numbers = ", ".join(f"{r.erp_order_number}" for r in accepted)
    partial = any(a.backorder for a in allocations)
    record.move_to(S.ACCEPTED, now, f"accepted by ERP {record.data['erp']} as {numbers}"
                   + (" (partly backordered)" if partial else ""))
    record.record_event(OrderAccepted(
        order_id=record.id, channel=record.order.channel, external_order_number=record.order.external_order_number,
        account_id=record.order.account_id, erp=record.data["erp"],
        erp_orders=tuple(ErpOrderRef(plant=_plant_of(r.reference), reference=r.reference,
                                     erp_order_number=r.erp_order_number) for r in accepted),
        allocations=tuple(allocations), partial=partial, total=record.data.get("total", "0"),
        currency=record.order.currency or ""))
    uow.save_order(record)


def _plant_of(reference: str) -> str:
    parsed = parse_reference(reference)
    return parsed[1] if parsed else ""


# -- registry ---------------------------------------------------------------------------------------

def register(registry: Registry, deps: FlowDeps) -> None:
    registry.add(Subscription(PREPARE, frozenset({OrderReceived.TYPE}), prepare(deps), "io",
                              concurrency=deps.submit_concurrency))
    registry.add(Subscription(SUBMIT, frozenset({OrderReadyForErp.TYPE}), submit(deps), "io", ordered=True,
                              concurrency=deps.submit_concurrency))
    registry.add(Subscription(RESUME, frozenset({HoldReleased.TYPE}), resume(deps), "io", ordered=True))
