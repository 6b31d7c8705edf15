"""``/v1/orders``: order intake and order status.

:func:`place_order` and :func:`accepted` are the intake's answer written once: the route, the reorder
route and the buyer portal's checkout all go through them.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ordersync.api.auth import OrderReader, OrderWriter, account_for
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal
from ordersync.api.params import Currency, IsoDate
from ordersync.api.problems import Problem
from ordersync.canonical.v1 import Order, OrderLine
from ordersync.domain.validation import account_terms
from ordersync.flows.services.intake import Receipt, meaning_hash
from ordersync.reads.orders import order_view
from ordersync.runtime.hub import Hub
from ordersync.telemetry import tracing
from ordersync.telemetry.logs import log_fields

router = APIRouter(prefix="/v1", tags=["orders"])


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    line_no: int = Field(ge=1, le=9999)
    sku: str | None = Field(default=None, max_length=120)
    customer_part_number: str | None = Field(default=None, max_length=120)
    quantity: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    unit: str | None = Field(default=None, max_length=20)
    unit_price_shown: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=6)
    requested_date: IsoDate | None = None


class OrderIn(BaseModel):
    """An order as a portal, dealer app or storefront sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_order_number: str = Field(min_length=1, max_length=120)
    account_id: str | None = Field(default=None, min_length=1, max_length=120,
                                   description="required unless the API key is bound to an account")
    buyer_po_number: str | None = Field(default=None, max_length=120)
    ship_to_id: str | None = Field(default=None, max_length=120)
    requested_date: IsoDate | None = None
    currency: Currency | None = Field(default=None, description="ISO 4217, the account's trading currency "
                                      "(refused at intake when the hub knows the account trades in another)")
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
async def submit_order(
    body: OrderIn,
    request: Request,
    hub: HubDep,
    principal: OrderWriter,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    delivery_id: Annotated[str | None, Header(alias="X-Delivery-Id", max_length=200)] = None,
) -> JSONResponse:
    """Accept an order durably (no ERP work happens before this answers) and say where to follow it.

    The channel is the API key's channel; a key bound to an account orders for that account only.
    ``Idempotency-Key`` makes a retried request return the first answer (``Idempotent-Replayed: true``);
    the same key with another body is refused (409)."""
    receipt = await place_order(hub, principal, body, fingerprint=meaning_hash(body.model_dump()),
                                idempotency_key=idempotency_key, delivery_id=delivery_id)
    return accepted(receipt)


async def place_order(hub: Hub, principal: Principal, body: OrderIn, *, fingerprint: str,
                      idempotency_key: str | None = None, delivery_id: str | None = None) -> Receipt:
    """Hand the order to the intake as ``principal``'s channel and wait until it is stored."""
    account_id = account_for(principal, body.account_id)
    await check_account_terms(hub, account_id, body.currency, body.ship_to_id)
    # OrderIn enforces the canonical model's constraints, so build the canonical order without
    # validating it a second time (this endpoint's cost is the hub's intake capacity).
    fields = {name: getattr(body, name) for name in OrderIn.model_fields if name not in ("lines", "account_id")}
    order = Order.model_construct(
        id=uuid.uuid4().hex,
        channel=principal.channel,
        placed_at=hub.clock.now(),
        account_id=account_id,
        lines=tuple(OrderLine.model_construct(**dict(line)) for line in body.lines),
        **fields,
    )
    tracing.annotate(order_id=order.id, account=account_id, channel=principal.channel)
    with log_fields(order_id=order.id):
        return await hub.intake.accept(order, scope=f"key:{principal.key_id}", idempotency_key=idempotency_key,
                                       fingerprint=fingerprint, delivery_id=delivery_id)


#: how long the intake waits for an account's terms it does not remember yet: not at all (the first orders
#: of an account after a start are taken and their validation decides, before the ERP); once read, the
#: terms are remembered and read again in the background, so intake never waits for the ERP
TERMS_WAIT_SECONDS = 0.0


async def check_account_terms(hub: Hub, account_id: str, currency: str | None, ship_to_id: str | None) -> None:
    """Refuse at once (422, with reasons) an order the account's terms do not allow: a currency it does
    not trade in, an inactive account, a ship-to that is not its own. Checked when the hub knows the
    account's terms (read from its ERP at the account's first order, then remembered); else the order is
    taken and its validation, before the ERP, rejects it with the same reasons."""
    if hub.readmodel is None:
        return
    terms = hub.readmodel.account_terms(account_id)
    if not terms.done():
        if TERMS_WAIT_SECONDS <= 0:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(terms), TERMS_WAIT_SECONDS)
        except TimeoutError:
            return
    account = terms.result()
    if account is None:
        return
    reasons = account_terms(account, currency, ship_to_id)
    if reasons:
        raise Problem(422, "Order refused: the account's terms do not allow it", "; ".join(r.message for r in reasons),
                      type_="https://ordersync.dev/problems/account-terms",
                      errors=[{"code": r.code, "message": r.message} for r in reasons])


def accepted(receipt: Receipt) -> JSONResponse:
    """202 with the order's location (and ``Idempotent-Replayed`` when the very same request came again)."""
    location = f"/v1/orders/{receipt.order_id}"
    headers = {"Location": location}
    if receipt.replayed:
        headers["Idempotent-Replayed"] = "true"
    content = {"order_id": receipt.order_id, "status": receipt.state.value, "location": location,
               "duplicate": receipt.duplicate}
    return JSONResponse(content, status_code=202, headers=headers)


@router.get("/orders/{order_id}")
def get_order(order_id: Annotated[str, Path(max_length=64)], hub: HubDep, principal: OrderReader
              ) -> dict[str, Any]:
    """The order's lifecycle state and history, lines with price and allocation, ERP orders, cases."""
    return order_answer(hub, principal, order_id)


def order_answer(hub: Hub, principal: Principal, order_id: str) -> dict[str, Any]:
    """The body of ``GET /v1/orders/{id}`` (404 for an order the caller may not see)."""
    with hub.db.read() as conn:
        view = order_view(conn, order_id)
    if view is None or (principal.account_id is not None and view["account_id"] != principal.account_id):
        raise Problem(404, "Not found", f"order {order_id} not found")
    return view
