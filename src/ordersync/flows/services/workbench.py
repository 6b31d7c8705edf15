"""The exception workbench: people act on cases, and every action writes back through the flows.

An action is checked against the case type first (:func:`allowed_actions`; anything else is refused
with the list of what is allowed), then carried out by the flow that owns the effect:

- ``release_hold``, ``accept_price``, ``honor_shown_price``, ``cancel``: a hold decision
  (:func:`ordersync.flows.services.holds.release_hold`); the order flow resumes (or cancels) on ``order.hold_released``.
- ``reallocate`` (allocation shortfall): a held order is released so that the flow plans its allocation
  again; an order the ERP accepted has its allocation in the ERP, so its promise is read again from
  there (revisions reach the buyer as ``order.backorder_date_revised``), and the case closes once no
  backordered quantity is left to ship.
- ``cancel_line``: an amendment (:mod:`ordersync.flows.services.amendments`): the ERP cancels the line.
- ``retry`` (integration failure): the linked dead letter goes back to its consumer.
- ``raise_limit`` (credit hold): finance raises the account's credit limit in its ERP of record to an
  amount (the page proposes the least that releases the order); the ERP call happens first, then the
  case records who set which limit (from what). The case stays open: releasing the hold is its own
  decision.
- ``credit`` / ``reject`` (invoice dispute): finance decides, with an answer the buyer sees. The decision
  and the answer are kept on the dispute (``invoice_disputes.body["decision"]``, read by
  :func:`ordersync.reads.accounts.dispute_cases`) and the case resolves. The ERP port issues no credit
  notes: a credit is recorded as approved for the amount, for finance to book in the ERP.
- ``resolve`` (with a comment), ``assign`` (to a team), ``escalate`` (one owner level up).

Each action is recorded in the case's history (actor, time, what happened) in the same transaction as
its effect and its events. A remote call (ERP) happens before that transaction, as in every flow.

The module also opens a case for every dead letter (a hook of the consumer runner); cases past their
due time escalate on a clock (:func:`ordersync.flows.jobs.escalate_overdue`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase
from ordersync.domain.cases import CasePolicy, escalate_case, open_case, record_action, resolve_case
from ordersync.domain.errors import Conflict, NotFound, ValidationFailed
from ordersync.domain.events import CaseEscalated, CaseOpened, CaseResolved, CaseUpdated
from ordersync.domain.lifecycle import REACHED_ERP
from ordersync.domain.order import LineAmendment, OrderRecord
from ordersync.domain.order.backorders import shipped_by_plant
from ordersync.flows.deps import FlowDeps
from ordersync.flows.services.amendments import AmendmentOutcome, amend_order
from ordersync.flows.services.holds import release_hold
from ordersync.ports.deadletters import DeadLetters
from ordersync.ports.erp import Lane
from ordersync.ports.store import Store, UnitOfWork

log = logging.getLogger("ordersync.flows.workbench")

#: actions any open case takes
COMMON_ACTIONS = ("resolve", "assign", "escalate")
#: actions per case type, before the common ones
TYPE_ACTIONS: dict[CaseType, tuple[str, ...]] = {
    CaseType.CREDIT_HOLD: ("release_hold", "raise_limit", "cancel"),
    CaseType.PRICE_MISMATCH: ("accept_price", "honor_shown_price", "cancel"),
    CaseType.ALLOCATION_SHORTFALL: ("reallocate", "cancel_line", "cancel"),
    CaseType.INTEGRATION_FAILURE: ("retry", "release_hold", "cancel"),
    CaseType.FULFILLMENT_DISCREPANCY: (),
    CaseType.INVOICE_DISPUTE: ("credit", "reject"),
    CaseType.ORDER_CONFLICT: (),  # amended or cancelled through the order, then resolved with a note
    CaseType.ERP_DISCREPANCY: ("recheck",),
}
#: actions that end something for good (an order, a line, a buyer's claim): the pages confirm them first
DESTRUCTIVE = frozenset({"cancel", "cancel_line", "reject"})
#: workbench actions that are hold decisions, and the decision they make
HOLD_DECISIONS = {"release_hold": "release", "accept_price": "accept_erp_price",
                  "honor_shown_price": "honor_shown_price", "cancel": "cancel"}
SYSTEM = "ordersync"


def allowed_actions(case_type: CaseType) -> tuple[str, ...]:
    return (*TYPE_ACTIONS.get(case_type, ()), *COMMON_ACTIONS)


class ActionNotAllowed(ValidationFailed):
    """The action does not apply to this type of case; ``allowed`` lists those that do."""

    def __init__(self, case: ExceptionCase, action: str) -> None:
        self.allowed = allowed_actions(case.type)
        super().__init__([f"{case.type.value} cases take one of {', '.join(self.allowed)}, not {action!r}"])


@dataclass(frozen=True)
class CaseAction:
    """What a person asks: the action, who they are, why; ``owner_team`` for assign, ``line_no`` for
    cancel_line, ``amount`` for raise_limit (the new limit) and credit (the credit, default: what the
    buyer disputed), ``answer`` (what the buyer is told) for credit and reject."""

    action: str
    actor: str
    comment: str = ""
    owner_team: str | None = None
    line_no: int | None = None
    amount: Decimal | None = None
    answer: str = ""


@dataclass
class ActionOutcome:
    case: ExceptionCase
    result: dict[str, Any] = field(default_factory=dict)


class Workbench:
    """Case actions for the ops API. ``deps`` is None in a hub without an ERP (ERP actions refuse)."""

    def __init__(self, store: Store, policy: CasePolicy, dead_letters: DeadLetters,
                 deps: FlowDeps | None = None) -> None:
        self.store = store
        self.policy = policy
        self.dead_letters = dead_letters
        self.deps = deps
        #: reconciliation's re-check of a case: (case id, actor) -> (the sides agree now, what it found);
        #: set by the composition root (the reconciler reads the store and the ERP, above the flows)
        self.recheck: Callable[[str, str], tuple[bool, str]] | None = None

    def case(self, case_id: str, account_id: str | None = None) -> ExceptionCase:
        """The case, if a caller bound to ``account_id`` (None: any) may see it."""
        try:
            with self.store.reading() as reader:
                found = reader.cases.get(case_id)
        except NotFound:
            raise NotFound(f"case {case_id} not found") from None
        if account_id is not None and found.account_id != account_id:
            raise NotFound(f"case {case_id} not found")
        return found

    def act(self, case_id: str, action: CaseAction, *, account_id: str | None = None) -> ActionOutcome:
        """Carry out ``action`` on the case. Raises NotFound, ActionNotAllowed (wrong action for the
        type), ValidationFailed (a missing field), Conflict (the case or its order is not in a state
        for it) or an IntegrationError (the ERP could not be reached; nothing changed)."""
        case = self.case(case_id, account_id)
        if action.action not in allowed_actions(case.type):
            raise ActionNotAllowed(case, action.action)
        if case.state is CaseState.RESOLVED:
            raise Conflict(f"case {case_id} is resolved ({case.history[-1].action} by {case.history[-1].actor})")
        result: dict[str, Any] = {}
        if action.action in HOLD_DECISIONS:
            self._decide(case, action, HOLD_DECISIONS[action.action])
        else:
            handler: Callable[[ExceptionCase, CaseAction], dict[str, Any] | None] = getattr(self, f"_{action.action}")
            result = handler(case, action) or {}
        return ActionOutcome(self.case(case_id), result)

    # -- actions --------------------------------------------------------------------------------------

    def _decide(self, case: ExceptionCase, action: CaseAction, decision: str) -> None:
        label = "" if action.action == decision else f"{action.action}: "  # e.g. "reallocate: " on a release
        comment = f"{label}{action.comment}".strip().rstrip(":")
        with self.store.transaction() as uow:
            release_hold(uow, case.id, decision=decision, actor=action.actor, comment=comment)

    def _reallocate(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        record = self._order(case)
        if record.held_by(case.id):
            self._decide(case, action, "release")  # the flow plans the allocation again
            return {"resumed": True}
        if record.state not in REACHED_ERP or not record.erp:
            raise Conflict(f"order {record.id} is {record.state.value}: only a held order or one the ERP accepted "
                           "can be re-allocated")
        deps = self._erp_deps()
        erp_orders = deps.erps.in_lane(Lane.ORDERS).erp(record.erp).orders_for(record.id)
        with self.store.transaction() as uow:
            record = uow.orders.get(record.id)
            if record.revise_promises(erp_orders, uow.now()):
                uow.save_order(record)
            left = record.outstanding_backorders(shipped_by_plant(uow.documents.shipments(record.id)))
            promise = "; ".join(f"line {a.line_no} ({a.quantity} from {a.plant}) by {a.promised_date.isoformat()}"
                                for a in left) or "nothing backordered is left to ship"
            comment = f"{action.comment} (the ERP's promise: {promise})".lstrip()
            self._save(uow, case, action, comment, close=not left)
        return {"backorders": [a.model_dump(mode="json") for a in left]}

    def _cancel_line(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        if action.line_no is None:
            raise ValidationFailed(["cancel_line needs line_no"])
        record = self._order(case)
        deps = self._erp_deps()
        recorded: list[bool] = []

        def note(uow: UnitOfWork, outcome: AmendmentOutcome) -> None:
            left = uow.orders.get(record.id).outstanding_backorders(
                shipped_by_plant(uow.documents.shipments(record.id)))
            close = case.type is CaseType.ALLOCATION_SHORTFALL and not left
            self._save(uow, case, action, _amended(action, outcome), close=close)
            recorded.append(True)

        outcome = amend_order(deps, record.id, [LineAmendment(line_no=action.line_no, cancel=True)], account_id=None,
                              actor=action.actor, also=note)
        if not recorded:  # the ERP refused: nothing changed but the case's history
            with self.store.transaction() as uow:
                self._save(uow, case, action, _amended(action, outcome), close=False)
        return {"applied": [e.model_dump(mode="json") for e in outcome.applied],
                "refused": [e.model_dump(mode="json") for e in outcome.refused], "order_state": outcome.state.value}

    def _retry(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        if case.dead_letter_id is None:
            raise Conflict(f"case {case.id} has no dead letter to retry")
        with self.store.transaction() as uow:
            item = self.dead_letters.replay_in(uow, case.dead_letter_id)
            comment = (f"{action.comment} (dead letter {item.id} is back on {item.consumer}'s queue; a new failure "
                       "opens a new case)").lstrip()
            self._save(uow, case, action, comment, close=True)
        return {"dead_letter_id": item.id, "consumer": item.consumer, "outlook": item.outlook}

    def _raise_limit(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        """Set the account's credit limit in its ERP (before the transaction, as every ERP call), then
        record it on the case."""
        if action.amount is None or action.amount <= 0:
            raise ValidationFailed(["raise_limit needs amount: the credit limit to set"])
        if case.account_id is None:
            raise Conflict(f"case {case.id} names no account")
        with self.store.transaction() as uow:
            self._still_holding(uow, case)
        erps = self._erp_deps().erps.in_lane(Lane.ORDERS)
        erp = erps.for_account(case.account_id)
        before = erp.credit(case.account_id)
        after = erp.set_credit_limit(case.account_id, action.amount)
        comment = (f"credit limit of {case.account_id} set to {after.limit} {after.currency} in ERP "
                   f"{erps.erp_name_for(case.account_id)} (was {before.limit}; available now {after.available})"
                   + (f": {action.comment}" if action.comment else ""))
        with self.store.transaction() as uow:
            self._save(uow, case, action, comment, close=False)
        return {"limit": str(after.limit), "was": str(before.limit), "available": str(after.available),
                "currency": after.currency}

    def _credit(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        return self._decide_dispute(case, action, "credited")

    def _reject(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        return self._decide_dispute(case, action, "rejected")

    def _decide_dispute(self, case: ExceptionCase, action: CaseAction, outcome: str) -> dict[str, Any]:
        """Finance's decision on a dispute, with the answer the buyer sees, kept on the dispute."""
        if not action.answer.strip():
            raise ValidationFailed([f"{action.action} needs answer: what the buyer is told"])
        if action.amount is not None and action.amount <= 0:
            raise ValidationFailed(["the credit must be more than 0"])
        with self.store.transaction() as uow:
            found = uow.disputes.for_case(case.id)
            if found is None:
                raise Conflict(f"case {case.id} has no dispute to decide")
            dispute_id, request = found
            amount = None
            if outcome == "credited":
                asked = request.get("amount")
                amount = action.amount if action.amount is not None else (Decimal(asked) if asked else None)
            decision = {"outcome": outcome, "answer": action.answer.strip(),
                        "amount": str(amount) if amount is not None else None,
                        "by": action.actor, "at": uow.now().isoformat()}
            uow.disputes.decide(dispute_id, decision)
            what = (f"credit{f' of {amount}' if amount is not None else ''} approved, to be issued as a credit "
                    "note in the ERP" if outcome == "credited" else "dispute rejected")
            comment = "; ".join(filter(None, [what, f"answer to the buyer: {action.answer.strip()}",
                                              action.comment]))
            self._save(uow, case, action, comment, close=True)
        return {"dispute_id": dispute_id, "decision": decision}

    def _recheck(self, case: ExceptionCase, action: CaseAction) -> dict[str, Any]:
        """Read both sides again: the case closes when they agree, else it stays open with the sides now."""
        if self.recheck is None:
            raise Conflict("this hub does not reconcile (no ERP configured)")
        agree, found = self.recheck(case.id, action.actor)
        return {"agree": agree, "found": found}

    def _resolve(self, case: ExceptionCase, action: CaseAction) -> None:
        if not action.comment.strip():
            raise ValidationFailed(["resolve needs a comment: what was done"])
        with self.store.transaction() as uow:
            self._not_holding(uow, case)
            self._save(uow, case, action, action.comment, close=True)

    def _assign(self, case: ExceptionCase, action: CaseAction) -> None:
        """A new owner starts at level 1 of its own escalation chain."""
        if not action.owner_team:
            raise ValidationFailed(["assign needs owner_team"])
        comment = f"to {action.owner_team}" + (f": {action.comment}" if action.comment else "")
        with self.store.transaction() as uow:
            current = uow.cases.get(case.id)
            updated = record_action(current, action="assign", actor=action.actor, comment=comment, now=uow.now(),
                                    owner_team=action.owner_team, owner_level=1, state=CaseState.IN_PROGRESS)
            uow.cases.save(updated)
            uow.emit(CaseUpdated(case=updated, action="assign", actor=action.actor), correlation_id=case.order_id)

    def _escalate(self, case: ExceptionCase, action: CaseAction) -> None:
        with self.store.transaction() as uow:
            escalate(uow, uow.cases.get(case.id), self.policy, actor=action.actor,
                     reason=action.comment or "escalated by a person")

    # -- helpers ----------------------------------------------------------------------------------------

    def _save(self, uow: UnitOfWork, case: ExceptionCase, action: CaseAction, comment: str, *, close: bool) -> None:
        """Record ``action`` on the case (as stored now, in this transaction); resolve it if ``close``."""
        current = uow.cases.get(case.id)
        if close:
            resolved = resolve_case(current, action=action.action, actor=action.actor, comment=comment, now=uow.now())
            uow.cases.save(resolved)
            uow.emit(CaseResolved(case=resolved, action=action.action), correlation_id=case.order_id)
            return
        updated = record_action(current, action=action.action, actor=action.actor, comment=comment, now=uow.now(),
                                state=CaseState.IN_PROGRESS)
        uow.cases.save(updated)
        uow.emit(CaseUpdated(case=updated, action=action.action, actor=action.actor), correlation_id=case.order_id)

    def _not_holding(self, uow: UnitOfWork, case: ExceptionCase) -> None:
        if case.order_id is None:
            return
        record = uow.orders.find(case.order_id)
        if record is not None and record.held_by(case.id):
            raise Conflict(f"case {case.id} holds order {record.id}: release the hold or cancel the order, "
                           f"which resolves the case ({', '.join(TYPE_ACTIONS.get(case.type, ()))})")

    def _still_holding(self, uow: UnitOfWork, case: ExceptionCase) -> None:
        record = uow.orders.find(case.order_id) if case.order_id else None
        if record is None or not record.held_by(case.id):
            raise Conflict(f"case {case.id} holds no order any more: nothing waits for a higher limit")

    def _order(self, case: ExceptionCase) -> OrderRecord:
        if case.order_id is None:
            raise Conflict(f"case {case.id} concerns no order")
        with self.store.reading() as reader:
            record = reader.orders.find(case.order_id)
        if record is None:
            raise Conflict(f"case {case.id}: order {case.order_id} is not in the hub")
        return record

    def _erp_deps(self) -> FlowDeps:
        if self.deps is None:
            raise Conflict("this hub has no ERP configured")
        return self.deps


def _amended(action: CaseAction, outcome: AmendmentOutcome) -> str:
    parts = [f"line {e.line_no} cancelled in {', '.join(e.references)}" for e in outcome.applied]
    parts += [f"line {e.line_no} not cancelled: {e.reason}" for e in outcome.refused]
    return "; ".join(filter(None, [action.comment, *parts]))


def escalate(uow: UnitOfWork, case: ExceptionCase, policy: CasePolicy, *, actor: str, reason: str) -> ExceptionCase:
    """Escalate ``case`` one level in this transaction, with its ``case.escalated`` event."""
    escalated = escalate_case(case, policy, now=uow.now(), actor=actor, reason=reason)
    uow.cases.save(escalated)
    uow.emit(CaseEscalated(case=escalated, from_team=case.owner_team, from_level=case.owner_level, reason=reason,
                           actor=actor), correlation_id=case.order_id)
    return escalated


# -- dead letters become cases ----------------------------------------------------------------------------

DeadLetterHook = Callable[[UnitOfWork, dict[str, Any]], None]


def dead_letter_cases(policy: CasePolicy) -> DeadLetterHook:
    """A consumer-runner hook: an ``integration_failure`` case for each dead letter, linked to it and to
    its order (when the message belongs to one), in the transaction that parks the letter. Dead
    letters of case events open none: a broken case consumer must not feed itself."""

    def hook(uow: UnitOfWork, row: dict[str, Any]) -> None:
        if str(row.get("type") or "").startswith("case."):
            return
        order_id = row.get("correlation_id")
        account = uow.orders.account_of(order_id) if order_id else None
        summary = (f"{row['consumer']} could not process {row.get('type') or 'a message'} ({row['reason']}, "
                   f"{row['attempts']} attempt(s)): {row['error']}")[:1000]
        case = open_case(CaseType.INTEGRATION_FAILURE, summary=summary, now=uow.now(), policy=policy,
                         next_action="read the dead letter's error, fix the cause, then retry it",
                         order_id=order_id if account else None, account_id=account, dead_letter_id=row["id"])
        uow.cases.add(case)
        uow.emit(CaseOpened(case=case), correlation_id=case.order_id)

    return hook
