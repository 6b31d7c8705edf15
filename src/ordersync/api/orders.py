"""``/v1/orders``: order intake and order status."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from ordersync.api.auth import OrderReader, OrderWriter, account_for
from ordersync.api.deps import HubDep
from ordersync.api.problems import Problem
from ordersync.api.queries import order_view
from ordersync.canonical.v1 import Order, OrderLine
from ordersync.flows.intake import accept_order, request_hash

router = APIRouter(prefix="/v1", tags=["orders"])


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_no: int = Field(ge=1, le=9999)
    sku: str | None = Field(default=None, max_length=120)
    customer_part_number: str | None = Field(default=None, max_length=120)
    quantity: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    unit: str | None = Field(default=None, max_length=20)
    unit_price_shown: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=6)
    requested_date: dt.date | None = None


class OrderIn(BaseModel):
    """An order as a portal, dealer app or storefront sends it."""

    model_config = ConfigDict(extra="forbid")
    external_order_number: str = Field(min_length=1, max_length=120)
    account_id: str | None = Field(default=None, min_length=1, max_length=120,
                                   description="required unless the API key is bound to an account")
    buyer_po_number: str | None = Field(default=None, max_length=120)
    ship_to_id: str | None = Field(default=None, max_length=120)
    requested_date: dt.date | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    campaign: str | None = Field(default=None, max_length=64)
    notes: str = Field(default="", max_length=2000)
    lines: list[LineIn] = Field(min_length=1, max_length=500)


class Accepted(BaseModel):
    order_id: str
    status: str
    location: str
    duplicate: bool = Field(description="the same order (channel, external number) was received before")


@router.post("/orders", status_code=202, response_model=Accepted,
             responses={409: {"description": "idempotency key reused for a different request"}})
def submit_order(
    body: OrderIn,
    response: Response,
    hub: HubDep,
    principal: OrderWriter,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Delivery-Id", max_length=200)] = None,
) -> Accepted:
    """Accept an order durably (no ERP work happens before this answers) and say where to follow it.

    The channel is the API key's channel; a key bound to an account orders for that account only.
    ``Idempotency-Key`` makes a retried request return the first answer (``Idempotent-Replayed: true``);
    the same key with another body is refused (409)."""
    account_id = account_for(principal, body.account_id)
    order = Order(
        id=uuid.uuid4().hex,
        channel=principal.channel,
        placed_at=hub.clock.now(),
        **body.model_dump(exclude={"lines", "account_id"}),
        account_id=account_id,
        lines=tuple(OrderLine(**line.model_dump()) for line in body.lines),
    )
    with hub.uow() as uow:
        receipt = accept_order(uow, order, scope=f"key:{principal.key_id}", idempotency_key=idempotency_key,
                               fingerprint=request_hash(body.model_dump_json()), delivery_id=delivery_id)
    hub.worker.wake()
    location = f"/v1/orders/{receipt.order_id}"
    response.headers["Location"] = location
    if receipt.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return Accepted(order_id=receipt.order_id, status=receipt.state.value, location=location,
                    duplicate=receipt.duplicate)


@router.get("/orders/{order_id}")
def get_order(order_id: Annotated[str, Path(max_length=64)], hub: HubDep, principal: OrderReader
              ) -> dict[str, Any]:
    """The order's lifecycle state and history, lines with price and allocation, ERP orders, cases."""
    with hub.db.read() as conn:
        view = order_view(conn, order_id)
    if view is None or (principal.account_id is not None and view["account_id"] != principal.account_id):
        raise Problem(404, "Not found", f"order {order_id} not found")
    return view
