"""The buyer portal's invoices: each invoice's amount, open balance, due date and whether it is overdue,
the account's total open balance, disputes, and each invoice as PDF.

Why the balance is read over every invoice of the account and not summed from the page: the page shows
twenty invoices, the balance is what the account owes. A dispute is the API's own flow
(:func:`ordersync.flows.services.disputes.dispute_invoice`, as ``POST /v1/invoices/{id}/disputes``):
finance gets an ``invoice_dispute`` case, a second dispute of the same invoice while the case is open adds
the buyer's words to it. The form is post/redirect/get: the answer is the invoice list again, with what
happened, so a reload does not dispute twice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api import history
from ordersync.api.keys import Scope
from ordersync.api.problems import Problem
from ordersync.channels.portal.documents import parties, pdf_response, render_pdf
from ordersync.channels.portal.session import PAGE_SIZE, Buyer, error_page, hub_of, page, render, router, text
from ordersync.domain.cases import CasePolicy
from ordersync.flows.services.disputes import DisputeRequest, dispute_invoice
from ordersync.reads.accounts import (
    dispute_cases,
    invoice_of,
    invoices_by_id,
    open_amount,
    open_balance,
    order_numbers,
    overdue_amount,
)
from ordersync.reads.orders import order_view

#: what a dispute case's state says to the buyer
CASE_STATES = {"open": "received by our finance team", "in_progress": "being looked into",
               "escalated": "being looked into (escalated)", "resolved": "resolved"}


@router.get("/invoices")
@page(Scope.ORDERS_READ)
def invoicesrender(request: Request, buyer: Buyer, cursor: str | None = None, disputed: str = "",
                   again: str = "") -> Response:
    """The account's invoices, newest first, with what is open and overdue, and the total open balance."""
    hub = hub_of(request)
    found = history.invoice_history(hub, buyer.principal, limit=PAGE_SIZE, cursor=cursor[:500] if cursor else None)
    today = hub.clock.now().date()
    with hub.db.read() as conn:
        balance = open_balance(conn, buyer.account_id)
        overdue = overdue_amount(conn, buyer.account_id, today)
        cases = dispute_cases(conn, buyer.account_id, [i.id for i in found.items])
        full = invoices_by_id(conn, buyer.account_id, [i.id for i in found.items])
        numbers = order_numbers(conn, [i.order_id for i in found.items])
    rows = []
    for i in found.items:
        owed = open_amount(full[i.id]) if i.id in full else Decimal(0)
        case = cases.get(i.id)
        rows.append({"invoice": i, "open": owed, "owed": owed > 0, "order_number": numbers.get(i.order_id, "order"),
                     "overdue": owed > 0 and i.due_date is not None and i.due_date < today,
                     "case": {**case, "text": CASE_STATES.get(case["state"], case["state"])} if case else None,
                     "disputable": i.state.value not in ("cancelled", "draft") and not i.disputed})
    return render(request, "invoices.html", buyer, rows=rows, next_cursor=found.next_cursor,
                  balance=list(balance.items()), overdue=[(c, v) for c, v in overdue.items() if v > 0],
                  can_dispute=buyer.principal.has(Scope.INVOICES_WRITE), disputed=disputed[:120],
                  again=again == "1")


@router.post("/invoices/{invoice_id}/dispute")
@page(Scope.INVOICES_WRITE, posted=True)
async def dispute(request: Request, buyer: Buyer, form: FormData, invoice_id: str) -> Response:
    """Dispute the invoice (the API's flow), then back to the invoice list saying so."""
    reason = text(form, "reason", 500)
    if not reason:
        return error_page(request, buyer, 422, "Not accepted", "say what is wrong with the invoice")
    outcome = await run_in_threadpool(_dispute, request, buyer, invoice_id[:120], reason, text(form, "comment"))
    number = outcome.invoice.number or outcome.invoice.id
    again = "" if outcome.created else "&again=1"
    return RedirectResponse(f"/portal/invoices?disputed={quote(number)}{again}", status_code=303)


def _dispute(request: Request, buyer: Buyer, invoice_id: str, reason: str, comment: str) -> Any:
    hub = hub_of(request)
    policy = hub.deps.cases if hub.deps is not None else CasePolicy()
    with hub.uow() as uow:
        outcome = dispute_invoice(uow, invoice_id, DisputeRequest(reason=reason, comment=comment),
                                  account_id=buyer.account_id, actor=buyer.principal.actor, policy=policy)
    if outcome.created:
        hub.worker.wake()
    return outcome


@router.get("/invoices/{invoice_id}.pdf")
@page(Scope.ORDERS_READ)
def invoice_pdf(request: Request, buyer: Buyer, invoice_id: str) -> Response:
    """The invoice as PDF: seller, buyer, lines, totals, due date and what is open."""
    hub = hub_of(request)
    with hub.db.read() as conn:
        invoice = invoice_of(conn, buyer.account_id, invoice_id[:120])
        if invoice is None:
            raise Problem(404, "Not found", f"invoice {invoice_id[:120]} not found")
        order = order_view(conn, invoice.order_id)
        case = dispute_cases(conn, buyer.account_id, [invoice.id]).get(invoice.id)
    pdf = render_pdf(request, "invoice.html", {"invoice": invoice, "order": order, "open_amount": open_amount(invoice),
                                      "dispute": case, **parties(request, buyer)})
    return pdf_response(pdf, f"invoice-{invoice.number or invoice.id}.pdf")
