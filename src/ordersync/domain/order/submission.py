"""Submitting an order to its ERP: one sales order per plant, and what happens when the ERP finds less
stock than was allocated.

:func:`erp_requests` turns the order's allocations into one ERP sales order per plant (one ERP line per
order line and plant). When the ERP answers ``stock_shortfall`` (other orders took the stock meanwhile),
:class:`Submission` backorders the difference at the same plant and sends the short sales again, up to
:data:`SHORTFALL_ROUNDS` times; a shortfall the ERP reports without a quantity the hub can move is
accepted as it stands (the ERP ships what it lacks later) rather than rejecting the order. The flow
makes the ERP calls; this module decides what each round sends.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ordersync.canonical.erp import (
    SalesOrderLine,
    SalesOrderRequest,
    SubmitOutcome,
    SubmitResult,
    order_reference,
)
from ordersync.canonical.v1 import Allocation

if TYPE_CHECKING:
    from ordersync.domain.order.aggregate import OrderRecord

#: how often a submission that the ERP finds short of stock is backordered and sent again
SHORTFALL_ROUNDS = 3


def erp_requests(record: OrderRecord, allocations: Sequence[Allocation], credit_approved: bool
                 ) -> list[SalesOrderRequest]:
    """One request per plant; one ERP line per order line and plant, at the line's price."""
    by_plant: dict[str, dict[int, list[Allocation]]] = defaultdict(lambda: defaultdict(list))
    for a in allocations:
        by_plant[a.plant][a.line_no].append(a)
    prices = {line.line_no: line.unit_price for line in record.lines}
    out = []
    for plant in sorted(by_plant):
        order_lines = []
        for line_no, parts in sorted(by_plant[plant].items()):
            order_lines.append(SalesOrderLine(
                line_no=line_no, sku=parts[0].sku, quantity=sum((p.quantity for p in parts), Decimal(0)),
                unit_price=prices[line_no], promised_date=max(p.promised_date for p in parts)))
        order = record.order
        out.append(SalesOrderRequest(
            reference=order_reference(record.id, plant), order_id=record.id, account_id=order.account_id,
            plant=plant, currency=order.currency or "", lines=tuple(order_lines), ship_to_id=order.ship_to_id,
            buyer_po_number=order.buyer_po_number,
            accept_shortfall=any(p.backorder for parts in by_plant[plant].values() for p in parts),
            credit_approved=credit_approved))
    return out


def backorder_shortfalls(allocations: Sequence[Allocation], results: Sequence[SubmitResult], later: dt.date
                         ) -> list[Allocation]:
    """Turn the quantity the ERP cannot ship now into backorders at the same plant, promised by ``later``
    at the earliest."""
    missing: dict[tuple[str, str], Decimal] = {}
    for r in results:
        for s in r.shortfalls:
            key = (s.sku, s.plant)
            missing[key] = missing.get(key, Decimal(0)) + max(Decimal(0), s.requested - s.available)
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


class Submission:
    """The rounds of one submission: :meth:`requests` says what to send, :meth:`answered` takes what the
    ERP said; ``allocations`` and ``results`` are what the order records afterwards."""

    def __init__(self, record: OrderRecord, *, credit_approved: bool, backorder_by: dt.date) -> None:
        self.record = record
        self.credit_approved = credit_approved
        self.backorder_by = backorder_by
        self.allocations: list[Allocation] = list(record.allocations)
        self.results: list[SubmitResult] = []
        self.rounds = 0
        self._next: list[SalesOrderRequest] | None = erp_requests(record, self.allocations, credit_approved)

    def requests(self) -> list[SalesOrderRequest]:
        """What to send next; empty when the submission is done."""
        return self._next or []

    def answered(self, answers: Sequence[SubmitResult]) -> None:
        """The ERP's answers to :meth:`requests`; decides the next round (a shortfall to backorder)."""
        if not self.results:
            self.results = list(answers)
        else:
            again = {x.reference: x for x in answers}
            self.results = [again.get(r.reference, r) for r in self.results]
        self._next = self._shortfall_round()

    def _shortfall_round(self) -> list[SalesOrderRequest] | None:
        short = [r for r in self.results if r.outcome is SubmitOutcome.STOCK_SHORTFALL]
        if not short or self.rounds >= SHORTFALL_ROUNDS:
            return None
        self.rounds += 1
        moved = backorder_shortfalls(self.allocations, short, self.backorder_by)
        retry = {r.reference for r in short}
        requests = [q for q in erp_requests(self.record, moved, self.credit_approved) if q.reference in retry]
        if moved == self.allocations:  # short, but by nothing we can name (the figures moved again): the
            # ERP takes the order as it stands and ships what it lacks later
            requests = [q.model_copy(update={"accept_shortfall": True}) for q in requests]
        self.allocations = moved
        return requests
