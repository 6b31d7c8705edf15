"""Submissions and amendments of the in-memory twin, with the Tryton adapter's outcomes and messages.

Requests are handled one after the other; for each: find the sale by reference (an accepted one is
reported again, a cancelled one refuses, a draft or quotation is made to match and continues), else
create it; quote (stock check), confirm (credit, then stock check). See ``tryton/submit.py`` for the
real thing; amendments follow Tryton's rules as ``erp_common`` writes them for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp import memory_workflow as wf
from ordersync.adapters.erp.erp_common import (
    ACCEPTED_SALE_STATES,
    AMENDABLE_SALE_STATES,
    ShipmentRef,
    amendment_result,
    not_amendable,
    plan_amendment,
    plan_dates,
    quantity_part,
)
from ordersync.adapters.erp.memory_documents import MemoryDocuments
from ordersync.adapters.erp.memory_state import ErpState, MSale
from ordersync.ports.erp import (
    AmendmentRequest,
    AmendmentResult,
    SalesOrderRequest,
    SubmitOutcome,
    SubmitResult,
    UnknownItem,
)


def _problem(st: ErpState, r: SalesOrderRequest) -> str | None:
    """Why the request cannot become a sale at all (the Tryton adapter's wording), or None."""
    cust = st.customer(r.account_id)

    def unknown(kind: str, key: str) -> str:
        return f"the ERP does not know {kind} {key!r}"

    if cust is None:
        return unknown("account", r.account_id)
    if not cust.active:
        return f"account {r.account_id!r} is inactive in the ERP"
    if r.plant not in st.plants:
        return unknown("plant", r.plant)
    delivery = [a["key"] for a in cust.addresses if a["delivery"]]
    if (r.ship_to_id is not None and r.ship_to_id not in delivery) or not delivery:
        return unknown("ship-to", r.ship_to_id or f"(default of {cust.code})")
    if (r.currency or st.currency) != st.currency:
        return unknown("currency", r.currency)
    missing = next((ln.sku for ln in r.lines if ln.sku not in st.products), None)
    if missing is not None:
        return unknown("sku", missing)
    if not r.lines:
        return "an order needs at least one line"
    return None


def submit(st: ErpState, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
    done: dict[str, SubmitResult] = {}
    out = []
    for request in requests:
        if request.reference in done:  # the same reference twice in one batch
            out.append(done[request.reference].model_copy(update={"reconciled": True}))
            continue
        done[request.reference] = result = _submit_one(st, request)
        out.append(result)
    return out


def _result(
    r: SalesOrderRequest,
    outcome: SubmitOutcome,
    sale: MSale | None,
    reconciled: bool,
    message: str = "",
    **extra: object,
) -> SubmitResult:
    return SubmitResult(
        reference=r.reference,
        outcome=outcome,
        message=message,
        reconciled=reconciled,
        erp_order_id=str(sale.id) if sale else None,
        erp_order_number=sale.number if sale else None,
        **extra,
    )


def _submit_one(st: ErpState, r: SalesOrderRequest) -> SubmitResult:
    problem = _problem(st, r)
    if problem:
        return _result(r, SubmitOutcome.REJECTED, None, False, problem)
    docs = MemoryDocuments(st)
    values = docs.sale_values(r)
    sale = docs.best(r.reference)
    reconciled = sale is not None
    try:
        if sale is None:
            sale = wf.create_sale(st, **values)
        elif sale.state in ACCEPTED_SALE_STATES:
            return _result(r, SubmitOutcome.ACCEPTED, sale, True)
        elif sale.state == "cancelled":
            return _result(
                r, SubmitOutcome.REJECTED, sale, True, f"ERP order {sale.id} for {r.reference} was cancelled in the ERP"
            )
        else:
            header = {k: values[k] for k in ("party", "plant", "ship_to", "po", "shipping_date", "lines")}
            if sale.state == "quotation" and _differs(sale, header):
                wf.draft(st, sale)
            if sale.state == "draft":
                wf.write_sale(st, sale, **header)
    except wf.Refused as exc:
        return _result(r, SubmitOutcome.REJECTED, sale, reconciled, str(exc))
    try:
        wf.quote(st, sale, accept_shortfall=r.accept_shortfall)
    except wf.Warned as warned:
        return _result(r, SubmitOutcome.STOCK_SHORTFALL, sale, reconciled, warned.message, shortfalls=warned.shortfalls)
    try:
        wf.confirm(st, sale, credit_approved=r.credit_approved, accept_shortfall=r.accept_shortfall)
    except wf.Warned as warned:
        if warned.kind == "credit":
            return _result(r, SubmitOutcome.CREDIT_HOLD, sale, reconciled, warned.message)
        wf.draft(st, sale)  # as the adapter does: a stock refusal leaves a draft, not a reserving quotation
        return _result(r, SubmitOutcome.STOCK_SHORTFALL, sale, reconciled, warned.message, shortfalls=warned.shortfalls)
    return _result(r, SubmitOutcome.ACCEPTED, sale, reconciled)


def _differs(sale: MSale, header: dict[str, Any]) -> bool:
    lines = {(ln.seq, ln.sku, ln.quantity, ln.unit_price) for ln in sale.lines}
    current = (sale.party, sale.plant, sale.ship_to, sale.po, sale.shipping_date)
    wanted = tuple(header[k] for k in ("party", "plant", "ship_to", "po", "shipping_date"))
    return lines != set(header["lines"]) or current != wanted


# -- amendments --------------------------------------------------------------------------------------------


class _Sale:
    """The twin's sale as the shared amendment rules read it (:class:`~ordersync.adapters.erp.erp_common.SaleLines`)."""

    def __init__(self, st: ErpState, sale: MSale) -> None:
        self.st = st
        self.sale = sale

    def has_line(self, line_no: int) -> bool:
        return self.sale.line(line_no) is not None

    def quantity(self, line_no: int) -> Decimal:
        line = self.sale.line(line_no)
        assert line is not None
        return line.quantity

    def _moves(self, line_no: int, state: str) -> list[Any]:
        line = self.sale.line(line_no)
        assert line is not None
        return [m for m in self.st.moves.values() if m.line_id == line.id and m.state == state]

    def shipped(self, line_no: int) -> Decimal:
        return sum((m.quantity for m in self._moves(line_no, "done")), Decimal(0))

    def pending_shipments(self, line_no: int) -> list[ShipmentRef]:
        ids = sorted({m.shipment_id for m in self._moves(line_no, "draft")})
        return [ShipmentRef(i, self.st.shipments[i].number, self.st.shipments[i].state) for i in ids]

    def lines_in(self, shipment_id: int) -> set[int]:
        seqs = {ln.id: ln.seq for ln in self.sale.lines}
        return {seqs[m.line_id] for m in self.st.moves.values() if m.shipment_id == shipment_id and m.state == "draft"}


def amend(st: ErpState, request: AmendmentRequest) -> AmendmentResult:
    """Tryton's amendment rules (:func:`~ordersync.adapters.erp.erp_common.plan_amendment`), applied to
    the twin's state."""
    sales = [s for s in st.sales_of(request.reference) if s.state != "cancelled"]
    if not sales:
        raise UnknownItem("order", request.reference)
    sale = max(sales, key=lambda s: (s.state in AMENDABLE_SALE_STATES, -s.id))
    refused_whole = not_amendable(request, sale.state)
    if refused_whole is not None:
        return refused_whole
    plan = plan_amendment(_Sale(st, sale), request.changes)
    if plan.quantities:
        wf.amend_quantities(st, sale, {c.line_no: target for c, target in plan.quantities})
    dates_applied, dates_refused, planned = plan_dates(_Sale(st, sale), plan.dated)
    for shipment_id, day in planned.items():
        wf.plan_shipment(st, st.shipments[shipment_id], day)
    applied = [*plan.applied, *(quantity_part(c) for c, _ in plan.quantities), *dates_applied]
    return amendment_result(request, applied, [*plan.refused, *dates_refused])
