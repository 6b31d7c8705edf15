"""Invoice disputes: a buyer says an invoice is wrong, finance gets a case.

The invoice must belong to the caller's account (anything else is "not found", indistinguishable from an
invoice that does not exist). A dispute opens an ``invoice_dispute`` case (owner from the case policy:
finance by default) and emits ``invoice.disputed``; the case, the dispute row and both events commit in
one transaction. The invoice row is locked first, so two disputes of one invoice arriving together
cannot both open a case.

**One open dispute per invoice.** While the case of a dispute is not resolved, disputing the same
invoice again opens nothing new: the buyer's reason and comment are added to that case's history (the
owner sees everything the buyer said in one place) and the answer is the open dispute (``created``
false). Once finance resolves the case, a new dispute opens a new case. The order view and the invoice
list show ``disputed: true`` while a dispute is open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from ordersync.canonical.v1 import CaseEntry, CaseType, ExceptionCase, Invoice, InvoiceState
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.errors import Conflict, NotFound, ValidationFailed
from ordersync.domain.events import CaseOpened, InvoiceDisputed, ReportedLine
from ordersync.ports.store import UnitOfWork


@dataclass(frozen=True)
class DisputeRequest:
    reason: str
    comment: str = ""
    amount: Decimal | None = None  # the amount the buyer disputes, at most the invoice total
    lines: tuple[tuple[int, Decimal | None], ...] = ()  # (line_no, disputed quantity or None: the line)


@dataclass(frozen=True)
class DisputeOutcome:
    dispute_id: str
    erp: str
    invoice: Invoice
    case: ExceptionCase
    created: bool


def check_request(invoice: Invoice, request: DisputeRequest) -> list[str]:
    """What is wrong with the request against the invoice (empty: nothing)."""
    problems = []
    billed = {line.line_no: line.quantity for line in invoice.lines}
    seen: set[int] = set()
    for line_no, quantity in request.lines:
        if line_no in seen:
            problems.append(f"line {line_no}: named twice; one entry per line")
        seen.add(line_no)
        if line_no not in billed:
            problems.append(f"line {line_no}: invoice {invoice.number or invoice.id} has no such line")
        elif quantity is not None and quantity > billed[line_no]:
            problems.append(f"line {line_no}: {quantity} is more than the {billed[line_no]} invoiced")
    if request.amount is not None and request.amount > abs(invoice.total_amount):
        problems.append(f"amount {request.amount} is more than the invoice total {invoice.total_amount}")
    return problems


def _what(request: DisputeRequest) -> str:
    parts = [request.reason]
    if request.amount is not None:
        parts.append(f"amount {request.amount}")
    if request.lines:
        parts.append("lines " + ", ".join(f"{n}" + (f" ({q})" if q is not None else "") for n, q in request.lines))
    if request.comment:
        parts.append(request.comment)
    return "; ".join(parts)


def dispute_invoice(uow: UnitOfWork, invoice_id: str, request: DisputeRequest, *, account_id: str, actor: str,
                    policy: CasePolicy) -> DisputeOutcome:
    """Open a dispute (or add to the open one). Raises NotFound (not the account's invoice), Conflict (a
    cancelled invoice) or ValidationFailed (lines or amount that are not on the invoice)."""
    found = uow.documents.invoice_for_update(invoice_id, account_id)
    if found is None:
        raise NotFound(f"invoice {invoice_id} not found")
    erp, invoice = found
    if invoice.state is InvoiceState.CANCELLED:
        raise Conflict(f"invoice {invoice.number or invoice_id} is cancelled: there is nothing to dispute")
    problems = check_request(invoice, request)
    if problems:
        raise ValidationFailed(problems)
    now = uow.now()
    held = uow.disputes.open_for(erp, invoice_id)
    if held is not None:
        case = uow.cases.get(held[1])
        case = case.model_copy(update={"history": (
            *case.history, CaseEntry(at=now, actor=actor, action="disputed_again", comment=_what(request)))})
        uow.cases.save(case)
        return DisputeOutcome(held[0], erp, invoice, case, created=False)
    label = invoice.number or invoice.id
    case = open_case(CaseType.INVOICE_DISPUTE, now=now, policy=policy, order_id=invoice.order_id,
                     account_id=account_id, actor=actor,
                     summary=f"the buyer disputes invoice {label} ({invoice.total_amount} {invoice.currency}): "
                             f"{_what(request)}",
                     next_action=f"compare invoice {label} with the order and its shipments; issue a credit note "
                                 "in the ERP if the buyer is right, then resolve with a comment")
    dispute_id = uuid.uuid4().hex
    billed = {line.line_no: line.quantity for line in invoice.lines}  # a whole line: all of it
    uow.cases.add(case)
    uow.disputes.add(dispute_id, erp=erp, invoice_id=invoice_id, order_id=invoice.order_id, account_id=account_id,
                     case_id=case.id, at=now, request={
                         "reason": request.reason, "comment": request.comment,
                         "amount": str(request.amount) if request.amount is not None else None,
                         "lines": [{"line_no": n, "quantity": str(q) if q is not None else None}
                                   for n, q in request.lines],
                         "actor": actor})
    uow.emit(CaseOpened(case=case), correlation_id=invoice.order_id)
    uow.emit(InvoiceDisputed(
        dispute_id=dispute_id, erp=erp, invoice_id=invoice_id, invoice_number=invoice.number,
        order_id=invoice.order_id, account_id=account_id, case_id=case.id, reason=request.reason,
        comment=request.comment, amount=request.amount, actor=actor,
        lines=tuple(ReportedLine(line_no=n, quantity=q if q is not None else billed[n]) for n, q in request.lines)),
        correlation_id=invoice.order_id)
    return DisputeOutcome(dispute_id, erp, invoice, case, created=True)
