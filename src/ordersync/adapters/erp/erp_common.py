"""What the ERP adapters share: state vocabularies, change versions, timestamps, result helpers.

Both the Tryton adapter and its in-memory twin speak Tryton's vocabulary internally (sale, shipment and
invoice states), so the mapping to the canonical model lives here once and cannot drift between them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from ordersync.canonical.v1 import InvoiceState, ShipmentState
from ordersync.domain.returns import returnable_problems
from ordersync.ports.erp import (
    AmendmentRequest,
    AmendmentResult,
    ErpOrderState,
    ErpReturnState,
    LineChange,
    ReturnRequest,
    SalesOrderRequest,
    Shortfall,
    parse_reference,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Tryton has "no limit" for a party without a credit limit; the canonical limit is a number
UNLIMITED_CREDIT = Decimal("999999999999")

SALE_STATES: dict[str, ErpOrderState] = {
    "draft": ErpOrderState.DRAFT,
    "quotation": ErpOrderState.QUOTATION,
    "confirmed": ErpOrderState.CONFIRMED,
    "processing": ErpOrderState.PROCESSING,
    "done": ErpOrderState.DONE,
    "cancelled": ErpOrderState.CANCELLED,
}
#: sale states in which the order is accepted by the ERP (a resubmission only reconciles)
ACCEPTED_SALE_STATES = frozenset({"confirmed", "processing", "done"})

# Tryton's customer shipment: "shipped" = handed to the carrier, "done" = the stock moves are done (the goods
# left). Neither proves delivery; that comes from carriers, so both are SHIPPED for the hub.
SHIPMENT_STATES: dict[str, ShipmentState] = {
    "draft": ShipmentState.WAITING,
    "waiting": ShipmentState.WAITING,
    "assigned": ShipmentState.ASSIGNED,
    "picked": ShipmentState.PICKED,
    "packed": ShipmentState.PACKED,
    "shipped": ShipmentState.SHIPPED,
    "done": ShipmentState.SHIPPED,
    "cancelled": ShipmentState.CANCELLED,
}
#: shipment states in which the lines are on their way out: amendments no longer touch them
PICKING_SHIPMENT_STATES = frozenset({"assigned", "picked", "packed", "shipped"})

INVOICE_STATES: dict[str, InvoiceState] = {
    "draft": InvoiceState.DRAFT,
    "validated": InvoiceState.DRAFT,
    "posted": InvoiceState.POSTED,
    "paid": InvoiceState.PAID,
    "cancelled": InvoiceState.CANCELLED,
}
#: invoices the hub sees (drafts change under amendments and are not the customer's business yet)
VISIBLE_INVOICE_STATES = ("posted", "paid", "cancelled")


def utc(naive: dt.datetime) -> dt.datetime:
    """Tryton's naive-UTC timestamp as an aware one (aware values pass through, converted to UTC)."""
    return naive.replace(tzinfo=dt.UTC) if naive.tzinfo is None else naive.astimezone(dt.UTC)


def version(stamp: dt.datetime, state: str = "") -> str:
    """A change version: the record's last write time (and state). Same record state, same version."""
    text = utc(stamp).isoformat(timespec="microseconds")
    return f"{text}|{state}" if state else text


def change_fingerprint(items: Iterable[object]) -> str:
    """A short fingerprint of a set of items (their reprs), in any order: what a change probe answers,
    compared with its previous answer for the same window."""
    digest = hashlib.blake2b(digest_size=12)
    for item in sorted(repr(i) for i in items):
        digest.update(item.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def order_id_of(reference: str) -> str:
    """The hub order id in an ERP reference (the reference itself for orders the hub did not make)."""
    parsed = parse_reference(reference)
    return parsed[0] if parsed else reference


def at_midnight(day: dt.date | None) -> dt.datetime | None:
    """A date the ERP keeps without a time, as the start of that day in UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) if day else None


def shipping_date(dates: list[dt.date | None], today: dt.date) -> dt.date | None:
    """The sale's shipping date for lines promised on ``dates``: the earliest one, never in the past
    (Tryton plans one date per sale; it refuses a shipping date before the sale date)."""
    known = [d for d in dates if d is not None]
    return max(min(known), today) if known else None


def short_lines(request: SalesOrderRequest, available: dict[str, Decimal]) -> list[Shortfall]:
    """The request's lines that do not fit into ``available`` (per SKU), earlier lines taking first;
    ``requested - available`` is what the hub has to backorder."""
    left = dict(available)
    out = []
    for line in request.lines:
        have = left.get(line.sku, Decimal(0))
        if line.quantity > have:
            out.append(
                Shortfall(sku=line.sku, plant=request.plant, requested=line.quantity, available=max(have, Decimal(0)))
            )
        left[line.sku] = have - line.quantity
    return out


#: the sale's ``invoice_state`` once a credit note of a return is posted (Tryton's vocabulary)
CREDITED_INVOICE_STATES = frozenset({"awaiting payment", "partially paid", "paid"})


def return_state(sale_state: str, shipment_state: str, invoice_state: str) -> ErpReturnState:
    """What a return sale's states say about the return: confirmed = authorized, every move back
    (``shipment_state`` "sent") = received, a credit note posted = credited (credit can come first)."""
    if sale_state in ("draft", "quotation"):
        return ErpReturnState.PENDING
    if sale_state == "cancelled":
        return ErpReturnState.CANCELLED
    if invoice_state in CREDITED_INVOICE_STATES:
        return ErpReturnState.CREDITED
    if shipment_state == "sent":
        return ErpReturnState.RECEIVED
    return ErpReturnState.AUTHORIZED


def return_problems(request: ReturnRequest, lines: Collection[int], shipped: Mapping[int, Decimal],
                    returned: Mapping[int, Decimal]) -> list[str]:
    """Why an ERP refuses ``request`` (the same words from Tryton and its twin, and from the hub's own
    check of a request): the rule of :func:`ordersync.domain.returns.returnable_problems`."""
    return returnable_problems([(x.line_no, x.quantity) for x in request.lines],
                               owner=f"the ERP order {request.order_reference}", lines=lines, limit=shipped,
                               limit_word="shipped", before=returned, before_words="already came back or is on its way")


class KeyedLocks:
    """Per-key locks, so two submissions of one reference through the same adapter never interleave."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, keys: Sequence[str]) -> Iterator[None]:
        ordered = sorted(set(keys))  # one global order: no deadlock between overlapping batches
        with self._mutex:
            for key in ordered:
                lock, users = self._locks.get(key, (threading.Lock(), 0))
                self._locks[key] = (lock, users + 1)
            locks = [self._locks[k][0] for k in ordered]
        taken: list[threading.Lock] = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            with self._mutex:
                for key in ordered:
                    lock, users = self._locks[key]
                    if users == 1:
                        del self._locks[key]
                    else:
                        self._locks[key] = (lock, users - 1)


# -- amendments: Tryton's rules, which the twin obeys too ----------------------------------------------------

#: sale states in which Tryton amends a sale (a quotation is resubmitted instead)
AMENDABLE_SALE_STATES = frozenset({"processing", "done"})


@dataclass(frozen=True)
class ShipmentRef:
    id: int
    number: str
    state: str


class SaleLines(Protocol):
    """What the amendment rules read of a confirmed sale, by line number (Tryton's ``sequence``)."""

    def has_line(self, line_no: int) -> bool: ...

    def quantity(self, line_no: int) -> Decimal: ...

    def shipped(self, line_no: int) -> Decimal:
        """What left the plant for the line (done moves)."""
        ...

    def pending_shipments(self, line_no: int) -> list[ShipmentRef]:
        """The shipments that still carry some of the line, by id."""
        ...

    def lines_in(self, shipment_id: int) -> set[int]:
        """The lines a pending shipment carries."""
        ...


@dataclass
class AmendmentPlan:
    """How a sale takes an amendment: new quantities to write (change, target), changes that need
    nothing (applied as they are), refusals with reasons, and date changes to plan once the quantities
    are written."""

    quantities: list[tuple[LineChange, Decimal]] = field(default_factory=list)
    applied: list[LineChange] = field(default_factory=list)
    refused: list[tuple[LineChange, str]] = field(default_factory=list)
    dated: list[LineChange] = field(default_factory=list)


def not_amendable(request: AmendmentRequest, state: str) -> AmendmentResult | None:
    """A refusal of every change when the sale is not confirmed (else None)."""
    if state in AMENDABLE_SALE_STATES:
        return None
    reason = f"the ERP order is a {state}: only confirmed orders are amended (resubmit it instead)"
    return AmendmentResult(reference=request.reference, refused=tuple((c, reason) for c in request.changes))


def plan_amendment(sale: SaleLines, changes: Sequence[LineChange]) -> AmendmentPlan:
    """Tryton's rules for quantities: a line cannot go below what shipped (Tryton would accept it and show a
    negative quantity to ship), nor change while a shipment of it is being picked (Tryton would delete
    the picker's moves)."""
    plan = AmendmentPlan()
    for change in changes:
        n = change.line_no
        if not sale.has_line(n):
            plan.refused.append((change, f"the ERP order has no line {n}"))
            continue
        target = Decimal(0) if change.cancel else change.quantity
        if target is not None:
            shipped = sale.shipped(n)
            busy = [s for s in sale.pending_shipments(n) if s.state in PICKING_SHIPMENT_STATES]
            if target < shipped:
                plan.refused.append((change, f"line {n}: {shipped} already shipped, cannot reduce it to {target}"))
                continue
            if busy and target != sale.quantity(n):
                plan.refused.append((change, f"line {n} is being picked in shipment {busy[0].number} "
                                             f"({busy[0].state}): amend it after it ships"))
                continue
            if target != sale.quantity(n):
                plan.quantities.append((change, target))
            elif change.promised_date is None:
                plan.applied.append(change)
        if change.promised_date is not None:
            plan.dated.append(change)
    return plan


def quantity_part(change: LineChange) -> LineChange:
    """The quantity change of a change that also moves the date (the date is applied on its own)."""
    return change.model_copy(update={"promised_date": None}) if change.promised_date is not None else change


def plan_dates(sale: SaleLines, changes: Sequence[LineChange]
               ) -> tuple[list[LineChange], list[tuple[LineChange, str]], dict[int, dt.date]]:
    """Tryton has no date amendment and plans one date per shipment: a new date goes to the line's waiting
    shipments, when nothing of it is being picked and every line of those shipments gets the same date.
    Returns the applied and refused date changes and the planned date per shipment id."""
    applied: list[LineChange] = []
    refused: list[tuple[LineChange, str]] = []
    wanted = {c.line_no: c.promised_date for c in changes}
    plan: dict[int, dt.date] = {}
    for change in changes:
        assert change.promised_date is not None
        part = LineChange(line_no=change.line_no, promised_date=change.promised_date)
        shipments = sale.pending_shipments(change.line_no)
        if not shipments:
            refused.append((part, f"line {change.line_no} has nothing left to ship"))
            continue
        busy = [s for s in shipments if s.state in PICKING_SHIPMENT_STATES]
        if busy:
            refused.append((part, f"line {change.line_no} is being picked in shipment {busy[0].number}"))
            continue
        others = sorted(seq for s in shipments for seq in sale.lines_in(s.id)
                        if wanted.get(seq) != change.promised_date)
        if others:
            refused.append((part, f"line {change.line_no} ships with line(s) {', '.join(map(str, others))} in one "
                                  "shipment and Tryton plans one date per shipment: change them together"))
            continue
        for shipment in shipments:
            plan[shipment.id] = change.promised_date
        applied.append(part)
    return applied, refused, plan


def amendment_result(request: AmendmentRequest, applied: Sequence[LineChange],
                     refused: Sequence[tuple[LineChange, str]]) -> AmendmentResult:
    done = sorted(applied, key=lambda c: c.line_no)
    refusals = sorted(refused, key=lambda x: x[0].line_no)
    return AmendmentResult(reference=request.reference, applied=tuple(done), refused=tuple(refusals),
                           message=f"{len(done)} change(s) applied, {len(refusals)} refused")
