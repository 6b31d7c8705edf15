"""Exception cases: business exceptions with an owner team, a next action, a due time and a runbook.

Owners, due times and runbooks are policy (configurable); these are the defaults.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from ordersync.canonical.v1 import CaseEntry, CaseState, CaseType, ExceptionCase

DEFAULT_OWNERS: dict[CaseType, str] = {
    CaseType.CREDIT_HOLD: "finance",
    CaseType.PRICE_MISMATCH: "commerce",
    CaseType.ALLOCATION_SHORTFALL: "operations",
    CaseType.FULFILLMENT_DISCREPANCY: "operations",
    CaseType.INVOICE_DISPUTE: "finance",
    CaseType.INTEGRATION_FAILURE: "integration",
    CaseType.ORDER_CONFLICT: "integration",
    CaseType.ERP_DISCREPANCY: "integration",
}

DEFAULT_DUE_HOURS: dict[CaseType, float] = {
    CaseType.CREDIT_HOLD: 4,
    CaseType.PRICE_MISMATCH: 8,
    CaseType.ALLOCATION_SHORTFALL: 24,
    CaseType.FULFILLMENT_DISCREPANCY: 24,
    CaseType.INVOICE_DISPUTE: 48,
    CaseType.INTEGRATION_FAILURE: 2,
    CaseType.ORDER_CONFLICT: 4,
    CaseType.ERP_DISCREPANCY: 24,
}

RUNBOOKS: dict[CaseType, str] = {
    CaseType.CREDIT_HOLD: (
        "The order would take the account over its credit limit. Check open invoices and payments in the "
        "ERP; contact the customer's accounts payable if needed. Release the hold to submit the order "
        "(the ERP's own credit check is acknowledged), or cancel the order."
    ),
    CaseType.PRICE_MISMATCH: (
        "The price the channel showed the buyer differs from the contract price plus channel rules. Check "
        "the storefront's price feed and the customer's price list. Accept the ERP price (the buyer is "
        "told), honour the shown price, or cancel the order."
    ),
    CaseType.ALLOCATION_SHORTFALL: (
        "No plant can ship the quantity now. Confirm the promised date with production planning, "
        "re-allocate once stock arrives, or cancel the line."
    ),
    CaseType.FULFILLMENT_DISCREPANCY: (
        "What was shipped differs from what was ordered, or an event could not be matched to an order. "
        "Check with the warehouse; correct the shipment in the ERP, or resolve with a comment."
    ),
    CaseType.INVOICE_DISPUTE: (
        "The buyer disputes an invoice. Compare invoice, order and shipment; issue a credit note in the "
        "ERP if the buyer is right, then resolve with a comment."
    ),
    CaseType.INTEGRATION_FAILURE: (
        "A message could not be processed (see the linked dead letter). Read its error, fix the cause "
        "(configuration, master data, a remote system), then retry it."
    ),
    CaseType.ORDER_CONFLICT: (
        "A channel sent an order number the hub already has, with different content (the case lists what "
        "differs). The channel was refused (409) and believes nothing changed only if it reads that answer. "
        "Ask the channel's owner what the buyer wants: change the order with an amendment (lines, "
        "quantities, dates: POST /v1/orders/{id}/amendments), or have the channel send a new order under a "
        "new order number; then resolve the case with a note saying what was done."
    ),
    CaseType.ERP_DISCREPANCY: (
        "Reconciliation found the hub and the ERP (or a channel) disagreeing; the case shows both sides, field "
        "by field. Find out which side is right (who changed the ERP sale, was a document lost). Correct the "
        "wrong side in its own system, then re-check: the case closes when both sides agree again. Resolve "
        "with a comment when the difference is accepted."
    ),
}


@dataclass(frozen=True)
class CasePolicy:
    owners: dict[CaseType, str] = field(default_factory=lambda: dict(DEFAULT_OWNERS))
    due_hours: dict[CaseType, float] = field(default_factory=lambda: dict(DEFAULT_DUE_HOURS))
    #: owner team per escalation level above 1, e.g. {"finance": ["finance-lead", "cfo-office"]}
    escalation: dict[str, list[str]] = field(default_factory=dict)
    #: the team that owns a channel's order conflicts, per channel name (else the case type's owner)
    channel_owners: dict[str, str] = field(default_factory=dict)


def open_case(
    case_type: CaseType,
    *,
    summary: str,
    next_action: str,
    now: dt.datetime,
    policy: CasePolicy,
    order_id: str | None = None,
    account_id: str | None = None,
    dead_letter_id: str | None = None,
    actor: str = "ordersync",
) -> ExceptionCase:
    owner = policy.owners.get(case_type, DEFAULT_OWNERS[case_type])
    return ExceptionCase(
        id=uuid.uuid4().hex,
        type=case_type,
        state=CaseState.OPEN,
        order_id=order_id,
        account_id=account_id,
        owner_team=owner,
        summary=summary,
        next_action=next_action,
        runbook=RUNBOOKS[case_type],
        due_at=now + dt.timedelta(hours=policy.due_hours.get(case_type, DEFAULT_DUE_HOURS[case_type])),
        opened_at=now,
        dead_letter_id=dead_letter_id,
        history=(CaseEntry(at=now, actor=actor, action="opened", comment=summary),),
    )


def resolve_case(case: ExceptionCase, *, action: str, actor: str, comment: str, now: dt.datetime) -> ExceptionCase:
    return case.model_copy(
        update={
            "state": CaseState.RESOLVED,
            "resolved_at": now,
            "history": (*case.history, CaseEntry(at=now, actor=actor, action=action, comment=comment)),
        }
    )


def is_open(case: ExceptionCase) -> bool:
    return case.state is not CaseState.RESOLVED


def is_overdue(case: ExceptionCase, now: dt.datetime) -> bool:
    return is_open(case) and case.due_at is not None and case.due_at < now


def record_action(case: ExceptionCase, *, action: str, actor: str, comment: str, now: dt.datetime,
                  **changes: object) -> ExceptionCase:
    """``case`` with ``changes`` applied and one history entry saying who did what, and when."""
    entry = CaseEntry(at=now, actor=actor, action=action, comment=comment)
    return case.model_copy(update={**changes, "history": (*case.history, entry)})


def escalation_chain(case: ExceptionCase, policy: CasePolicy) -> list[str]:
    """The owners of ``case`` by level: its level-1 team, then that team's configured escalation.

    The chain is keyed by the level-1 team; a case already escalated finds its chain by the team it
    has at its level (so a case assigned to another team escalates along that team's chain)."""
    if case.owner_level == 1:
        return [case.owner_team, *policy.escalation.get(case.owner_team, [])]
    for base, above in policy.escalation.items():
        chain = [base, *above]
        if len(chain) >= case.owner_level and chain[case.owner_level - 1] == case.owner_team:
            return chain
    return [case.owner_team]


def escalate_case(case: ExceptionCase, policy: CasePolicy, *, now: dt.datetime, actor: str,
                  reason: str) -> ExceptionCase:
    """One level up: the next team of the chain owns the case (the last one keeps it when the chain
    ends), with a new due time of the case type's usual length, so a case nobody acts on escalates
    again after that long instead of at every check."""
    chain = escalation_chain(case, policy)
    level = case.owner_level + 1
    owner = chain[min(level, len(chain)) - 1]
    due = now + dt.timedelta(hours=policy.due_hours.get(case.type, DEFAULT_DUE_HOURS[case.type]))
    comment = f"level {level}, owner {owner}, due {due.isoformat()}: {reason}"
    return record_action(case, action="escalated", actor=actor, comment=comment, now=now,
                         state=CaseState.ESCALATED, owner_team=owner, owner_level=level, due_at=due)
