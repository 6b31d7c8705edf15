"""``GET /v1/orders`` and ``GET /v1/invoices``: an account's order history and invoices, newest first,
with keyset pagination (see :mod:`ordersync.api.pagination`).

A key bound to an account sees that account only; an unbound key (ops, a storefront serving many
accounts) names the account with ``account_id``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ordersync.api.auth import OrderReader, account_for
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal
from ordersync.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from ordersync.api.params import IsoDate, Text
from ordersync.api.problems import Problem
from ordersync.canonical.v1 import InvoiceState, OrderState
from ordersync.reads.orders import OrderFilter, disputed_invoice_ids, invoice_page, order_summaries
from ordersync.runtime.hub import Hub

router = APIRouter(prefix="/v1", tags=["self-service"])

AccountQuery = Annotated[str | None, Query(min_length=1, max_length=120,
                                           description="required unless the API key is bound to an account")]


class OrderSummary(BaseModel):
    id: str
    channel: str
    external_order_number: str
    buyer_po_number: str | None
    state: OrderState
    received_at: dt.datetime
    updated_at: dt.datetime
    total: Decimal | None = Field(description="priced total (after amendments); null until priced")
    currency: str | None
    partial: bool = Field(description="part of the order is backordered")


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = Field(description="pass as ``cursor`` for the next page; null on the last page")


class InvoiceSummary(BaseModel):
    id: str
    number: str
    order_id: str
    state: InvoiceState
    currency: str
    untaxed_amount: Decimal
    tax_amount: Decimal
    total_amount: Decimal
    due_date: dt.date | None
    posted_at: dt.datetime | None
    disputed: bool = Field(default=False, description="a dispute of this invoice is open (finance has the case)")


class InvoicePage(BaseModel):
    items: list[InvoiceSummary]
    next_cursor: str | None = Field(description="pass as ``cursor`` for the next page; null on the last page")


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def _received_window(placed_from: dt.date | None, placed_to: dt.date | None
                     ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``placed_from``/``placed_to`` are whole UTC days, both included."""
    if placed_from is not None and placed_to is not None and placed_to < placed_from:
        raise Problem(422, "Request is not valid", f"placed_to {placed_to} is before placed_from {placed_from}",
                      type_="https://ordersync.dev/problems/invalid-request",
                      errors=[{"location": "query.placed_to", "message": "must not be before placed_from"}])
    before = None
    if placed_to is not None and placed_to < dt.date.max:
        before = _day_start(placed_to + dt.timedelta(days=1))
    return (_day_start(placed_from) if placed_from else None), before


@router.get("/orders", response_model=OrderPage)
def list_orders(
    hub: HubDep,
    principal: OrderReader,
    account_id: AccountQuery = None,
    state: OrderState | None = None,
    channel: Text = None,
    external_order_number: Text = None,
    buyer_po_number: Text = None,
    placed_from: Annotated[IsoDate | None, Query(description="first day (UTC) the order was received")] = None,
    placed_to: Annotated[IsoDate | None, Query(description="last day (UTC) the order was received")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> OrderPage:
    """The account's orders, newest first, with filters. Follow ``next_cursor`` for older ones: pages
    neither repeat nor skip orders while new ones arrive."""
    return order_history(hub, principal, account_id=account_id, state=state, channel=channel,
                         external_order_number=external_order_number, buyer_po_number=buyer_po_number,
                         placed_from=placed_from, placed_to=placed_to, limit=limit, cursor=cursor)


def order_history(hub: Hub, principal: Principal, *, account_id: str | None = None, state: OrderState | None = None,
                  channel: str | None = None, external_order_number: str | None = None,
                  buyer_po_number: str | None = None, placed_from: dt.date | None = None,
                  placed_to: dt.date | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
                  ) -> OrderPage:
    """A page of ``GET /v1/orders`` (see :func:`list_orders`)."""
    account = account_for(principal, account_id)
    received_from, received_before = _received_window(placed_from, placed_to)
    after = decode_cursor(cursor, [dt.datetime, str]) if cursor else None
    f = OrderFilter(account_id=account, state=state.value if state else None, channel=channel,
                    external_order_number=external_order_number, buyer_po_number=buyer_po_number,
                    received_from=received_from, received_before=received_before)
    with hub.db.read() as conn:
        rows = order_summaries(conn, f, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1]["received_at"], rows[-1]["id"]]) if more else None
    return OrderPage(items=[OrderSummary(**r) for r in rows], next_cursor=next_cursor)


@router.get("/invoices", response_model=InvoicePage)
def list_invoices(
    hub: HubDep,
    principal: OrderReader,
    account_id: AccountQuery = None,
    state: InvoiceState | None = None,
    order_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> InvoicePage:
    """The account's invoices as the ERP posted them, newest first (by posting date)."""
    return invoice_history(hub, principal, account_id=account_id, state=state, order_id=order_id, limit=limit,
                           cursor=cursor)


def invoice_history(hub: Hub, principal: Principal, *, account_id: str | None = None,
                    state: InvoiceState | None = None, order_id: str | None = None, limit: int = DEFAULT_LIMIT,
                    cursor: str | None = None) -> InvoicePage:
    """A page of ``GET /v1/invoices`` (see :func:`list_invoices`)."""
    account = account_for(principal, account_id)
    after = decode_cursor(cursor, [dt.datetime, str, str]) if cursor else None
    with hub.db.read() as conn:
        rows = invoice_page(conn, account, state=state.value if state else None, order_id=order_id,
                            limit=limit + 1, after=after)
        disputed = disputed_invoice_ids(conn, account_id=account, invoice_ids=[i.id for i, _ in rows[:limit]])
    more = len(rows) > limit
    rows = rows[:limit]
    items = [InvoiceSummary(id=i.id, number=i.number, order_id=i.order_id, state=i.state, currency=i.currency,
                            untaxed_amount=i.untaxed_amount, tax_amount=i.tax_amount, total_amount=i.total_amount,
                            due_date=i.due_date, posted_at=i.posted_at, disputed=i.id in disputed) for i, _ in rows]
    return InvoicePage(items=items, next_cursor=encode_cursor(rows[-1][1]) if more else None)
