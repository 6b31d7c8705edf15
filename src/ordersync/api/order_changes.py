"""``POST /v1/orders/{id}/reorder`` and ``POST /v1/orders/{id}/amendments``: a buyer orders the same
again, or changes an order the ERP has accepted.

A reorder is a new order through the same intake as ``POST /v1/orders`` (durable before the answer, no
ERP work before it, ``Idempotency-Key`` honoured). An amendment is decided by the ERP while the caller
waits: the answer says what was applied and what was refused, and why.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from ordersync.api.auth import OrderWriter
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal
from ordersync.api.orders import Accepted, accepted
from ordersync.api.params import IsoDate
from ordersync.api.problems import Problem
from ordersync.canonical.v1 import Order, OrderState
from ordersync.domain.events import AmendedLine
from ordersync.domain.order import LineAmendment
from ordersync.flows.services.amendments import amend_order
from ordersync.flows.services.intake import Receipt, meaning_hash
from ordersync.flows.services.reorders import next_reorder_number, reorder
from ordersync.runtime.hub import Hub

router = APIRouter(prefix="/v1", tags=["self-service"])

OrderId = Annotated[str, Path(max_length=64)]


def _not_found(order_id: str) -> Problem:
    return Problem(404, "Not found", f"order {order_id} not found")


# -- reorder ------------------------------------------------------------------------------------------

class ReorderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_order_number: str | None = Field(
        default=None, min_length=1, max_length=120,
        description="the new order's number; default: the past order's number with -R<n> (the next free n)")
    buyer_po_number: str | None = Field(default=None, max_length=120, description="the new order's PO number")
    requested_date: IsoDate | None = None


def _build_reorder(hub: Hub, order_id: str, principal: Principal, body: ReorderIn) -> Order:
    with hub.store.reading() as reader:
        past = reader.orders.find(order_id)
        if past is None or (principal.account_id is not None and past.order.account_id != principal.account_id):
            raise _not_found(order_id)
        number = body.external_order_number or next_reorder_number(reader.orders, principal.channel,
                                                                   past.order.external_order_number)
    return reorder(past, channel=principal.channel, external_order_number=number, placed_at=hub.clock.now(),
                   buyer_po_number=body.buyer_po_number, requested_date=body.requested_date)


@router.post("/orders/{order_id}/reorder", status_code=202, response_model=Accepted,
             responses={409: {"description": "idempotency key reused for a different request, or no line left "
                                             "to order again"}})
async def reorder_order(
    order_id: OrderId,
    request: Request,
    hub: HubDep,
    principal: OrderWriter,
    body: ReorderIn | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Place a new order with the lines (as amended, by SKU), account and ship-to of a past order.

    Today's contract prices and stock apply: the new order goes through validation, pricing, credit and
    allocation like any other. ``Idempotency-Key`` makes a retried request return the first answer."""
    return accepted(await place_reorder(hub, principal, order_id, body or ReorderIn(),
                                        idempotency_key=idempotency_key))


async def place_reorder(hub: Hub, principal: Principal, order_id: str, body: ReorderIn, *,
                        idempotency_key: str | None = None) -> Receipt:
    """The reorder handed to the intake (what :func:`reorder_order` and the buyer portal do)."""
    order = await run_in_threadpool(_build_reorder, hub, order_id, principal, body)
    fingerprint = meaning_hash({"reorder": order_id, "body": body.model_dump()})
    return await hub.intake.accept(order, scope=f"key:{principal.key_id}", idempotency_key=idempotency_key,
                                   fingerprint=fingerprint)


# -- amendments ---------------------------------------------------------------------------------------

class LineChangeIn(BaseModel):
    """One line: a new quantity and/or a new requested date, or ``cancel``."""

    model_config = ConfigDict(extra="forbid")
    line_no: int = Field(ge=1, le=9999)
    quantity: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=6,
                                     description="the new quantity of the line (cancel to remove it)")
    requested_date: IsoDate | None = Field(default=None, description="the new requested delivery date")
    cancel: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> LineChangeIn:
        if self.cancel and (self.quantity is not None or self.requested_date is not None):
            raise ValueError("cancel takes no quantity or requested_date")
        if not self.cancel and self.quantity is None and self.requested_date is None:
            raise ValueError("give a quantity, a requested_date, or cancel")
        return self


class AmendmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: list[LineChangeIn] = Field(min_length=1, max_length=500)


class LineOutcome(BaseModel):
    line_no: int
    quantity: Decimal | None
    requested_date: dt.date | None
    cancel: bool
    erp_orders: list[str] = Field(description="the ERP order references the change went to")
    reason: str | None = Field(description="why it was refused; null when applied")


class AmendmentOut(BaseModel):
    order_id: str
    state: OrderState
    applied: list[LineOutcome]
    refused: list[LineOutcome]


def _outcome(e: AmendedLine) -> LineOutcome:
    return LineOutcome(line_no=e.line_no, quantity=e.quantity, requested_date=e.requested_date, cancel=e.cancel,
                       erp_orders=list(e.references), reason=e.reason or None)


@router.post("/orders/{order_id}/amendments", response_model=AmendmentOut,
             responses={409: {"description": "the order has not reached the ERP (or was rejected or cancelled)"}})
def amend(order_id: OrderId, body: AmendmentIn, hub: HubDep, principal: OrderWriter) -> AmendmentOut:
    """Change quantities or requested dates of an accepted order, or cancel lines. The ERP decides
    while the caller waits; the answer lists what it applied and what it refused, with reasons. A line
    split across plants takes no new quantity (cancel or re-date go to every part). If the ERP cannot
    be reached, the answer is 503 with ``Retry-After`` and nothing changed."""
    if hub.deps is None:
        raise Problem(503, "No ERP configured", "this hub has no ERP to amend orders in",
                      headers={"Retry-After": "60"})
    today = hub.clock.now().date()
    past = [c.line_no for c in body.changes if c.requested_date is not None and c.requested_date < today]
    if past:
        raise Problem(422, "Request is not valid", f"requested dates before today ({today})",
                      type_="https://ordersync.dev/problems/invalid-request",
                      errors=[{"location": "body.changes", "message": f"line {n}: requested_date is in the past"}
                              for n in past])
    changes = [LineAmendment(line_no=c.line_no, quantity=c.quantity, requested_date=c.requested_date,
                             cancel=c.cancel) for c in body.changes]
    outcome = amend_order(hub.deps, order_id, changes, account_id=principal.account_id,
                          actor=principal.actor)
    return AmendmentOut(order_id=order_id, state=outcome.state, applied=[_outcome(e) for e in outcome.applied],
                        refused=[_outcome(e) for e in outcome.refused])

