"""The buyer portal's orders: history, one order's status (one text per state, the same on the list and
the order's page) and outcome (partial, backorder, held), shipments with carriers' tracking links,
invoices, the order confirmation as PDF, and reorders. Invoices are :mod:`.invoices`, returns
:mod:`.returns`."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ordersync.api import history, order_changes, orders
from ordersync.api.keys import Scope
from ordersync.channels.portal.documents import (
    account_currency,
    parties,
    pdf_response,
    render_pdf,
    tracking_url,
)
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
from ordersync.domain.returns import LEFT_THE_PLANT

#: one text per order state, the same on the order list and the order's page: (kind, text). ``kind`` is
#: what the page's banner looks like; the text never promises what the state has left behind (an
#: invoiced order does not "ship on" a date any more).
STATUS: dict[str, tuple[str, str]] = {
    **{s: ("pending", "Received: we are checking prices, credit and stock") for s in PENDING},
    "on_hold": ("held", "On hold: our team reviews the order before it goes on"),
    "rejected": ("rejected", "Not accepted"),
    "cancelled": ("cancelled", "Cancelled"),
    "accepted": ("accepted", "Accepted: being prepared for shipping"),
    "in_fulfillment": ("accepted", "Being picked and packed"),
    "partially_shipped": ("shipping", "Partly shipped: the rest follows"),
    "shipped": ("shipped", "Shipped"),
    "invoiced": ("done", "Shipped and invoiced"),
    "closed": ("done", "Complete"),
}
#: states in which what the plants promised still lies ahead
PROMISING = frozenset({"accepted", "in_fulfillment", "partially_shipped"})
#: shipment states in which goods have left a plant (what a return may take back: the return rules')
SHIPPED = frozenset(s.value for s in LEFT_THE_PLANT)


def status(state: str, partial: bool = False) -> tuple[str, str]:
    """The order's one status text for ``state`` (``partial``: part of it is backordered)."""
    kind, title = STATUS.get(state, ("pending", state.replace("_", " ").capitalize()))
    if partial and state in ("accepted", "in_fulfillment"):
        return "partial", f"{title.split(':')[0]}: partly backordered"
    return kind, title


def outcome(view: dict[str, Any]) -> dict[str, Any]:
    """What the buyer needs to know first: the order's status and, while shipping lies ahead, what ships
    when (partial, backorder). Once everything has shipped the promises are history, not news."""
    state = view["state"]
    shipping: list[dict[str, Any]] = []
    backordered: list[dict[str, Any]] = []
    for line in view["lines"]:
        for a in line["allocations"]:
            entry = {"line_no": line["line_no"], "sku": line["sku"], **a}
            (backordered if a["backorder"] else shipping).append(entry)
    kind, title = status(state, bool(backordered))
    if state not in PROMISING:
        shipping, backordered = [], []
    elif state == "partially_shipped":
        shipping = []
    return {"kind": kind, "title": title, "state": state, "shipping": shipping, "backordered": backordered,
            "reasons": [r.get("message", "") for r in view.get("rejection") or []],
            "hold": (view.get("hold") or {}).get("reason", "")}


def erp_shipped(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The order's shipments that left a plant as the ERP reported them: what the return rules
    (:func:`ordersync.domain.returns.shipped_by_line`) count; a warehouse's report alone does not."""
    return [s for s in view.get("shipments") or [] if s.get("source", "erp") == "erp" and s["state"] in SHIPPED]


def shipped_anything(view: dict[str, Any]) -> bool:
    """Whether goods of the order have left a plant (only then is there something to return)."""
    return bool(erp_shipped(view))


def with_links(request: Request, shipments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shipments, each with its carrier's tracking link (None: unknown carrier or no number)."""
    configured = hub_of(request).settings.web.tracking_urls
    return [{**s, "tracking_url": tracking_url(s.get("carrier"), s.get("tracking_number"), configured)}
            for s in shipments]


def _order(request: Request, buyer: Buyer, order_id: str) -> dict[str, Any]:
    return orders.order_answer(hub_of(request), buyer.principal, order_id[:64])


@router.get("/orders")
@page(Scope.ORDERS_READ)
def ordersrender(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    """The account's orders, newest first, a page at a time, each with its one status text."""
    found = history.order_history(hub_of(request), buyer.principal, limit=PAGE_SIZE,
                                  cursor=cursor[:500] if cursor else None)
    currency = account_currency(request, buyer.account_id) if found.items else ""
    rows = [{"order": o, "status": status(o.state.value, o.partial), "currency": o.currency or currency}
            for o in found.items]
    return render(request, "orders.html", buyer, rows=rows, next_cursor=found.next_cursor)


@router.get("/orders/{order_id}")
@page(Scope.ORDERS_READ)
def orderrender(request: Request, buyer: Buyer, order_id: str, placed: str = "") -> Response:
    """One order: its status, lines with plants and promised dates, shipments with tracking, invoices."""
    view = _order(request, buyer, order_id)
    view["currency"] = view["currency"] or account_currency(request, buyer.account_id)
    result = outcome(view)
    headers = {"Refresh": "2"} if result["kind"] == "pending" else None
    return render(request, "order.html", buyer, headers=headers, order=view, outcome=result, placed=placed == "1",
                  shipments=with_links(request, view["shipments"]), nonce=secrets.token_hex(8),
                  confirmed=result["state"] in ACCEPTED,
                  can_order=buyer.principal.has(Scope.ORDERS_WRITE),
                  can_return=buyer.principal.has(Scope.RETURNS_WRITE) and shipped_anything(view))


@router.get("/orders/{order_id}/confirmation.pdf")
@page(Scope.ORDERS_READ)
def confirmation_pdf(request: Request, buyer: Buyer, order_id: str) -> Response:
    """The order confirmation as PDF, once the ERP has accepted the order (before, nothing is confirmed)."""
    view = _order(request, buyer, order_id)
    if view["state"] not in ACCEPTED:
        return error_page(request, buyer, 409, "Not confirmed yet",
                          f"order {view['external_order_number']} is {status(view['state'])[1].lower()}; "
                          "its confirmation can be printed once it is accepted")
    view["currency"] = view["currency"] or account_currency(request, buyer.account_id)
    lines = [{**x, "amount": _amount(x)} for x in view["lines"]]
    pdf = render_pdf(request, "confirmation.html", {"order": view, "lines": lines, "status": status(view["state"])[1],
                                           **parties(request, buyer)})
    return pdf_response(pdf, f"order-confirmation-{view['external_order_number']}.pdf")


def _amount(line: dict[str, Any]) -> Decimal | None:
    if line["cancelled"] or not line.get("unit_price"):
        return None
    return (Decimal(line["quantity"]) * Decimal(line["unit_price"])).quantize(Decimal("0.01"))


@router.post("/orders/{order_id}/reorder")
@page(Scope.ORDERS_WRITE, posted=True)
async def reorder(request: Request, buyer: Buyer, form: FormData, order_id: str) -> Response:
    """The same lines again as a new order (``POST /v1/orders/{id}/reorder``); the form's nonce is the
    idempotency key, so a resent form orders once."""
    nonce = text(form, "nonce", 64) or secrets.token_hex(8)
    receipt = await order_changes.place_reorder(hub_of(request), buyer.principal, order_id[:64],
                                                order_changes.ReorderIn(),
                                                idempotency_key=f"portal-reorder-{nonce}")
    return RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303)
