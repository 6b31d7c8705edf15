"""The buyer portal's catalog and cart: contract prices (after the portal's channel rules) and what each
plant can promise, a cart kept in a signed cookie, and checkout through the same intake as
``POST /v1/orders``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ordersync.api import catalog, orders
from ordersync.api.keys import Scope
from ordersync.channels.portal.cart import Cart, quantity
from ordersync.channels.portal.session import Buyer, hub_of, page, render, router, text, with_cart
from ordersync.flows.services.intake import request_hash


async def _catalog_items(request: Request, buyer: Buyer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await catalog.catalog_answer(hub_of(request), buyer.principal))["items"]
    return items


def _matches(item: dict[str, Any], q: str) -> bool:
    text = " ".join([item["sku"], item["name"], item["category"], *item["customer_part_numbers"]]).lower()
    return all(word in text for word in q.lower().split())


@router.get("/catalog")
@page(Scope.CATALOG_READ)
async def catalogrender(request: Request, buyer: Buyer, q: str = "", added: str = "") -> Response:
    """The account's assortment with its contract prices (after the portal's channel rules) and what
    each plant can promise now."""
    hub = hub_of(request)
    items = [i for i in await _catalog_items(request, buyer) if _matches(i, q[:120])]
    skus = [i["sku"] for i in items]
    prices: dict[str, Any] = {"prices": [], "stale": False, "as_of": None}
    stock: dict[str, Any] = {"items": [], "stale": False, "as_of": None}
    if skus:
        prices = await catalog.prices_answer(hub, buyer.principal, skus)
        stock = await catalog.availability_answer(hub, buyer.principal, skus)
    price_of = {p["sku"]: p for p in prices["prices"]}
    stock_of = {s["sku"]: s for s in stock["items"]}
    plants = sorted({p["plant"] for s in stock["items"] for p in s["plants"]})
    rows = [{**i, "price": price_of.get(i["sku"]),
             "atp": {p["plant"]: p for p in stock_of.get(i["sku"], {}).get("plants", [])}} for i in items]
    return render(request, "catalog.html", buyer, rows=rows, plants=plants, q=q, added=added,
                 stale=prices.get("stale") or stock.get("stale"), as_of=prices.get("as_of"))


@router.post("/cart/add")
@page(Scope.CATALOG_READ, posted=True)
async def cart_add(request: Request, buyer: Buyer, form: FormData) -> Response:
    sku, qty = text(form, "sku", 120), quantity(text(form, "quantity", 30))
    known = {i["sku"] for i in await _catalog_items(request, buyer)}
    if sku not in known or qty is None:
        raise ValueError(f"{sku or 'the item'} with quantity {text(form, 'quantity', 30) or '(none)'} "
                         "cannot be added: pick an item of the catalog and a positive quantity")
    buyer.cart.add(sku, qty)
    back = f"/portal/catalog?added={quote(sku)}" + (f"&q={quote(text(form, 'q', 120))}" if text(form, "q") else "")
    return with_cart(RedirectResponse(back, status_code=303), request, buyer.cart)


@router.post("/cart/update")
@page(Scope.CATALOG_READ, posted=True)
async def cart_update(request: Request, buyer: Buyer, form: FormData) -> Response:
    """New quantities for the cart's lines (0 removes one)."""
    changes = {}
    for sku, _ in buyer.cart.lines:
        q = quantity(text(form, f"qty:{sku}", 30), allow_zero=True)
        if q is not None:
            changes[sku] = q
    if text(form, "remove"):
        changes[text(form, "remove", 120)] = Decimal(0)
    buyer.cart.set(changes)
    return with_cart(RedirectResponse("/portal/cart", status_code=303), request, buyer.cart)


@router.get("/cart")
@page(Scope.CATALOG_READ)
async def cartrender(request: Request, buyer: Buyer) -> Response:
    """The cart with today's prices for its quantities and how each line would ship: plant, quantity and
    promised date, and what would be backordered."""
    hub = hub_of(request)
    lines = buyer.cart.lines
    names = {i["sku"]: i for i in await _catalog_items(request, buyer)}
    skus, qtys = [s for s, _ in lines], [q for _, q in lines]
    prices: dict[str, Any] = {"prices": []}
    stock: dict[str, Any] = {"items": []}
    if lines:
        prices = await catalog.prices_answer(hub, buyer.principal, skus, qtys)
        stock = await catalog.availability_answer(hub, buyer.principal, skus, qtys)
    rows = []
    for (sku, qty), price, avail in zip(lines, prices["prices"], stock["items"], strict=False):
        amount = Decimal(price["unit_price"]) * qty
        rows.append({"sku": sku, "quantity": qty, "item": names.get(sku, {}), "price": price,
                     "amount": amount, "promise": avail["promise"],
                     "backorder": sum((Decimal(p["quantity"]) for p in avail["promise"] if p["backorder"]),
                                      Decimal(0))})
    total = sum((r["amount"] for r in rows), Decimal(0))
    currency = prices["prices"][0]["currency"] if prices["prices"] else ""
    return render(request, "cart.html", buyer, rows=rows, total=total, currency=currency,
                 can_order=buyer.principal.has(Scope.ORDERS_WRITE))


@router.post("/cart/checkout")
@page(Scope.ORDERS_WRITE, posted=True)
async def checkout(request: Request, buyer: Buyer, form: FormData) -> Response:
    """Place the cart as an order through the same intake as ``POST /v1/orders``. The idempotency key is
    the cart's, so a resent form places the order once; the prices shown go along, so a price that
    changed since is caught by the hub like any storefront's."""
    if not buyer.cart.lines:
        return RedirectResponse("/portal/cart", status_code=303)
    receipt = await orders.place_order(hub_of(request), buyer.principal, _order_in(form, buyer.cart),
                                       fingerprint=request_hash(await request.body()),
                                       idempotency_key=f"portal-cart-{buyer.cart.nonce}")
    return with_cart(RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303), request, None)


def _order_in(form: FormData, cart: Cart) -> orders.OrderIn:
    requested = text(form, "requested_date", 10)
    lines = [orders.LineIn(line_no=n, sku=sku, quantity=qty, unit_price_shown=_price(text(form, f"shown:{sku}", 30)))
             for n, (sku, qty) in enumerate(cart.lines, start=1)]
    return orders.OrderIn(external_order_number=f"WEB-{cart.nonce.upper()}",
                          buyer_po_number=text(form, "buyer_po_number", 120) or None,
                          ship_to_id=text(form, "ship_to_id", 120) or None,
                          requested_date=dt.date.fromisoformat(requested) if requested else None,
                          notes=text(form, "notes", 2000), lines=lines)


def _price(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() and value >= 0 else None
