"""Returns in the in-memory twin, after the Tryton adapter's (``tryton/returns.py``).

A return is a sale of negative quantities whose ``origin`` is the sale the goods come back from, with
the return's reference. Confirming it makes a draft return shipment and a draft credit note; the plant
receives the goods (:func:`receive`, stock goes up) and accounting posts the credit note, in either
order. Creation is idempotent by reference and refused, with the Tryton adapter's words, when a line
asks for more than the sale shipped less what its earlier returns take back.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.adapters.erp import memory_workflow as wf
from ordersync.adapters.erp.erp_common import ACCEPTED_SALE_STATES, return_problems, return_state, version
from ordersync.adapters.erp.memory_documents import MemoryDocuments
from ordersync.adapters.erp.memory_state import ZERO, ErpState, MLine, MReturnShipment, MSale
from ordersync.ports.erp import (
    Change,
    ChangeKind,
    ErpReturn,
    ErpReturnLine,
    ReturnOutcome,
    ReturnRequest,
    ReturnResult,
    parse_return_reference,
)


def _result(request: ReturnRequest, outcome: ReturnOutcome, sale: MSale | None, reconciled: bool,
            message: str = "") -> ReturnResult:
    return ReturnResult(reference=request.reference, outcome=outcome, message=message, reconciled=reconciled,
                        erp_return_id=str(sale.id) if sale else None, erp_return_number=sale.number if sale else None)


def shipped(st: ErpState, sale: MSale) -> dict[int, Decimal]:
    """What left the plant per line number (done moves)."""
    seqs = {ln.id: ln.seq for ln in sale.lines}
    out: dict[int, Decimal] = {}
    for move in st.moves.values():
        if move.line_id in seqs and move.state == "done":
            out[seqs[move.line_id]] = out.get(seqs[move.line_id], ZERO) + move.quantity
    return out


def returned(st: ErpState, sale: MSale, except_reference: str) -> dict[int, Decimal]:
    """What the sale's other live returns take back per line number."""
    out: dict[int, Decimal] = {}
    for other in st.sales.values():
        if other.origin == sale.id and other.state != "cancelled" and other.reference != except_reference:
            for line in other.lines:
                out[line.seq] = out.get(line.seq, ZERO) - line.quantity
    return out


def create(st: ErpState, request: ReturnRequest) -> ReturnResult:
    docs = MemoryDocuments(st)
    existing = docs.best(request.reference)
    if existing is not None:
        if existing.state == "cancelled":
            return _result(request, ReturnOutcome.REFUSED, existing, True,
                           f"ERP return {existing.id} for {request.reference} was cancelled in the ERP")
        _confirm(st, existing)
        return _result(request, ReturnOutcome.AUTHORIZED, existing, True)
    origin = docs.best(request.order_reference)
    if origin is None or origin.state not in ACCEPTED_SALE_STATES or origin.party != request.account_id:
        return _result(request, ReturnOutcome.REFUSED, None, False,
                       f"the ERP has no accepted order {request.order_reference} of account {request.account_id}")
    problems = return_problems(request, {ln.seq for ln in origin.lines}, shipped(st, origin),
                               returned(st, origin, request.reference))
    if problems:
        return _result(request, ReturnOutcome.REFUSED, None, False, "; ".join(problems))
    lines = {ln.seq: ln for ln in origin.lines}
    sale = MSale(next(st.ids), request.reference, origin.party, origin.plant, origin.currency, origin.ship_to, None,
                 None, [MLine(next(st.ids), x.line_no, lines[x.line_no].sku, -x.quantity, lines[x.line_no].unit_price)
                        for x in request.lines], st.tick(), origin=origin.id)
    st.sales[sale.id] = sale
    _confirm(st, sale)
    return _result(request, ReturnOutcome.AUTHORIZED, sale, False)


def _confirm(st: ErpState, sale: MSale) -> None:
    """Quote and confirm (a return takes no stock and no credit: no warning), then make the return
    shipment of whatever no return shipment carries yet."""
    if sale.state not in ACCEPTED_SALE_STATES:
        wf.quote(st, sale, accept_shortfall=True)
        wf.confirm(st, sale, credit_approved=True, accept_shortfall=True)
    carried = {line_id for s in _shipments(st, sale) for line_id, _, _ in s.lines}
    missing = [(ln.id, ln.sku, -ln.quantity) for ln in sale.lines if ln.quantity < 0 and ln.id not in carried]
    if missing:
        shipment = MReturnShipment(next(st.ids), f"R{next(st.shipment_numbers)}", sale.id, sale.plant, missing,
                                   st.tick())
        st.return_shipments[shipment.id] = shipment


def _shipments(st: ErpState, sale: MSale) -> list[MReturnShipment]:
    return [s for s in st.return_shipments.values() if s.sale_id == sale.id and s.state != "cancelled"]


def receive(st: ErpState, sale: MSale) -> None:
    """The plant receives the goods of the return's shipments and puts them back on the shelf."""
    today = st.today()
    skus: set[str] = set()
    for shipment in _shipments(st, sale):
        if shipment.state != "draft":
            continue
        for _, sku, quantity in shipment.lines:
            st.on_hand[(sku, shipment.plant)] = st.on_hand.get((sku, shipment.plant), ZERO) + quantity
            skus.add(sku)
        shipment.state, shipment.effective_date = "done", today
        shipment.stamp = sale.stamp = st.tick()
    if skus:
        stamp = st.tick()
        for sku in skus:
            st.stock_stamps[sku] = stamp


def state_of(st: ErpState, sale: MSale) -> tuple[ErpReturn, dt.datetime]:
    """The return as the port shows it, and when it last changed (the sale, its shipments or credit notes)."""
    shipments = _shipments(st, sale)
    invoices = [i for i in st.invoices.values() if i.sale_id == sale.id]
    received = bool(shipments) and all(s.state in ("received", "done") for s in shipments)
    credited = any(i.state in ("posted", "paid") for i in invoices)
    state = return_state(sale.state, "sent" if received else "waiting", "awaiting payment" if credited else "pending")
    return_id, plant = parse_return_reference(sale.reference) or ("", sale.plant)
    stamp = max([sale.stamp, *(s.stamp for s in shipments), *(i.stamp for i in invoices)])
    return ErpReturn(
        reference=sale.reference, return_id=return_id, plant=plant, erp_return_id=str(sale.id),
        erp_return_number=sale.number or "", state=state, account_id=sale.party,
        lines=tuple(ErpReturnLine(line_no=ln.seq, sku=ln.sku, quantity=-ln.quantity)
                    for ln in sorted(sale.lines, key=lambda x: x.seq)),
    ), stamp


def status(st: ErpState, reference: str) -> ErpReturn | None:
    sale = MemoryDocuments(st).best(reference)
    return state_of(st, sale)[0] if sale is not None else None


def changes(st: ErpState, since: dt.datetime) -> tuple[list[Change], list[dt.datetime]]:
    """Returns changed at or after ``since`` (see ``tryton/returns.py``), and their change times."""
    out: list[Change] = []
    seen: list[dt.datetime] = []
    for sale in sorted(st.sales.values(), key=lambda s: s.id):
        if parse_return_reference(sale.reference) is None:
            continue
        erp_return, stamp = state_of(st, sale)
        if stamp >= since:
            seen.append(stamp)
            out.append(Change(kind=ChangeKind.RETURN, key=f"return:{sale.id}",
                              version=version(stamp, erp_return.state.value), reference=sale.reference,
                              erp_return=erp_return))
    return out, seen
