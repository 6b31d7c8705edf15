"""Submissions and amendments of the in-memory twin, with the Tryton adapter's outcomes and messages.

Requests are handled one after the other; for each: find the sale by reference (an accepted one is
reported again, a cancelled one refuses, a draft or quotation is made to match and continues), else
create it; quote (stock check), confirm (credit, then stock check). See ``tryton/submit.py`` for the
real thing and ``tryton/amend.py`` for the amendment rules mirrored here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp import memory_workflow as wf
from ordersync.adapters.erp.erp_common import ACCEPTED_SALE_STATES, PICKING_SHIPMENT_STATES
from ordersync.adapters.erp.memory_documents import MemoryDocuments
from ordersync.adapters.erp.memory_state import ErpState, MSale, MShipment
from ordersync.ports.erp import (
    AmendmentRequest,
    AmendmentResult,
    LineChange,
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


def _pending_shipments(st: ErpState, sale: MSale, seq: int) -> list[MShipment]:
    line = sale.line(seq)
    assert line is not None
    ids = {m.shipment_id for m in st.moves.values() if m.line_id == line.id and m.state == "draft"}
    return [st.shipments[i] for i in sorted(ids)]


def _lines_in(st: ErpState, sale: MSale, shipment: MShipment) -> set[int]:
    seqs = {ln.id: ln.seq for ln in sale.lines}
    return {seqs[m.line_id] for m in st.moves.values() if m.shipment_id == shipment.id and m.state == "draft"}


def _shipped(st: ErpState, sale: MSale, seq: int) -> Decimal:
    line = sale.line(seq)
    assert line is not None
    return sum((m.quantity for m in st.moves.values() if m.line_id == line.id and m.state == "done"), Decimal(0))


def amend(st: ErpState, request: AmendmentRequest) -> AmendmentResult:
    sales = [s for s in st.sales_of(request.reference) if s.state != "cancelled"]
    if not sales:
        raise UnknownItem("order", request.reference)
    sale = max(sales, key=lambda s: (s.state in ("processing", "done"), -s.id))
    if sale.state not in ("processing", "done"):
        reason = f"the ERP order is a {sale.state}: only confirmed orders are amended (resubmit it instead)"
        return AmendmentResult(reference=request.reference, refused=tuple((c, reason) for c in request.changes))
    applied: list[LineChange] = []
    refused: list[tuple[LineChange, str]] = []
    quantities: dict[int, Decimal] = {}
    dated: list[LineChange] = []
    for change in request.changes:
        line = sale.line(change.line_no)
        if line is None:
            refused.append((change, f"the ERP order has no line {change.line_no}"))
            continue
        target = Decimal(0) if change.cancel else change.quantity
        if target is not None:
            shipped = _shipped(st, sale, change.line_no)
            busy = [s for s in _pending_shipments(st, sale, change.line_no) if s.state in PICKING_SHIPMENT_STATES]
            if target < shipped:
                refused.append(
                    (change, f"line {change.line_no}: {shipped} already shipped, cannot reduce it to {target}")
                )
                continue
            if busy and target != line.quantity:
                refused.append(
                    (
                        change,
                        f"line {change.line_no} is being picked in shipment {busy[0].number} "
                        f"({busy[0].state}): amend it after it ships",
                    )
                )
                continue
            if target != line.quantity:
                quantities[change.line_no] = target
                applied.append(change.model_copy(update={"promised_date": None}) if change.promised_date else change)
            elif change.promised_date is None:
                applied.append(change)
        if change.promised_date is not None:
            dated.append(change)
    if quantities:
        wf.amend_quantities(st, sale, quantities)
    a, r = _move_dates(st, sale, dated)
    applied = sorted([*applied, *a], key=lambda c: c.line_no)
    refused = sorted([*refused, *r], key=lambda x: x[0].line_no)
    return AmendmentResult(
        reference=request.reference,
        applied=tuple(applied),
        refused=tuple(refused),
        message=f"{len(applied)} change(s) applied, {len(refused)} refused",
    )


def _move_dates(
    st: ErpState, sale: MSale, changes: list[LineChange]
) -> tuple[list[LineChange], list[tuple[LineChange, str]]]:
    applied: list[LineChange] = []
    refused: list[tuple[LineChange, str]] = []
    wanted = {c.line_no: c.promised_date for c in changes}
    plan: dict[int, dt.date] = {}
    for change in changes:
        assert change.promised_date is not None
        part = LineChange(line_no=change.line_no, promised_date=change.promised_date)
        shipments = _pending_shipments(st, sale, change.line_no)
        if not shipments:
            refused.append((part, f"line {change.line_no} has nothing left to ship"))
            continue
        busy = [s for s in shipments if s.state in PICKING_SHIPMENT_STATES]
        if busy:
            refused.append((part, f"line {change.line_no} is being picked in shipment {busy[0].number}"))
            continue
        others = sorted(
            seq for s in shipments for seq in _lines_in(st, sale, s) if wanted.get(seq) != change.promised_date
        )
        if others:
            refused.append(
                (
                    part,
                    f"line {change.line_no} ships with line(s) {', '.join(map(str, others))} in one "
                    "shipment and Tryton plans one date per shipment: change them together",
                )
            )
            continue
        for shipment in shipments:
            plan[shipment.id] = change.promised_date
        applied.append(part)
    for shipment_id, day in plan.items():
        wf.plan_shipment(st, st.shipments[shipment_id], day)
    return applied, refused
