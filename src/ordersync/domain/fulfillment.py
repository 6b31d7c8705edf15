"""Fulfillment and invoicing rules: where an accepted order stands, given what the ERP, the warehouse and
the carriers reported about its shipments and invoices.

Pure functions over plain facts, so that the rules read in one place and test without a store.

**Shipments** come from two sources that may describe the same goods: the ERP (the system of record,
polled) and the warehouse/carriers (the WMS webhook). Each source's shipments are summed per order line;
the shipped quantity of a line is the larger of the two sums. Two reports of the same parcel therefore
count once, and whichever system has seen more moves the order on.

**States** move forward only, along ``accepted -> in_fulfillment -> partially_shipped -> shipped ->
invoiced``. A report that arrives late (a "picked" after a "shipped") or twice changes nothing; one that
skips steps (a "done" before any "picked") goes straight to where the facts point.

- ``in_fulfillment``: some shipment is being worked on (assigned, picked, packed), nothing has left.
- ``partially_shipped``: some quantity has left the plant, not all of every line.
- ``shipped``: every line's ordered quantity (as amended; cancelled lines count 0) has left, across all
  shipments, plants and ERP orders.
- ``invoiced``: shipped, **and** posted (or paid) invoices cover every line's ordered quantity. An invoice
  posted earlier (Tryton invoices on order by default: a partially shipped order can be fully invoiced)
  is recorded with its timestamps, and the order moves to ``invoiced`` the moment its last quantity ships.
  Reaching ``invoiced`` from before ``shipped`` records the ``shipped`` step first, so the fulfillment SLA
  always has its end.

**Discrepancies** (each one case, see :func:`discrepancies`): a line shipped beyond its ordered
quantity; a line short with nothing more to come (what is missing sits on a *cancelled* shipment and on
no open one: the warehouse or the ERP gave it up); a shipment line the order does not have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ordersync.canonical.v1 import InvoiceState, OrderState, ShipmentState

S = OrderState
Sh = ShipmentState
ZERO = Decimal(0)

#: the fulfillment track, in order; an order outside it (on hold, cancelled...) is not moved
TRACK: tuple[OrderState, ...] = (S.ACCEPTED, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED, S.SHIPPED, S.INVOICED)
_TRACK_RANK = {state: i for i, state in enumerate(TRACK)}

#: how far a shipment has come; a report of a lower rank than the one held is stale. Cancelled ranks
#: above the open states (a waiting shipment can be cancelled) and below shipped (goods that left cannot
#: be un-shipped by a late report). A carrier exception ranks with in_transit: either may follow the other.
SHIPMENT_RANK: dict[ShipmentState, int] = {
    Sh.WAITING: 0, Sh.ASSIGNED: 1, Sh.PICKED: 2, Sh.PACKED: 3, Sh.CANCELLED: 4, Sh.SHIPPED: 5,
    Sh.IN_TRANSIT: 6, Sh.EXCEPTION: 6, Sh.DELIVERED: 7,
}
#: shipments still on their way out of the plant: more may come for their lines
OPEN: frozenset[ShipmentState] = frozenset({Sh.WAITING, Sh.ASSIGNED, Sh.PICKED, Sh.PACKED})
#: a person in the warehouse is working on it
STARTED: frozenset[ShipmentState] = frozenset({Sh.ASSIGNED, Sh.PICKED, Sh.PACKED})
#: the goods left the plant
LEFT: frozenset[ShipmentState] = frozenset({Sh.SHIPPED, Sh.IN_TRANSIT, Sh.EXCEPTION, Sh.DELIVERED})

#: the WMS webhook's event types and the shipment state each one reports: warehouse steps, then carrier
#: statuses relayed by the warehouse
WMS_STATES: dict[str, ShipmentState] = {
    "pick": Sh.PICKED, "pack": Sh.PACKED, "ship": Sh.SHIPPED,
    "in_transit": Sh.IN_TRANSIT, "delivered": Sh.DELIVERED, "exception": Sh.EXCEPTION,
}
WAREHOUSE_KINDS: tuple[str, ...] = ("pick", "pack", "ship")
CARRIER_KINDS: tuple[str, ...] = ("in_transit", "delivered", "exception")

INVOICE_RANK: dict[InvoiceState, int] = {
    InvoiceState.DRAFT: 0, InvoiceState.POSTED: 1, InvoiceState.DISPUTED: 1, InvoiceState.PAID: 2,
    InvoiceState.CANCELLED: 3,
}
#: invoices that bill the buyer
BILLED: frozenset[InvoiceState] = frozenset({InvoiceState.POSTED, InvoiceState.PAID, InvoiceState.DISPUTED})


@dataclass(frozen=True)
class ShipmentFacts:
    """One shipment as the hub last heard of it. ``source`` is "erp" or "wms"; ``label`` names it for
    people ("ERP main shipment 12")."""

    key: str
    source: str
    state: ShipmentState
    lines: Mapping[int, Decimal]
    label: str


@dataclass(frozen=True)
class InvoiceFacts:
    """One invoice; ``lines`` are signed quantities (a credit note's are negative)."""

    key: str
    state: InvoiceState
    lines: Mapping[int, Decimal]


@dataclass(frozen=True)
class Discrepancy:
    """A fulfillment problem. ``key`` identifies it within the order, so that it opens one case however
    often the facts are re-evaluated."""

    key: str
    summary: str
    next_action: str


@dataclass(frozen=True)
class Progress:
    ordered: Mapping[int, Decimal]
    shipped: Mapping[int, Decimal]
    invoiced: Mapping[int, Decimal]
    started: bool
    target: OrderState
    reasons: Mapping[OrderState, str] = field(default_factory=dict)

    @property
    def any_shipped(self) -> bool:
        return any(q > 0 for q in self.shipped.values())

    @property
    def fully_shipped(self) -> bool:
        due = [n for n, q in self.ordered.items() if q > 0]
        return bool(due) and all(self.shipped.get(n, ZERO) >= self.ordered[n] for n in due)


def supersedes(held: ShipmentState | None, held_at: dt.datetime | None, new: ShipmentState,
               new_at: dt.datetime | None) -> bool:
    """Whether a report of ``new`` (at ``new_at``) replaces the one held. Lower rank: stale. Same rank:
    the later report wins (without times, the one that came last)."""
    if held is None:
        return True
    if SHIPMENT_RANK[new] != SHIPMENT_RANK[held]:
        return SHIPMENT_RANK[new] > SHIPMENT_RANK[held]
    return held_at is None or new_at is None or new_at >= held_at


def invoice_supersedes(held: InvoiceState | None, new: InvoiceState) -> bool:
    return held is None or INVOICE_RANK[new] >= INVOICE_RANK[held]


def shipped_by_line(shipments: Iterable[ShipmentFacts]) -> dict[int, Decimal]:
    """Per line, the larger of the sources' sums of shipments that left (see the module docstring)."""
    per_source: dict[str, dict[int, Decimal]] = {}
    for s in shipments:
        if s.state in LEFT:
            sums = per_source.setdefault(s.source, {})
            for line_no, quantity in s.lines.items():
                sums[line_no] = sums.get(line_no, ZERO) + quantity
    out: dict[int, Decimal] = {}
    for sums in per_source.values():
        for line_no, quantity in sums.items():
            out[line_no] = max(out.get(line_no, ZERO), quantity)
    return out


def invoiced_by_line(invoices: Iterable[InvoiceFacts]) -> dict[int, Decimal]:
    out: dict[int, Decimal] = {}
    for i in invoices:
        if i.state in BILLED:
            for line_no, quantity in i.lines.items():
                out[line_no] = out.get(line_no, ZERO) + quantity
    return out


def progress(ordered: Mapping[int, Decimal], shipments: Sequence[ShipmentFacts],
             invoices: Sequence[InvoiceFacts]) -> Progress:
    """Where the facts put the order on the fulfillment track (see the module docstring)."""
    shipped = shipped_by_line(shipments)
    invoiced = invoiced_by_line(invoices)
    started = any(s.state in STARTED or s.state in LEFT for s in shipments)
    p = Progress(ordered, shipped, invoiced, started, S.ACCEPTED)
    due = [n for n, q in ordered.items() if q > 0]
    total_ordered = sum((ordered[n] for n in due), ZERO)
    total_shipped = sum((min(shipped.get(n, ZERO), ordered[n]) for n in due), ZERO)
    if p.fully_shipped and all(invoiced.get(n, ZERO) >= ordered[n] for n in due):
        target = S.INVOICED
    elif p.fully_shipped:
        target = S.SHIPPED
    elif p.any_shipped:
        target = S.PARTIALLY_SHIPPED
    elif started:
        target = S.IN_FULFILLMENT
    else:
        target = S.ACCEPTED
    reasons = {
        S.IN_FULFILLMENT: "the warehouse is working on the order",
        S.PARTIALLY_SHIPPED: f"{_qty(total_shipped)} of {_qty(total_ordered)} units shipped",
        S.SHIPPED: f"every line shipped ({_qty(total_ordered)} units)",
        S.INVOICED: "shipped, and posted invoices cover every line",
    }
    return Progress(ordered, shipped, invoiced, started, target, reasons)


def moves(current: OrderState, target: OrderState) -> list[OrderState]:
    """The transitions from ``current`` towards ``target``: forward only, none outside the track, and
    ``shipped`` recorded on the way to ``invoiced``."""
    if current not in _TRACK_RANK or _TRACK_RANK[target] <= _TRACK_RANK[current]:
        return []
    if target is S.INVOICED and _TRACK_RANK[current] < _TRACK_RANK[S.SHIPPED]:
        return [S.SHIPPED, S.INVOICED]
    return [target]


def discrepancies(ordered: Mapping[int, Decimal], skus: Mapping[int, str],
                  shipments: Sequence[ShipmentFacts]) -> list[Discrepancy]:
    """Every fulfillment problem the facts show, each with a stable key (see the module docstring)."""
    shipped = shipped_by_line(shipments)
    out: list[Discrepancy] = []
    reported = sorted({n for s in shipments for n, q in s.lines.items() if q > 0})
    for line_no in reported:
        if line_no not in ordered:
            labels = ", ".join(s.label for s in shipments if s.lines.get(line_no, ZERO) > 0)
            out.append(Discrepancy(
                f"unknown_line:{line_no}",
                f"{labels} lists line {line_no}, which the order does not have",
                "check the shipment with the warehouse and correct it in the ERP (or the WMS); resolve with a "
                "comment once the goods are accounted for"))
    for line_no, want in sorted(ordered.items()):
        have = shipped.get(line_no, ZERO)
        name = _line(line_no, skus)
        if have > want:
            out.append(Discrepancy(
                f"over:{line_no}",
                f"{name}: {_qty(have)} shipped, {_qty(want)} ordered ({_qty(have - want)} too many)",
                f"confirm the quantity with the warehouse; invoice or take back the {_qty(have - want)} extra "
                "units, or amend the order to what the buyer keeps"))
        elif have < want and _given_up(line_no, shipments):
            out.append(Discrepancy(
                f"short:{line_no}",
                f"{name}: {_qty(have)} of {_qty(want)} shipped and the rest was cancelled "
                f"({', '.join(s.label for s in shipments if s.state is Sh.CANCELLED and line_no in s.lines)})",
                f"ship the missing {_qty(want - have)} units (a new shipment in the ERP), or amend the line to "
                f"{_qty(have)} so the order can complete; tell the buyer either way"))
    return out


def _given_up(line_no: int, shipments: Sequence[ShipmentFacts]) -> bool:
    """Nothing more will come for the line: a cancelled shipment held some of it and no open one does."""
    cancelled = any(s.state is Sh.CANCELLED and s.lines.get(line_no, ZERO) > 0 for s in shipments)
    pending = any(s.state in OPEN and s.lines.get(line_no, ZERO) > 0 for s in shipments)
    return cancelled and not pending


def _line(line_no: int, skus: Mapping[int, str]) -> str:
    sku = skus.get(line_no)
    return f"line {line_no} ({sku})" if sku else f"line {line_no}"


def _qty(quantity: Decimal) -> str:
    text = format(quantity.normalize(), "f")
    return text


# -- the order's fulfillment record ---------------------------------------------------------------------

class ShipmentReport(BaseModel):
    """One shipment as its source last reported it: the ERP (``erp``, ``id``, ``erp_ref``, ``plant``,
    ``reference``) or the warehouse and its carriers (``wms``, ``shipment_ref``, ``carrier``,
    ``tracking_number``, ``detail``, ``occurred_at``, ``delivered_at``). ``lines``: quantity per order line."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    source: str
    state: ShipmentState
    lines: dict[int, Decimal] = Field(default_factory=dict)
    shipped_at: dt.datetime | None = None
    erp: str | None = None
    id: str | None = None
    erp_ref: str | None = None
    plant: str | None = None
    reference: str | None = None
    wms: str | None = None
    shipment_ref: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    detail: str | None = None
    occurred_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    first_seen_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def label(self) -> str:
        if self.source == "erp":
            return f"ERP {self.erp} shipment {self.erp_ref or self.id}"
        return f"{self.wms} shipment {self.shipment_ref or '(unnamed)'}"


class InvoiceReport(BaseModel):
    """One invoice as the ERP last reported it; ``lines`` are signed quantities (a credit note's are
    negative); ``visible_at`` is when the hub first showed it posted to the buyer."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    erp: str
    id: str
    state: InvoiceState
    number: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    lines: dict[int, Decimal] = Field(default_factory=dict)
    posted_at: dt.datetime | None = None
    visible_at: dt.datetime | None = None
    first_seen_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


R = TypeVar("R", ShipmentReport, InvoiceReport)


class FulfillmentRecord(BaseModel):
    """Everything reported about an order's shipments (by ``<source>:...`` key) and invoices (by
    ``<erp>:<invoice id>``): the facts the rules above weigh."""

    shipments: dict[str, ShipmentReport] = Field(default_factory=dict)
    invoices: dict[str, InvoiceReport] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.shipments and not self.invoices

    def facts(self) -> tuple[list[ShipmentFacts], list[InvoiceFacts]]:
        shipments = [ShipmentFacts(key, s.source, s.state, s.lines, s.label())
                     for key, s in sorted(self.shipments.items())]
        invoices = [InvoiceFacts(key, i.state, i.lines) for key, i in sorted(self.invoices.items())]
        return shipments, invoices

    def put_shipment(self, key: str, changes: Mapping[str, Any], now: dt.datetime) -> bool:
        """Take what a report says of shipment ``key`` (keeping when it was first seen); False if it
        changes nothing."""
        return _put(self.shipments, key, changes, now, ShipmentReport)

    def put_invoice(self, key: str, changes: Mapping[str, Any], now: dt.datetime) -> bool:
        return _put(self.invoices, key, changes, now, InvoiceReport)

    def delivered_at(self) -> dt.datetime | None:
        """When the last of the warehouse's shipments that left was delivered, once every one of them is."""
        left = [s for s in self.shipments.values() if s.source == "wms" and s.state in LEFT]
        if left and all(s.state is Sh.DELIVERED and s.delivered_at is not None for s in left):
            return max(s.delivered_at for s in left if s.delivered_at is not None)
        return None


def _put(entries: dict[str, R], key: str, changes: Mapping[str, Any], now: dt.datetime, kind: type[R]) -> bool:
    held = entries.get(key)
    if held is not None and all(getattr(held, k) == v for k, v in changes.items()):
        return False
    stamps = {"first_seen_at": (held.first_seen_at if held is not None else None) or now, "updated_at": now}
    entries[key] = (held.model_copy(update={**changes, **stamps}) if held is not None
                    else kind.model_validate({**changes, **stamps}))
    return True


def line_quantities(lines: Iterable[tuple[int, Decimal]], sign: int = 1) -> dict[int, Decimal]:
    """Quantity per order line of ``(line_no, quantity)`` pairs (several pairs of one line add up)."""
    out: dict[int, Decimal] = {}
    for line_no, quantity in lines:
        out[line_no] = out.get(line_no, ZERO) + sign * quantity
    return dict(sorted(out.items()))
