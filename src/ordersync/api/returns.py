"""``/v1/returns``: return authorization requests for goods of an order.

The hub checks and records the request (state ``requested``) and announces it with ``return.requested``;
creating the return in the ERP follows later, so the answer is the request, not a decision. Reading it
back shows how it went on (``flows/handlers/returns.py``): ``approved`` with the ERP's return per plant (or
``rejected`` with the reason), then ``received`` and ``credited`` as the ERP reports them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ordersync.api.auth import OrderReader, ReturnWriter
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal
from ordersync.api.problems import Problem
from ordersync.canonical.v1 import ReturnAuthorization, ReturnState
from ordersync.flows.services.returns import ReturnLineRequest, request_return
from ordersync.reads.orders import erp_returns_of, return_view
from ordersync.runtime.hub import Hub

router = APIRouter(prefix="/v1", tags=["self-service"])


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    line_no: int = Field(ge=1, le=9999)
    quantity: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    reason: str = Field(default="", max_length=500)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    order_id: str = Field(min_length=1, max_length=64)
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=500)


class ReturnLineOut(BaseModel):
    line_no: int
    quantity: Decimal
    reason: str


class ErpReturnOut(BaseModel):
    """The ERP's return at one plant: its reference, its number in the ERP and how far it has come."""

    plant: str
    reference: str
    number: str | None
    state: ReturnState


class ReturnOut(BaseModel):
    id: str
    order_id: str
    account_id: str
    state: ReturnState = Field(description="requested, then approved (authorized in the ERP) or rejected "
                                           "(see refusal_reason), then received and credited")
    lines: list[ReturnLineOut]
    requested_at: dt.datetime | None
    refusal_reason: str = ""
    erp_returns: list[ErpReturnOut] = []


def _out(request: dict[str, Any]) -> ReturnOut:
    return ReturnOut.model_validate(request)


@router.post("/returns", status_code=201, response_model=ReturnOut,
             responses={201: {"headers": {"Location": {"description": "where the request can be read",
                                                       "schema": {"type": "string"}}}},
                        409: {"description": "the order has not reached the ERP: nothing to return"}})
def create_return(body: ReturnIn, hub: HubDep, principal: ReturnWriter) -> JSONResponse:
    """Ask to return goods: each line's quantity must be more than 0 and at most what was shipped (if
    the ERP reported shipments for the order, else what was ordered), less what earlier requests of that
    line ask for. A refused request is a 422 naming each line's problem, and nothing is stored."""
    request = request_return_as(hub, principal, body)
    location = f"/v1/returns/{request.id}"
    return JSONResponse(_out(request.model_dump(mode="json")).model_dump(mode="json"), status_code=201,
                        headers={"Location": location})


@router.get("/returns/{return_id}", response_model=ReturnOut)
def get_return(return_id: Annotated[str, Path(max_length=64)], hub: HubDep, principal: OrderReader) -> ReturnOut:
    """A return request and its state."""
    return return_answer(hub, principal, return_id)


def request_return_as(hub: Hub, principal: Principal, body: ReturnIn) -> ReturnAuthorization:
    """Check and store ``principal``'s return request (what :func:`create_return` and the portal do)."""
    lines = [ReturnLineRequest(line_no=x.line_no, quantity=x.quantity, reason=x.reason) for x in body.lines]
    with hub.uow() as uow:
        return request_return(uow, body.order_id, lines, account_id=principal.account_id,
                              channel=principal.channel, actor=principal.actor)


def return_answer(hub: Hub, principal: Principal, return_id: str) -> ReturnOut:
    """The body of ``GET /v1/returns/{id}`` (404 for a request the caller may not see)."""
    with hub.db.read() as conn:
        request = return_view(conn, return_id)
        if request is None or (principal.account_id is not None and request["account_id"] != principal.account_id):
            raise Problem(404, "Not found", f"return request {return_id} not found")
        request["erp_returns"] = erp_returns_of(conn, return_id)
    return _out(request)
