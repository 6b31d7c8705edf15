"""The buyer portal's returns: the account's return requests with their RMA numbers, one request's
state and lines, and asking to return goods of an order that shipped.

Why the RMA number is derived and not stored: the return request's id is the hub's stable key, and a
buyer's warehouse needs something short to write on the parcel. ``RMA-<year>-<first 8 of the id>``
is stable (the same request always has the same number), unique enough within a year for a human to
read out on the phone, and needs no counter in the store; the ERP's own return numbers are shown beside
it once the ERP has made the returns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api import orders, returns
from ordersync.api.keys import Scope
from ordersync.api.pagination import decode_cursor, encode_cursor
from ordersync.channels.portal.cart import quantity
from ordersync.channels.portal.orders import erp_shipped, shipped_anything
from ordersync.channels.portal.session import PAGE_SIZE, Buyer, error_page, hub_of, page, render, router, text
from ordersync.reads.accounts import account_returns

#: what a return's state says to the buyer
RETURN_STATES = {"requested": "Requested: we check it and create the return",
                 "approved": "Approved: send the goods back with the RMA number on the parcel",
                 "rejected": "Not accepted",
                 "received": "Received back: the credit note follows",
                 "credited": "Credited"}


def rma_number(return_id: str, requested_at: dt.datetime | str | None) -> str:
    """The return's human number: ``RMA-2026-3F2A9C1B`` (year requested, first 8 of its id)."""
    if isinstance(requested_at, str):
        requested_at = dt.datetime.fromisoformat(requested_at)
    year = requested_at.year if requested_at is not None else 0
    return f"RMA-{year:04d}-{return_id.replace('-', '')[:8].upper()}"


def _state_text(state: str) -> str:
    return RETURN_STATES.get(state, state.replace("_", " ").capitalize())


@router.get("/returns")
@page(Scope.ORDERS_READ)
def returnsrender(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    """The account's return requests, newest first: RMA number, order, state and lines."""
    hub = hub_of(request)
    after = decode_cursor(cursor[:500], [dt.datetime, str]) if cursor else None
    with hub.db.read() as conn:
        found = account_returns(conn, buyer.account_id, PAGE_SIZE + 1, after)
    more = len(found) > PAGE_SIZE
    rows = [_row(body) for body, _ in found[:PAGE_SIZE]]
    next_cursor = encode_cursor(found[PAGE_SIZE - 1][1]) if more else None
    return render(request, "returns.html", buyer, rows=rows, next_cursor=next_cursor)


def _row(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": body["id"], "rma": rma_number(body["id"], body.get("requested_at")), "order_id": body["order_id"],
            "order_number": body.get("order_number") or "order",
            "state": body["state"], "state_text": _state_text(body["state"]),
            "requested": body.get("requested_at"), "lines": body["lines"],
            "erp_numbers": [e["number"] or e["reference"] for e in body.get("erp_returns", [])]}


@router.get("/returns/{return_id}")
@page(Scope.ORDERS_READ)
def returnrender(request: Request, buyer: Buyer, return_id: str) -> Response:
    ret = returns.return_answer(hub_of(request), buyer.principal, return_id[:64])
    return render(request, "return.html", buyer, ret=ret, rma=rma_number(ret.id, ret.requested_at),
                  state_text=_state_text(ret.state.value))


@router.get("/orders/{order_id}/return")
@page(Scope.RETURNS_WRITE)
def return_form(request: Request, buyer: Buyer, order_id: str) -> Response:
    """What can be returned: the order's shipped lines (nothing shipped: nothing to return yet)."""
    view = orders.order_answer(hub_of(request), buyer.principal, order_id[:64])
    if not shipped_anything(view):
        return error_page(request, buyer, 409, "Nothing shipped yet",
                          f"order {view['external_order_number']} has not shipped anything: a return can be "
                          "requested once goods have left our plant")
    shipped: dict[int, Decimal] = {}
    for s in erp_shipped(view):
        for x in s["lines"]:
            shipped[x["line_no"]] = shipped.get(x["line_no"], Decimal(0)) + Decimal(x["quantity"])
    return render(request, "return_form.html", buyer, order=view, shipped=shipped)


@router.post("/orders/{order_id}/return")
@page(Scope.RETURNS_WRITE, posted=True)
async def request_return(request: Request, buyer: Buyer, form: FormData, order_id: str) -> Response:
    """A return request for some of the order's lines (``POST /v1/returns``): the hub checks the
    quantities against what was shipped and answers with the request, which the ERP then decides."""
    reason = text(form, "reason", 500)
    lines = []
    for name in form:
        if name.startswith("qty:") and text(form, name):
            q = quantity(text(form, name, 30), allow_zero=True)
            if q is None:
                return error_page(request, buyer, 422, "Not accepted", f"{text(form, name, 30)} is not a quantity")
            if q > 0:
                lines.append(returns.ReturnLineIn(line_no=int(name[4:]) if name[4:].isdigit() else 0,
                                                  quantity=q, reason=reason))
    if not lines:
        return error_page(request, buyer, 422, "Not accepted", "give a quantity to return for at least one line")
    body = returns.ReturnIn(order_id=order_id[:64], lines=lines)
    made = await run_in_threadpool(returns.request_return_as, hub_of(request), buyer.principal, body)
    return RedirectResponse(f"/portal/returns/{made.id}", status_code=303)
