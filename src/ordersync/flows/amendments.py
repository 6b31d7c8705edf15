"""Amendments of accepted orders: the buyer asks, the ERP decides, the hub records what happened.

An order that reached the ERP is one ERP sales order per plant (see :func:`ordersync.ports.erp.order_reference`);
each line change goes to the ERP order(s) its line was allocated to. A line split across plants cannot
take a new quantity (which plant would ship more or less is not the buyer's call, and the ERP amends one
order at a time); it can be cancelled or re-dated, which goes to every part.

The ERP call happens outside any database transaction, synchronously for the caller, in the orders
lane of the ERP's budget. If the ERP cannot be reached before anything changed there, the caller gets
:class:`~ordersync.domain.errors.Unavailable` and nothing is recorded. Otherwise the outcome is recorded in
one transaction: an ``order.amended`` event and the order's data (quantities, amounts, total,
allocations and dates) brought in line with what the ERP applied.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ordersync.adapters.erp.guard import Priority, erp_priority
from ordersync.adapters.erp.guarded import GuardedErp
from ordersync.canonical.v1 import OrderState
from ordersync.domain.errors import Conflict, IntegrationError, NotFound, ValidationFailed
from ordersync.domain.events import AmendedLine, OrderAmended
from ordersync.domain.lifecycle import can_move
from ordersync.domain.order import OrderRecord
from ordersync.flows.deps import FlowDeps
from ordersync.ports.erp import AmendmentRequest, AmendmentResult, LineChange, UnknownItem, order_reference
from ordersync.store.orders import OrderRepository
from ordersync.store.uow import UnitOfWork, unit_of_work

S = OrderState

#: the order reached the ERP (accepted or later): its ERP orders exist and the ERP can amend them
REACHED_ERP: frozenset[OrderState] = frozenset(
    {S.ACCEPTED, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED, S.SHIPPED, S.INVOICED, S.CLOSED})
_SAVE_ATTEMPTS = 3


@dataclass(frozen=True)
class LineAmendment:
    """What the buyer asks for one line: a new quantity and/or requested date, or cancel it."""

    line_no: int
    quantity: Decimal | None = None
    requested_date: dt.date | None = None
    cancel: bool = False


@dataclass
class AmendmentOutcome:
    order_id: str
    state: OrderState
    applied: list[AmendedLine] = field(default_factory=list)
    refused: list[AmendedLine] = field(default_factory=list)


#: more to write in the transaction that records an amendment's outcome
AlsoRecord = Callable[[UnitOfWork, AmendmentOutcome], None]


# -- planning: which ERP order takes which change --------------------------------------------------

def load_for_amendment(deps: FlowDeps, order_id: str, account_id: str | None) -> OrderRecord:
    """The order, if ``account_id`` (None: any) may see it and it can be amended."""
    with deps.db.read() as conn:
        record = OrderRepository(conn).find(order_id)
    if record is None or (account_id is not None and record.order.account_id != account_id):
        raise NotFound(f"order {order_id} not found")
    if record.state not in REACHED_ERP:
        raise Conflict(f"order {order_id} is {record.state.value}: only orders the ERP accepted can be amended "
                       "(until then, cancel it or wait for acceptance)")
    return record


def check_lines(record: OrderRecord, changes: Sequence[LineAmendment]) -> None:
    known = {line.line_no for line in record.order.lines}
    seen: set[int] = set()
    problems = []
    for change in changes:
        if change.line_no not in known:
            problems.append(f"line {change.line_no}: order {record.id} has no such line")
        if change.line_no in seen:
            problems.append(f"line {change.line_no}: changed twice in one amendment")
        seen.add(change.line_no)
    if problems:
        raise ValidationFailed(problems)


def _entry(change: LineAmendment, references: Sequence[str] = (), reason: str = "") -> AmendedLine:
    return AmendedLine(line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                       requested_date=None if change.cancel else change.requested_date, cancel=change.cancel,
                       references=tuple(references), reason=reason)


def route(record: OrderRecord, changes: Sequence[LineAmendment]
          ) -> tuple[dict[str, list[LineChange]], list[AmendedLine]]:
    """The ERP changes per ERP order reference, and the changes the hub refuses itself (with reasons)."""
    accepted = {ref for ref, info in record.data.get("erp_orders", {}).items() if info.get("outcome") == "accepted"}
    lines = record.data.get("lines", {})
    by_reference: dict[str, list[LineChange]] = defaultdict(list)
    refused: list[AmendedLine] = []
    for change in changes:
        plants = sorted({a["plant"] for a in record.data.get("allocations", []) if a["line_no"] == change.line_no})
        if lines.get(str(change.line_no), {}).get("cancelled"):
            refused.append(_entry(change, reason=f"line {change.line_no} is cancelled"))
            continue
        if not plants:
            refused.append(_entry(change, reason=f"line {change.line_no} is not allocated to any plant"))
            continue
        if change.quantity is not None and not change.cancel and len(plants) > 1:
            refused.append(_entry(change, reason=(
                f"line {change.line_no} is split across plants {', '.join(plants)}: a new quantity cannot be "
                "divided between them; cancel the line (every part) and order the quantity you need again")))
            continue
        references = [order_reference(record.id, plant) for plant in plants]
        missing = [r for r in references if r not in accepted]
        if missing:
            refused.append(_entry(change, reason=f"the ERP did not accept order {', '.join(missing)}"))
            continue
        for reference in references:
            by_reference[reference].append(LineChange(
                line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                promised_date=None if change.cancel else change.requested_date, cancel=change.cancel))
    return dict(by_reference), refused


# -- asking the ERP ---------------------------------------------------------------------------------

def ask_erp(erp: GuardedErp, requests: dict[str, list[LineChange]]) -> tuple[list[AmendmentResult], list[AmendedLine]]:
    """Send each ERP order its changes. An unreachable ERP before anything was applied raises (nothing
    changed anywhere); after something was applied, the rest is refused with the reason, so the hub
    still records what the ERP did."""
    results: list[AmendmentResult] = []
    refused: list[AmendedLine] = []
    down: IntegrationError | None = None
    with erp_priority(Priority.ORDERS):
        for reference, changes in sorted(requests.items()):
            if down is None:
                try:
                    results.append(erp.amend_order(AmendmentRequest(reference=reference, changes=tuple(changes))))
                    continue
                except UnknownItem:
                    refused += [_from_change(c, reference, f"the ERP has no order {reference}") for c in changes]
                    continue
                except IntegrationError as exc:
                    if not any(r.applied for r in results):
                        raise
                    down = exc
            refused += [_from_change(c, reference, f"the ERP could not be reached ({down}); this part was not "
                                                   "changed: send it again") for c in changes]
    return results, refused


def _from_change(change: LineChange, reference: str, reason: str = "") -> AmendedLine:
    return AmendedLine(line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                       requested_date=None if change.cancel else change.promised_date, cancel=change.cancel,
                       references=(reference,), reason=reason)


def merge(entries: Sequence[AmendedLine]) -> list[AmendedLine]:
    """One entry per (line, change, reason), naming every ERP order it concerns."""
    merged: dict[tuple[Any, ...], AmendedLine] = {}
    for e in entries:
        key = (e.line_no, e.quantity, e.requested_date, e.cancel, e.reason)
        known = merged.get(key)
        references = (*known.references, *e.references) if known else e.references
        merged[key] = e.model_copy(update={"references": tuple(sorted(set(references)))})
    return sorted(merged.values(), key=lambda e: (e.line_no, e.reason))


# -- recording ----------------------------------------------------------------------------------------

def _plant(reference: str, order_id: str) -> str:
    return reference.removeprefix(order_reference(order_id, ""))


def apply_to_data(record: OrderRecord, applied: Sequence[AmendedLine]) -> None:
    """Bring the order's lines, allocations and total in line with what the ERP applied."""
    data = record.data
    allocations: list[dict[str, Any]] = data.get("allocations", [])
    lines: dict[str, dict[str, Any]] = data.get("lines", {})
    for change in applied:
        plants = {_plant(r, record.id) for r in change.references}
        mine = [a for a in allocations if a["line_no"] == change.line_no and a["plant"] in plants]
        line = lines.get(str(change.line_no))
        if change.cancel:
            allocations = [a for a in allocations if a not in mine]
        elif change.quantity is not None:
            allocations = [a for a in allocations if a not in mine] + _resize(mine, change.quantity)
        if change.requested_date is not None:
            for a in allocations:
                if a["line_no"] == change.line_no and a["plant"] in plants:
                    a["promised_date"] = change.requested_date.isoformat()
            if line is not None:
                line["requested_date"] = change.requested_date.isoformat()
        if line is not None:
            left = sum((Decimal(a["quantity"]) for a in allocations if a["line_no"] == change.line_no), Decimal(0))
            line["quantity"] = str(left)
            line["amount"] = str((Decimal(line["unit_price"]) * left).quantize(Decimal("0.01"), ROUND_HALF_UP))
            if left == 0:
                line["cancelled"] = True
    data["allocations"] = sorted(allocations, key=lambda a: (a["line_no"], a["plant"], a["backorder"]))
    if lines:
        data["total"] = str(sum((Decimal(x["amount"]) for x in lines.values()), Decimal(0)))


def _resize(parts: list[dict[str, Any]], target: Decimal) -> list[dict[str, Any]]:
    """A line's allocations at one plant, resized to ``target``: more goes to the latest promise, less
    comes off the latest promises first (backorders before stock)."""
    parts = sorted((dict(p) for p in parts), key=lambda p: (p["backorder"], p["promised_date"]))
    if not parts:
        return []
    current = sum((Decimal(p["quantity"]) for p in parts), Decimal(0))
    if target >= current:
        parts[-1]["quantity"] = str(Decimal(parts[-1]["quantity"]) + target - current)
        return parts
    excess = current - target
    kept: list[dict[str, Any]] = []
    for p in reversed(parts):
        quantity = Decimal(p["quantity"])
        cut = min(quantity, excess)
        excess -= cut
        if quantity - cut > 0:
            kept.append({**p, "quantity": str(quantity - cut)})
    return list(reversed(kept))


def record_outcome(deps: FlowDeps, order_id: str, outcome: AmendmentOutcome, actor: str,
                   also: AlsoRecord | None = None) -> None:
    """The event and the updated data in one transaction (re-read and re-applied if the order changed
    concurrently: the ERP has already applied these changes, so they must land). ``also`` writes in
    that same transaction (a workbench action records itself on its case)."""
    for attempt in range(1, _SAVE_ATTEMPTS + 1):
        try:
            with unit_of_work(deps.db, deps.clock) as uow:
                record = uow.orders.get(order_id)
                apply_to_data(record, outcome.applied)
                record.data.setdefault("amendments", []).append({
                    "at": uow.now().isoformat(), "actor": actor,
                    "applied": [e.model_dump(mode="json") for e in outcome.applied],
                    "refused": [e.model_dump(mode="json") for e in outcome.refused],
                })
                _cancel_if_empty(record, uow.now())
                record.record_event(OrderAmended(
                    order_id=record.id, channel=record.order.channel, account_id=record.order.account_id,
                    erp=record.data.get("erp", ""), actor=actor, applied=tuple(outcome.applied),
                    refused=tuple(outcome.refused)))
                uow.save_order(record)
                outcome.state = record.state
                if also is not None:
                    also(uow, outcome)
                return
        except Conflict:
            if attempt == _SAVE_ATTEMPTS:
                raise


def _cancel_if_empty(record: OrderRecord, at: dt.datetime) -> None:
    lines = record.data.get("lines", {})
    if lines and all(x.get("cancelled") for x in lines.values()) and can_move(record.state, S.CANCELLED):
        record.move_to(S.CANCELLED, at, "every line was cancelled by an amendment")


# -- the whole thing ----------------------------------------------------------------------------------

def amend_order(deps: FlowDeps, order_id: str, changes: Sequence[LineAmendment], *, account_id: str | None,
                actor: str, also: AlsoRecord | None = None) -> AmendmentOutcome:
    """Validate, route, ask the ERP, record. Raises NotFound, Conflict (not amendable), ValidationFailed
    (bad lines) or IntegrationError (ERP unreachable; nothing changed, nothing recorded)."""
    record = load_for_amendment(deps, order_id, account_id)
    check_lines(record, changes)
    requests, refused = route(record, changes)
    outcome = AmendmentOutcome(order_id=order_id, state=record.state)
    if requests:
        erp = deps.router.erp(record.data["erp"]) if record.data.get("erp") else \
            deps.router.for_account(record.order.account_id)
        results, unreached = ask_erp(erp, requests)
        outcome.applied = merge([_from_change(c, r.reference) for r in results for c in r.applied])
        refused += unreached + [_from_change(c, r.reference, reason) for r in results for c, reason in r.refused]
    outcome.refused = merge(refused)
    if outcome.applied:
        record_outcome(deps, order_id, outcome, actor, also)
    return outcome
