"""The buyer portal's orders: history, one order's outcome (partial, backorder, held), shipments with
tracking, invoices, reorders and return requests."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api import history, order_changes, orders, returns
from ordersync.api.keys import Scope
from ordersync.channels.portal.cart import quantity
from ordersync.channels.portal.session import (
    ACCEPTED,
    PAGE_SIZE,
    PENDING,
    Buyer,
    error_page,
    hub_of,
    page,
    render,
    router,
    text,
)


def outcome(view: dict[str, Any]) -> dict[str, Any]:
    """What the buyer needs to know first: decided or not, and what ships when (partial, backorder)."""
    state = view["state"]
    shipping: list[dict[str, Any]] = []
    backordered: list[dict[str, Any]] = []
    for line in view["lines"]:
        for a in line["allocations"]:
            entry = {"line_no": line["line_no"], "sku": line["sku"], **a}
            (backordered if a["backorder"] else shipping).append(entry)
    if state in PENDING:
        kind, title = "pending", "Received: we are checking prices, credit and stock"
    elif state == "on_hold":
        kind, title = "held", "On hold: our team reviews the order before it goes on"
    elif state == "rejected":
        kind, title = "rejected", "Not accepted"
    elif state == "cancelled":
        kind, title = "cancelled", "Cancelled"
    elif backordered:
        kind, title = "partial", "Accepted: partly backordered"
    else:
        kind, title = "accepted", "Accepted"
    return {"kind": kind, "title": title, "state": state, "shipping": shipping, "backordered": backordered,
            "reasons": [r.get("message", "") for r in view.get("rejection") or []],
            "hold": (view.get("hold") or {}).get("reason", "")}


def _order(request: Request, buyer: Buyer, order_id: str) -> dict[str, Any]:
    return orders.order_answer(hub_of(request), buyer.principal, order_id[:64])


@router.get("/orders")
@page(Scope.ORDERS_READ)
def ordersrender(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    """The account's orders, newest first, a page at a time."""
    found = history.order_history(hub_of(request), buyer.principal, limit=PAGE_SIZE,
                                  cursor=cursor[:500] if cursor else None)
    return render(request, "orders.html", buyer, orders=found.items, next_cursor=found.next_cursor)


@router.get("/orders/{order_id}")
@page(Scope.ORDERS_READ)
def orderrender(request: Request, buyer: Buyer, order_id: str, placed: int = 0) -> Response:
    """One order: its outcome, lines with plants and promised dates, shipments with tracking, invoices."""
    view = _order(request, buyer, order_id)
    result = outcome(view)
    headers = {"Refresh": "2"} if result["kind"] == "pending" else None
    return render(request, "order.html", buyer, headers=headers, order=view, outcome=result, placed=bool(placed),
                 nonce=secrets.token_hex(8), can_order=buyer.principal.has(Scope.ORDERS_WRITE),
                 can_return=buyer.principal.has(Scope.RETURNS_WRITE) and result["state"] in ACCEPTED)


@router.post("/orders/{order_id}/reorder")
@page(Scope.ORDERS_WRITE, posted=True)
async def reorder(request: Request, buyer: Buyer, form: FormData, order_id: str) -> Response:
    """The same lines again as a new order (``POST /v1/orders/{id}/reorder``); the form's nonce is the
    idempotency key, so a resent form orders once."""
    nonce = text(form, "nonce", 64) or secrets.token_hex(8)
    receipt = await order_changes.place_reorder(hub_of(request), buyer.principal, order_id[:64],
                                                order_changes.ReorderIn(), raw=await request.body(),
                                                idempotency_key=f"portal-reorder-{nonce}")
    return RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303)


@router.get("/invoices")
@page(Scope.ORDERS_READ)
def invoicesrender(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    found = history.invoice_history(hub_of(request), buyer.principal, limit=PAGE_SIZE,
                                    cursor=cursor[:500] if cursor else None)
    return render(request, "invoices.html", buyer, invoices=found.items, next_cursor=found.next_cursor)


# -- returns ------------------------------------------------------------------------------------------

@router.get("/orders/{order_id}/return")
@page(Scope.RETURNS_WRITE)
def return_form(request: Request, buyer: Buyer, order_id: str) -> Response:
    return render(request, "return_form.html", buyer, order=_order(request, buyer, order_id))


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


@router.get("/returns/{return_id}")
@page(Scope.ORDERS_READ)
def returnrender(request: Request, buyer: Buyer, return_id: str) -> Response:
    return render(request, "return.html", buyer, ret=returns.return_answer(hub_of(request), buyer.principal,
                                                                          return_id[:64]))
