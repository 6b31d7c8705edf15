"""The order aggregate: the canonical order as the channel sent it, its lifecycle state, and the typed
parts the hub decided and learned (:mod:`ordersync.domain.order.parts`).

The aggregate makes the order's decisions. Each decision is a method that checks the lifecycle, changes
the parts, and records what happened: the events (``pending_events``; the method also returns the ones
it recorded), the state transitions (``new_transitions``) and the exception cases it opened or changed.
A flow loads the order, asks the ports what it needs, lets the order decide and saves it; the unit of
work writes the order, its transitions, its cases and its events in one transaction (transactional
outbox). Nothing here does I/O, so every rule is a unit test without a store.

Decisions that read best on their own live in sibling modules and are exposed here as methods:
:mod:`~ordersync.domain.order.to_erp` (ERP sales orders per plant, shortfall rounds),
:mod:`~ordersync.domain.order.amendment` (line changes after acceptance) and
:mod:`~ordersync.domain.order.backorders` (revised and passed backorder promises).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict, Field

from ordersync.canonical.erp import (
    ErpOrder,
    LineChange,
    SalesOrderRequest,
    SubmitOutcome,
    SubmitResult,
    parse_reference,
)
from ordersync.canonical.v1 import Allocation, CaseType, ExceptionCase, Order, OrderState
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.errors import IllegalTransition
from ordersync.domain.events import (
    AmendedLine,
    CaseOpened,
    ErpOrderRef,
    Event,
    OrderAccepted,
    OrderHeld,
    OrderReadyForErp,
    OrderRejected,
    OrderStateChanged,
)
from ordersync.domain.fulfillment import TRACK, Progress, moves
from ordersync.domain.lifecycle import TERMINAL, can_move
from ordersync.domain.order import amendment as amendment_rules
from ordersync.domain.order import backorders as backorder_rules
from ordersync.domain.order.parts import (
    ErpSubmission,
    Hold,
    InvoiceClock,
    OrderParts,
    PricedLine,
    stored_parts,
    without_shape,
)
from ordersync.domain.order.to_erp import OrderPlan, Submission, erp_requests
from ordersync.domain.validation import Reason

S = OrderState


@dataclass(frozen=True)
class Transition:
    """One recorded move; SLA clocks are computed from these."""

    order_id: str
    from_state: OrderState | None
    to_state: OrderState
    at: dt.datetime
    cause: str


class OrderRecord(OrderParts):
    """An order inside the hub: the canonical order, its lifecycle state, ``version`` (the
    optimistic-concurrency counter of its row) and its parts (:class:`OrderParts`, stored together as
    one document)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    order: Order
    state: OrderState = S.RECEIVED
    version: int = 0

    # -- what the decisions recorded, written with the order by the unit of work (never stored as parts) ----
    new_transitions: list[Transition] = Field(default_factory=list, exclude=True, repr=False)
    pending_events: list[Event] = Field(default_factory=list, exclude=True, repr=False)
    new_cases: list[ExceptionCase] = Field(default_factory=list, exclude=True, repr=False)
    """Cases this order's decisions opened (the unit of work adds them with the order)."""
    changed_cases: list[ExceptionCase] = Field(default_factory=list, exclude=True, repr=False)
    """Open cases this order's decisions changed (escalated), saved with the order."""

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.order.id

    # -- what the parts say ----------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def held_from(self) -> OrderState | None:
        """The state the hold interrupted (a release resumes there), while on hold."""
        return self.hold.interrupted if self.hold is not None and self.state is S.ON_HOLD else None

    def held_by(self, case_id: str) -> bool:
        return self.state is S.ON_HOLD and self.hold is not None and self.hold.case_id == case_id

    def line(self, line_no: int) -> PricedLine | None:
        return next((x for x in self.lines if x.line_no == line_no), None)

    @property
    def ordered(self) -> dict[int, Decimal]:
        """Quantity per line as it stands (amended quantities, cancelled lines at 0)."""
        priced = {x.line_no: x.quantity for x in self.lines}
        return {line.line_no: priced.get(line.line_no, line.quantity) for line in self.order.lines}

    @property
    def skus(self) -> dict[int, str]:
        """The SKU of every line: the one the hub resolved, else the one the channel sent."""
        priced = {x.line_no: x.sku for x in self.lines}
        return {line.line_no: priced.get(line.line_no) or line.sku or "" for line in self.order.lines}

    def plants(self) -> list[str]:
        """The plants the order is allocated to (one ERP order each)."""
        return sorted({a.plant for a in self.allocations})

    # -- the lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def receive(cls, order: Order, at: dt.datetime, cause: str) -> OrderRecord:
        record = cls(order=order)
        record._record(None, S.RECEIVED, at, cause)
        return record

    def move_to(self, target: OrderState, at: dt.datetime, cause: str) -> None:
        """Move to ``target`` or raise :class:`IllegalTransition` without changing anything. An order is
        held only by a case (:meth:`put_on_hold`); leaving ``on_hold`` lets go of it."""
        if not can_move(self.state, target):
            raise IllegalTransition(self.id, self.state.value, target.value)
        if target is S.ON_HOLD and (self.hold is None or self.hold.interrupted is not self.state):
            raise IllegalTransition(self.id, self.state.value, "on_hold without a case")
        previous = self.state
        if previous is S.ON_HOLD:
            self.hold = None
        self.state = target
        self._record(previous, target, at, cause)

    def resume_state(self) -> OrderState:
        """The state a released hold returns to (where the flow stopped)."""
        if self.held_from is None:
            raise IllegalTransition(self.id, self.state.value, "released")
        return self.held_from

    def record_event(self, event: Event) -> None:
        self.pending_events.append(event)

    def _record(self, previous: OrderState | None, target: OrderState, at: dt.datetime, cause: str) -> None:
        self.new_transitions.append(Transition(self.id, previous, target, at, cause))
        self.pending_events.append(OrderStateChanged(order_id=self.id, channel=self.order.channel,
                                              account_id=self.order.account_id, from_state=previous, to_state=target,
                                              cause=cause, at=at))

    def _since(self, mark: int) -> list[Event]:
        return self.pending_events[mark:]

    # -- preparation: validated, priced, held or allocated ---------------------------------------------

    def apply_plan(self, plan: OrderPlan, at: dt.datetime, cases: CasePolicy, *,
                   credit_approved: bool = False) -> list[Event]:
        """Record what preparing the order decided: rejected, held for a person, or allocated and ready
        for the ERP (``order.ready_for_erp``)."""
        mark = len(self.pending_events)
        if plan.erp:
            self.erp = plan.erp
        if plan.reasons:
            self.reject(plan.reasons, at, "rejected: " + "; ".join(r.message for r in plan.reasons)[:500])
            return self._since(mark)
        if self.state is S.RECEIVED:
            self.move_to(S.VALIDATED, at, "account, ship-to, date and every line are valid")
        if plan.lines:
            self.lines = tuple(plan.lines)
            self.ship_to_region = plan.ship_to_region
        if self.state is S.VALIDATED:
            self.move_to(S.PRICED, at, f"priced at {plan.total} (ERP contract prices and channel rules)")
        if plan.credit is not None:
            self.credit = plan.credit
        if credit_approved:
            self.credit_approved = True
        if plan.hold is not None:
            self.put_on_hold(plan.hold.type, plan.hold.summary, plan.hold.next_action, at, cases)
            return self._since(mark)
        if plan.allocations:
            self.allocations = tuple(plan.allocations)
            backorders = [a for a in plan.allocations if a.backorder]
            cause = f"allocated from {', '.join(self.plants())}"
            if backorders:
                cause += "; backordered " + ", ".join(f"line {a.line_no}: {a.quantity} by {a.promised_date}"
                                                      for a in backorders)
            if self.state is S.ON_HOLD:
                cause += " (hold released)"
            self.move_to(plan.reached, at, cause)
            self.record_event(OrderReadyForErp(order_id=self.id, credit_approved=credit_approved))
        return self._since(mark)

    def reject(self, reasons: Sequence[Reason], at: dt.datetime, cause: str) -> list[Event]:
        mark = len(self.pending_events)
        self.rejection = tuple(reasons)
        self.move_to(S.REJECTED, at, cause)
        self.record_event(OrderRejected(order_id=self.id, channel=self.order.channel,
                                        account_id=self.order.account_id, reasons=tuple(r.as_dict() for r in reasons)))
        return self._since(mark)

    def put_on_hold(self, case_type: CaseType, summary: str, next_action: str, at: dt.datetime,
                    cases: CasePolicy) -> list[Event]:
        """Hold the order for a person: a case of ``case_type`` owns the decision (an order that cannot be
        held raises :class:`IllegalTransition` and changes nothing)."""
        if not can_move(self.state, S.ON_HOLD):
            raise IllegalTransition(self.id, self.state.value, S.ON_HOLD.value)
        mark = len(self.pending_events)
        case = open_case(case_type, summary=summary, next_action=next_action, now=at, policy=cases,
                         order_id=self.id, account_id=self.order.account_id)
        self.new_cases.append(case)
        self.hold = Hold(case_id=case.id, type=case_type, reason=summary, interrupted=self.state)
        self.move_to(S.ON_HOLD, at, f"{case_type.value}: {summary}"[:500])
        self.record_event(OrderHeld(order_id=self.id, case_id=case.id, case_type=case_type, reason=summary))
        self.record_event(CaseOpened(case=case))
        return self._since(mark)

    def release_hold(self, *, decision: str, case_type: CaseType, actor: str, at: dt.datetime,
                     plan: OrderPlan | None, cases: CasePolicy) -> list[Event]:
        """A person decided the hold: ``cancel`` ends the order; otherwise it goes on where the hold
        stopped it: resubmitted to the ERP (a hold the ERP's credit check caused, ``plan`` None) or
        prepared again from its priced lines (``plan``: credit and allocation asked again)."""
        mark = len(self.pending_events)
        cause = f"hold released by {actor}: {decision}"
        if decision == "cancel":
            self.move_to(S.CANCELLED, at, cause)
        elif plan is None:
            self.credit_approved = True
            self.move_to(S.SUBMITTED_TO_ERP, at, cause)
            self.record_event(OrderReadyForErp(order_id=self.id, credit_approved=True))
        else:
            if plan.hold is not None:  # e.g. a released price hold, now over the credit limit
                self.move_to(S.PRICED, at, cause)
            self.apply_plan(plan, at, cases, credit_approved=case_type is CaseType.CREDIT_HOLD)
        return self._since(mark)

    def prepared_again(self) -> OrderPlan:
        """A plan that starts from the order's priced lines (resuming after a hold)."""
        return OrderPlan(erp=self.erp, ship_to_region=self.ship_to_region, lines=list(self.lines))

    # -- submission to the ERP -------------------------------------------------------------------------

    def start_submission(self, at: dt.datetime) -> list[Event]:
        """Visible before the ERP call: if the submitter dies after it, the retry finds this state and
        submits again, and the ERP adapter reconciles by reference (still one ERP order per plant)."""
        mark = len(self.pending_events)
        self.move_to(S.SUBMITTED_TO_ERP, at, f"submitting to ERP {self.erp}")
        return self._since(mark)

    def apply_results(self, allocations: Sequence[Allocation], results: Sequence[SubmitResult], at: dt.datetime,
                      cases: CasePolicy) -> list[Event]:
        """What the ERP answered for each plant's sales order: accepted (``order.accepted``), held by its
        credit check, refused altogether (rejected) or in part (a case for integration)."""
        mark = len(self.pending_events)
        self.allocations = tuple(allocations)
        self.erp_orders = tuple(ErpSubmission(reference=r.reference, outcome=r.outcome, number=r.erp_order_number,
                                              id=r.erp_order_id, message=r.message, reconciled=r.reconciled)
                                for r in results)
        held = [r for r in results if r.outcome is SubmitOutcome.CREDIT_HOLD]
        refused = [r for r in results if r.outcome in (SubmitOutcome.REJECTED, SubmitOutcome.STOCK_SHORTFALL)]
        accepted = [r for r in results if r.outcome is SubmitOutcome.ACCEPTED]
        if held:
            self.put_on_hold(CaseType.CREDIT_HOLD, f"ERP credit check: {held[0].message or 'over the credit limit'}",
                             "release the hold (the ERP's credit warning is acknowledged) or cancel the order", at,
                             cases)
        elif refused and not accepted:
            reasons = [Reason("erp_rejected", r.message or r.outcome.value) for r in refused]
            self.reject(reasons, at, "ERP refused: " + "; ".join(r.message for r in reasons)[:500])
        elif refused:
            self.put_on_hold(CaseType.INTEGRATION_FAILURE, "ERP accepted part of the order and refused "
                             + ", ".join(f"{r.reference}: {r.message}" for r in refused),
                             "fix the cause in the ERP and release, or cancel the refused part", at, cases)
        else:
            numbers = ", ".join(f"{r.erp_order_number}" for r in accepted)
            partial = self.is_backordered
            self.move_to(S.ACCEPTED, at, f"accepted by ERP {self.erp} as {numbers}"
                         + (" (partly backordered)" if partial else ""))
            self.record_event(OrderAccepted(
                order_id=self.id, channel=self.order.channel, external_order_number=self.order.external_order_number,
                account_id=self.order.account_id, erp=self.erp or "",
                erp_orders=tuple(ErpOrderRef(plant=_plant_of(r.reference), reference=r.reference,
                                             erp_order_number=r.erp_order_number) for r in accepted),
                allocations=tuple(self.allocations), partial=partial, total=str(self.total or 0),
                currency=self.order.currency or ""))
        return self._since(mark)

    def submission(self, *, credit_approved: bool, backorder_by: dt.date) -> Submission:
        """The rounds of this order's submission (:class:`~ordersync.domain.order.to_erp.Submission`)."""
        return Submission(self, credit_approved=credit_approved or self.credit_approved,
                                     backorder_by=backorder_by)

    def erp_requests(self, *, credit_approved: bool) -> list[SalesOrderRequest]:
        """The order's ERP sales orders as they would be sent now, one per plant."""
        return erp_requests(self, self.allocations, credit_approved)

    def accepted_erp_orders(self) -> set[str]:
        """References of the ERP orders the ERP accepted."""
        return {s.reference for s in self.erp_orders if s.outcome is SubmitOutcome.ACCEPTED}

    # -- amendments -------------------------------------------------------------------------------------

    def route_amendment(self, changes: Sequence[amendment_rules.LineAmendment]
                        ) -> tuple[dict[str, list[LineChange]], list[AmendedLine]]:
        """Which ERP order takes which change; the changes the hub refuses itself, with reasons."""
        amendment_rules.check_lines(self, changes)
        return amendment_rules.route(self, changes)

    def amend(self, applied: Sequence[AmendedLine], refused: Sequence[AmendedLine], *, actor: str,
              at: dt.datetime) -> list[Event]:
        """Record what the ERP applied of an amendment (``order.amended``)."""
        return amendment_rules.apply_amendment(self, applied, refused, actor=actor, at=at)

    # -- backorders after acceptance ---------------------------------------------------------------------

    def revise_promises(self, erp_orders: Sequence[ErpOrder], at: dt.datetime) -> bool:
        """The ERP's dates for backordered lines; revisions reach the buyer. True if the order changed."""
        return backorder_rules.revise_promises(self, erp_orders, at)

    def outstanding_backorders(self, shipped: backorder_rules.Shipped) -> list[Allocation]:
        return backorder_rules.outstanding(self, shipped)

    def passed_promises(self, shipped: backorder_rules.Shipped, today: dt.date) -> list[Allocation]:
        return backorder_rules.passed(self, shipped, today)

    def flag_passed_promises(self, due: Sequence[Allocation], *, open_case_now: ExceptionCase | None,
                             at: dt.datetime, policy: CasePolicy) -> list[Event]:
        return backorder_rules.flag_passed(self, due, open_case_now=open_case_now, at=at, policy=policy)

    # -- fulfillment -----------------------------------------------------------------------------------

    def follow_fulfillment(self, progress: Progress, at: dt.datetime, cause: str, *,
                           delivered_at: dt.datetime | None = None) -> bool:
        """Move the order along the fulfillment track as far as the reported facts put it (forward only;
        an order outside the track is not moved) and stamp the SLA times reached. True if it changed."""
        if self.state not in TRACK:  # before acceptance the submission flow owns the order
            return False
        changed = False
        for target in moves(self.state, progress.target):
            if can_move(self.state, target):
                self.move_to(target, at, f"{cause}: {progress.reasons[target]}"[:500])
                changed = True
        stamps: dict[str, Any] = {}
        if progress.started:
            stamps["in_fulfillment_at"] = at
        if progress.any_shipped:
            stamps["first_shipped_at"] = at
        if progress.fully_shipped:
            stamps["shipped_at"] = at
            if delivered_at is not None:
                stamps["delivered_at"] = delivered_at
        if progress.target is S.INVOICED:
            stamps["invoiced_at"] = at
        return self._stamp(**stamps) or changed

    def record_invoice_clock(self, key: str, number: str | None, posted_at: dt.datetime,
                             visible_at: dt.datetime | None) -> bool:
        """An invoice seen posted for the first time: its own sync clock, and the order's first. True if
        anything was set."""
        stamped = False
        if key not in self.fulfillment.invoices:
            clocks = {**self.fulfillment.invoices,
                      key: InvoiceClock(number=number, posted_at=posted_at, visible_at=visible_at)}
            self.fulfillment = self.fulfillment.model_copy(update={"invoices": clocks})
            stamped = True
        return self._stamp(invoice_posted_at=posted_at, invoice_visible_at=visible_at) or stamped

    def _stamp(self, **times: dt.datetime | None) -> bool:
        """Set SLA timestamps that are not set yet; True if any was."""
        new = {k: v for k, v in times.items() if v is not None and getattr(self.fulfillment, k) is None}
        if new:
            self.fulfillment = self.fulfillment.model_copy(update=new)
        return bool(new)


def _plant_of(reference: str) -> str:
    parsed = parse_reference(reference)
    return parsed[1] if parsed else ""


# -- the stored document ----------------------------------------------------------------------------------

def load_record(order: str, state: OrderState, version: int, data: str) -> OrderRecord:
    """The aggregate from its stored row: the order's JSON, its state and version, and its parts' document
    (:func:`~ordersync.domain.order.parts.stored_parts` refuses another shape). Parsed and validated in one
    pass: an order is loaded several times on its way, so this is on the hot path."""
    rest = without_shape(data)
    if rest is not None:
        return OrderRecord.model_validate_json(f'{{"order":{order},"state":"{state.value}","version":{version}{rest}')
    parsed = Order.model_validate_json(order)
    return OrderRecord.model_validate({**stored_parts(data, parsed.id), "order": parsed, "state": state,
                                       "version": version})
