"""``POST /v1/invoices/{invoice_id}/disputes``: a buyer disputes an invoice (rules in ``flows/services/disputes.py``).

Scope ``invoices:write``: disputing changes something (a case for finance), so a read-only key
(``orders:read``) cannot; a portal gives it to the buyer's key next to ``orders:read``. The invoice must
be the key's account's (an unbound key names the account with ``account_id``): another account's
invoice is 404, like one that does not exist. The first dispute answers 201; while it is open, another
dispute of the same invoice answers 200 with the same dispute, its words added to the case's history.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ordersync.api.auth import account_for, require
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal, Scope
from ordersync.canonical.v1 import CaseState
from ordersync.domain.cases import CasePolicy
from ordersync.flows.services.disputes import DisputeRequest, dispute_invoice

router = APIRouter(prefix="/v1", tags=["self-service"])

InvoiceWriter = Annotated[Principal, require(Scope.INVOICES_WRITE)]


class DisputedLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_no: int = Field(ge=1, le=9999)
    quantity: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=6,
                                     description="the disputed quantity; leave out to dispute the whole line")


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    account_id: str | None = Field(default=None, min_length=1, max_length=120,
                                   description="required unless the API key is bound to an account")
    reason: str = Field(min_length=1, max_length=500, description="what is wrong, in the buyer's words")
    comment: str = Field(default="", max_length=2000)
    amount: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=6,
                                   description="the disputed amount, at most the invoice total")
    lines: list[DisputedLineIn] = Field(default_factory=list, max_length=500,
                                        description="the disputed invoice lines (by order line number)")


class DisputeOut(BaseModel):
    dispute_id: str
    invoice_id: str
    invoice_number: str
    order_id: str
    case_id: str = Field(description="the invoice_dispute case finance works on")
    owner_team: str
    case_state: CaseState
    created: bool = Field(description="false: a dispute of this invoice was open already; this request was "
                                      "added to its case")
    disputed: bool = True


@router.post("/invoices/{invoice_id}/disputes", status_code=201, response_model=DisputeOut, responses={
    200: {"model": DisputeOut, "description": "the invoice's open dispute, with this request added to its case"},
    409: {"description": "the invoice is cancelled: nothing to dispute"},
})
def dispute(invoice_id: Annotated[str, Path(min_length=1, max_length=120)], body: DisputeIn, hub: HubDep,
            principal: InvoiceWriter) -> JSONResponse:
    """Dispute an invoice of the account: finance gets an ``invoice_dispute`` case with the reason, and
    the invoice shows ``disputed: true`` in the invoice list and with its order until the case is
    resolved. Lines and amount, if given, must be on the invoice (422 otherwise)."""
    account = account_for(principal, body.account_id)
    policy = hub.deps.cases if hub.deps is not None else CasePolicy()
    request = DisputeRequest(reason=body.reason, comment=body.comment, amount=body.amount,
                             lines=tuple((x.line_no, x.quantity) for x in body.lines))
    with hub.uow() as uow:
        outcome = dispute_invoice(uow, invoice_id, request, account_id=account, actor=principal.actor,
                                  policy=policy)
    out = DisputeOut(dispute_id=outcome.dispute_id, invoice_id=invoice_id, invoice_number=outcome.invoice.number,
                     order_id=outcome.invoice.order_id, case_id=outcome.case.id, owner_team=outcome.case.owner_team,
                     case_state=outcome.case.state, created=outcome.created)
    if outcome.created:
        hub.worker.wake()
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if outcome.created else 200)
