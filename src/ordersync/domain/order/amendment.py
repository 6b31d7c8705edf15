"""Amendments of accepted orders: which ERP order takes which line change, and how the order stands once
the ERP has applied some of them.

An order that reached the ERP is one ERP sales order per plant (:func:`~ordersync.canonical.erp.order_reference`);
each line change goes to the ERP order(s) its line was allocated to. A line split across plants cannot
take a new quantity (which plant would ship more or less is not the buyer's call, and the ERP amends one
order at a time); it can be cancelled or re-dated, which goes to every part. The ERP decides; the order
then brings its lines and allocations in line with what the ERP applied, and is cancelled when every
line is.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordersync.canonical.erp import LineChange, order_reference
from ordersync.canonical.v1 import Allocation, OrderState
from ordersync.domain.errors import ValidationFailed
from ordersync.domain.events import AmendedLine, Event, OrderAmended
from ordersync.domain.lifecycle import can_move
from ordersync.domain.order.parts import AmendmentEntry

if TYPE_CHECKING:
    from ordersync.domain.order.aggregate import OrderRecord


@dataclass(frozen=True)
class LineAmendment:
    """What the buyer asks for one line: a new quantity and/or requested date, or cancel it."""

    line_no: int
    quantity: Decimal | None = None
    requested_date: dt.date | None = None
    cancel: bool = False


def check_lines(record: OrderRecord, changes: Sequence[LineAmendment]) -> None:
    """Every change names a line of the order, once (else :class:`ValidationFailed`)."""
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


def entry(change: LineAmendment, references: Sequence[str] = (), reason: str = "") -> AmendedLine:
    return AmendedLine(line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                       requested_date=None if change.cancel else change.requested_date, cancel=change.cancel,
                       references=tuple(references), reason=reason)


def from_change(change: LineChange, reference: str, reason: str = "") -> AmendedLine:
    """A change the ERP was sent (or answered), as recorded."""
    return AmendedLine(line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                       requested_date=None if change.cancel else change.promised_date, cancel=change.cancel,
                       references=(reference,), reason=reason)


def route(record: OrderRecord, changes: Sequence[LineAmendment]
          ) -> tuple[dict[str, list[LineChange]], list[AmendedLine]]:
    """The ERP changes per ERP order reference, and the changes the hub refuses itself (with reasons)."""
    accepted = record.accepted_erp_orders()
    by_reference: dict[str, list[LineChange]] = defaultdict(list)
    refused: list[AmendedLine] = []
    for change in changes:
        plants = sorted({a.plant for a in record.allocations if a.line_no == change.line_no})
        line = record.line(change.line_no)
        if line is not None and line.cancelled:
            refused.append(entry(change, reason=f"line {change.line_no} is cancelled"))
            continue
        if not plants:
            refused.append(entry(change, reason=f"line {change.line_no} is not allocated to any plant"))
            continue
        if change.quantity is not None and not change.cancel and len(plants) > 1:
            refused.append(entry(change, reason=(
                f"line {change.line_no} is split across plants {', '.join(plants)}: a new quantity cannot be "
                "divided between them; cancel the line (every part) and order the quantity you need again")))
            continue
        references = [order_reference(record.id, plant) for plant in plants]
        missing = [r for r in references if r not in accepted]
        if missing:
            refused.append(entry(change, reason=f"the ERP did not accept order {', '.join(missing)}"))
            continue
        for reference in references:
            by_reference[reference].append(LineChange(
                line_no=change.line_no, quantity=None if change.cancel else change.quantity,
                promised_date=None if change.cancel else change.requested_date, cancel=change.cancel))
    return dict(by_reference), refused


def merge(entries: Sequence[AmendedLine]) -> list[AmendedLine]:
    """One entry per (line, change, reason), naming every ERP order it concerns."""
    merged: dict[tuple[Any, ...], AmendedLine] = {}
    for e in entries:
        key = (e.line_no, e.quantity, e.requested_date, e.cancel, e.reason)
        known = merged.get(key)
        references = (*known.references, *e.references) if known else e.references
        merged[key] = e.model_copy(update={"references": tuple(sorted(set(references)))})
    return sorted(merged.values(), key=lambda e: (e.line_no, e.reason))


def apply_amendment(record: OrderRecord, applied: Sequence[AmendedLine], refused: Sequence[AmendedLine], *,
                    actor: str, at: dt.datetime) -> list[Event]:
    """Record an amendment's outcome on the order (``order.amended``): lines, allocations and dates as
    the ERP applied them; the order is cancelled when no line is left."""
    mark = len(record.pending_events)
    _apply_changes(record, applied)
    record.amendments = (*record.amendments, AmendmentEntry(at=at, actor=actor, applied=tuple(applied),
                                                            refused=tuple(refused)))
    if record.lines and all(x.cancelled for x in record.lines) and can_move(record.state, OrderState.CANCELLED):
        record.move_to(OrderState.CANCELLED, at, "every line was cancelled by an amendment")
    record.record_event(OrderAmended(order_id=record.id, channel=record.order.channel,
                                     account_id=record.order.account_id, erp=record.erp or "", actor=actor,
                                     applied=tuple(applied), refused=tuple(refused)))
    return record.pending_events[mark:]


def _plant(reference: str, order_id: str) -> str:
    return reference.removeprefix(order_reference(order_id, ""))


def _apply_changes(record: OrderRecord, applied: Sequence[AmendedLine]) -> None:
    allocations = list(record.allocations)
    lines = {x.line_no: x for x in record.lines}
    for change in applied:
        plants = {_plant(r, record.id) for r in change.references}
        mine = [a for a in allocations if a.line_no == change.line_no and a.plant in plants]
        if change.cancel:
            allocations = [a for a in allocations if a not in mine]
        elif change.quantity is not None:
            allocations = [a for a in allocations if a not in mine] + _resize(mine, change.quantity)
        if change.requested_date is not None:
            allocations = [a.model_copy(update={"promised_date": change.requested_date})
                           if a.line_no == change.line_no and a.plant in plants else a for a in allocations]
        line = lines.get(change.line_no)
        if line is not None:
            left = sum((a.quantity for a in allocations if a.line_no == change.line_no), Decimal(0))
            update: dict[str, Any] = {"quantity": left}
            if change.requested_date is not None:
                update["requested_date"] = change.requested_date
            if left == 0:
                update["cancelled"] = True
            lines[change.line_no] = line.model_copy(update=update)
    record.allocations = tuple(sorted(allocations, key=lambda a: (a.line_no, a.plant, a.backorder)))
    record.lines = tuple(lines[n] for n in sorted(lines))


def _resize(parts: list[Allocation], target: Decimal) -> list[Allocation]:
    """A line's allocations at one plant, resized to ``target``: more goes to the latest promise, less
    comes off the latest promises first (backorders before stock)."""
    parts = sorted(parts, key=lambda p: (p.backorder, p.promised_date))
    if not parts:
        return []
    current = sum((p.quantity for p in parts), Decimal(0))
    if target >= current:
        return [*parts[:-1], parts[-1].model_copy(update={"quantity": parts[-1].quantity + target - current})]
    excess = current - target
    kept: list[Allocation] = []
    for p in reversed(parts):
        cut = min(p.quantity, excess)
        excess -= cut
        if p.quantity - cut > 0:
            kept.append(p.model_copy(update={"quantity": p.quantity - cut}))
    return list(reversed(kept))
