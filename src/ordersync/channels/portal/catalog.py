"""The buyer portal's catalog and cart: contract prices (after the portal's channel rules) and what each
plant can promise, a cart kept in a signed cookie, and checkout through the same intake as
``POST /v1/orders``.

Why the cart checks minimum quantities and pack sizes itself: the intake would reject the order for them
after the buyer has left the cart (:mod:`.cart`); the catalog shows the rules, adding to the cart refuses
a quantity they do not allow, and checkout refuses a cart with a line to fix. Every form answers with a
redirect (post/redirect/get): a refusal is a page the redirect leads to, so a reload never posts again.

Why the ship-to is picked, not typed: the account's delivery addresses are the ERP's
(:attr:`ordersync.canonical.v1.Account.ship_to`); the order names one by its id, which the intake checks.
The order carries the currency of the prices the buyer saw."""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api import catalog, orders
from ordersync.api.keys import Scope
from ordersync.canonical.v1 import Account
from ordersync.channels.portal import formatting
from ordersync.channels.portal.cart import Cart, first_allowed, line_problems, nearest_allowed, quantity
from ordersync.channels.portal.session import Buyer, hub_of, page, render, router, text, with_cart
from ordersync.domain.errors import DomainError, IntegrationError
from ordersync.flows.services.intake import meaning_hash

log = logging.getLogger("ordersync.portal")

CURRENCY = re.compile(r"^[A-Z]{3}$")
#: why checkout sent the buyer back to the cart
BLOCKED = frozenset({"lines", "ship_to", "date"})


async def catalog_items(request: Request, buyer: Buyer) -> list[dict[str, Any]]:
    """The account's active assortment as ``GET /v1/catalog`` answers it."""
    items: list[dict[str, Any]] = (await catalog.catalog_answer(hub_of(request), buyer.principal))["items"]
    return items


def by_part(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Catalog items by SKU and by the account's own part numbers (case-insensitive keys)."""
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        for part in item["customer_part_numbers"]:
            found.setdefault(part.upper(), item)
    for item in items:
        found[item["sku"].upper()] = item
    return found


def _matches(item: dict[str, Any], q: str) -> bool:
    text = " ".join([item["sku"], item["name"], item["category"], *item["customer_part_numbers"]]).lower()
    return all(word in text for word in q.lower().split())


def _plant_names(request: Request, buyer: Buyer) -> dict[str, str]:
    """Plant code -> the plant's name ("Plant North (Hamburg)"); codes only when the ERP cannot say."""
    hub = hub_of(request)
    if hub.readmodel is None:
        return {}
    try:
        erp = hub.readmodel.erps.erp_name_for(buyer.account_id)
        return {p.code: p.name or p.code for p in hub.readmodel.plants(erp)}
    except (DomainError, IntegrationError, KeyError) as exc:
        log.info("plants of %s named by code: %s", buyer.account_id, exc)
        return {}


def account_of(request: Request, buyer: Buyer) -> Account | None:
    """The buyer's account as its ERP knows it (its delivery addresses, its currency); None when the ERP
    cannot be asked right now."""
    hub = hub_of(request)
    if hub.erps is None:
        return None
    try:
        return hub.erps.for_account(buyer.account_id).account(buyer.account_id)
    except (DomainError, IntegrationError) as exc:
        log.info("account %s not read from its ERP: %s", buyer.account_id, exc)
        return None


def rules_text(item: dict[str, Any], locale: str) -> str:
    """The item's ordering rule as the catalog states it ("" when any quantity will do)."""
    minimum, pack = Decimal(item["minimum_quantity"]), Decimal(item["pack_multiple"])
    parts = []
    if minimum > 1:
        parts.append(f"minimum {formatting.qty(minimum, locale)}")
    if pack > 1:
        parts.append(f"multiples of {formatting.qty(pack, locale)}")
    return ", ".join(parts)


def _refusal(buyer: Buyer, items: list[dict[str, Any]], sku: str, tried: str, locale: str) -> list[str]:
    """Why adding ``tried`` of ``sku`` was refused (computed again from the cart and the catalog, so the
    page never echoes a text from its address)."""
    item = next((i for i in items if i["sku"] == sku), None)
    if item is None:
        return [f"{sku[:120]} is not in your catalog"]
    qty = quantity(tried)
    if qty is None:
        return ["give a positive quantity (a number, at most 6 decimals)"]
    have = dict(buyer.cart.lines).get(sku, Decimal(0))
    problems = line_problems(item, have + qty, buyer.account_id)
    if have and problems:
        total = formatting.qty(have + qty, locale)
        return [f"your cart has {formatting.qty(have, locale)} already, {total} in all: {p}" for p in problems]
    return problems


@router.get("/catalog")
@page(Scope.CATALOG_READ)
async def catalogrender(request: Request, buyer: Buyer, q: str = "", added: str = "", refused: str = "",
                        tried: str = "") -> Response:
    """The account's assortment with its contract prices (after the portal's channel rules), its ordering
    rules (minimum, pack size) and what each plant can promise now."""
    hub = hub_of(request)
    locale = formatting.request_locale(request)
    every = await catalog_items(request, buyer)
    items = [i for i in every if _matches(i, q[:120])]
    skus = [i["sku"] for i in items]
    prices: dict[str, Any] = {"prices": [], "stale": False, "as_of": None}
    stock: dict[str, Any] = {"items": [], "stale": False, "as_of": None}
    if skus:
        prices = await catalog.prices_answer(hub, buyer.principal, skus)
        stock = await catalog.availability_answer(hub, buyer.principal, skus)
    price_of = {p["sku"]: p for p in prices["prices"]}
    stock_of = {s["sku"]: s for s in stock["items"]}
    names = await run_in_threadpool(_plant_names, request, buyer)
    codes = sorted({p["plant"] for s in stock["items"] for p in s["plants"]})
    plants = [{"code": c, "name": names.get(c, c)} for c in codes]
    rows = [{**i, "price": price_of.get(i["sku"]), "rules": rules_text(i, locale), "proposed": first_allowed(i),
             "atp": {p["plant"]: p for p in stock_of.get(i["sku"], {}).get("plants", [])}} for i in items]
    refusal = _refusal(buyer, every, refused[:120], tried[:30], locale) if refused else []
    return render(request, "catalog.html", buyer, rows=rows, plants=plants, q=q, added=added[:120],
                  refused=refused[:120] if refusal else "", refusal=refusal,
                  stale=prices.get("stale") or stock.get("stale"), as_of=prices.get("as_of"))


@router.post("/cart/add")
@page(Scope.CATALOG_READ, posted=True)
async def cart_add(request: Request, buyer: Buyer, form: FormData) -> Response:
    """One item into the cart, if the quantity (with what the cart has of it) is one it can be ordered in;
    else back to the catalog, which says why."""
    sku, raw = text(form, "sku", 120), text(form, "quantity", 30)
    search = {"q": text(form, "q", 120)} if text(form, "q") else {}
    item = next((i for i in await catalog_items(request, buyer) if i["sku"] == sku), None)
    qty = quantity(raw)
    have = dict(buyer.cart.lines).get(sku, Decimal(0))
    if item is None or qty is None or line_problems(item, have + qty, buyer.account_id):
        back = urlencode({**search, "refused": sku or "(none)", "tried": raw})
        return RedirectResponse(f"/portal/catalog?{back}#refusal", status_code=303)
    buyer.cart.add(sku, qty)
    back = urlencode({**search, "added": sku})
    return with_cart(RedirectResponse(f"/portal/catalog?{back}", status_code=303), request, buyer.cart)


@router.post("/cart/update")
@page(Scope.CATALOG_READ, posted=True)
async def cart_update(request: Request, buyer: Buyer, form: FormData) -> Response:
    """New quantities for the cart's lines (0 removes one; a quantity that breaks a rule is kept, and the
    cart says what to fix); ``fix`` sets a line to the nearest quantity its rules allow."""
    changes = {}
    for sku, _ in buyer.cart.lines:
        q = quantity(text(form, f"qty:{sku}", 30), allow_zero=True)
        if q is not None:
            changes[sku] = q
    if text(form, "remove"):
        changes[text(form, "remove", 120)] = Decimal(0)
    fix = text(form, "fix", 120)
    if fix and fix in dict(buyer.cart.lines):
        item = next((i for i in await catalog_items(request, buyer) if i["sku"] == fix), None)
        if item is not None:
            changes[fix] = nearest_allowed(item, changes.get(fix, dict(buyer.cart.lines)[fix]))
    buyer.cart.set(changes)
    return with_cart(RedirectResponse("/portal/cart", status_code=303), request, buyer.cart)


async def cart_rows(request: Request, buyer: Buyer) -> tuple[list[dict[str, Any]], str]:
    """The cart's lines with today's prices for their quantities, how each would ship (plant, quantity,
    promised date, backorder) and what to fix; and the prices' currency."""
    hub = hub_of(request)
    lines = buyer.cart.lines
    items = {i["sku"]: i for i in await catalog_items(request, buyer)}
    skus, qtys = [s for s, _ in lines], [q for _, q in lines]
    prices: dict[str, Any] = {"prices": []}
    stock: dict[str, Any] = {"items": []}
    if lines:
        prices = await catalog.prices_answer(hub, buyer.principal, skus, qtys)
        stock = await catalog.availability_answer(hub, buyer.principal, skus, qtys)
    names = await run_in_threadpool(_plant_names, request, buyer) if lines else {}
    locale = formatting.request_locale(request)
    rows = []
    for (sku, qty), price, avail in zip(lines, prices["prices"], stock["items"], strict=False):
        item = items.get(sku)
        problems = line_problems(item, qty, buyer.account_id) if item else [f"{sku} is no longer in your catalog"]
        promise = [{**p, "plant_name": names.get(p["plant"], p["plant"])} for p in avail["promise"]]
        rows.append({"sku": sku, "quantity": qty, "item": item or {}, "price": price,
                     "rules": rules_text(item, locale) if item else "",
                     "amount": Decimal(price["unit_price"]) * qty, "promise": promise, "problems": problems,
                     "suggested": nearest_allowed(item, qty) if item and problems else None,
                     "backorder": sum((Decimal(p["quantity"]) for p in promise if p["backorder"]), Decimal(0))})
    currency = prices["prices"][0]["currency"] if prices["prices"] else ""
    return rows, currency


@router.get("/cart")
@page(Scope.CATALOG_READ)
async def cartrender(request: Request, buyer: Buyer, blocked: str = "", added: str = "") -> Response:
    """The cart with today's prices, how each line would ship, what to fix per line, and the form that
    places it (ship-to picked from the account's delivery addresses)."""
    rows, currency = await cart_rows(request, buyer)
    account = await run_in_threadpool(account_of, request, buyer) if rows else None
    total = sum((r["amount"] for r in rows), Decimal(0))
    return render(request, "cart.html", buyer, rows=rows, total=total, currency=currency,
                  today=hub_of(request).clock.now().date().isoformat(),
                  addresses=list(account.ship_to) if account else [], account_known=account is not None,
                  blocked=blocked if blocked in BLOCKED else "", added=int(added[:4]) if added[:4].isdigit() else None,
                  fixes=sum(1 for r in rows if r["problems"]), can_order=buyer.principal.has(Scope.ORDERS_WRITE))


@router.post("/cart/checkout")
@page(Scope.ORDERS_WRITE, posted=True)
async def checkout(request: Request, buyer: Buyer, form: FormData) -> Response:
    """Place the cart as an order through the same intake as ``POST /v1/orders``, unless a line breaks
    its item's rules or the ship-to is not one of the account's addresses (back to the cart, which keeps
    its lines and says what to fix). The idempotency key is the cart's, so a resent form places the order
    once; the prices shown go along, so a price that changed since is caught by the hub."""
    if not buyer.cart.lines:
        return RedirectResponse("/portal/cart", status_code=303)
    items = {i["sku"]: i for i in await catalog_items(request, buyer)}
    if any(sku not in items or line_problems(items[sku], qty, buyer.account_id) for sku, qty in buyer.cart.lines):
        return RedirectResponse("/portal/cart?blocked=lines#cart", status_code=303)
    account = await run_in_threadpool(account_of, request, buyer)
    ship_to = text(form, "ship_to_id", 120) or None
    if ship_to is not None and account is not None and ship_to not in {a.id for a in account.ship_to}:
        return RedirectResponse("/portal/cart?blocked=ship_to#checkout-form", status_code=303)
    requested = text(form, "requested_date", 10)
    today = hub_of(request).clock.now().date()
    if requested and (not _iso_date(requested) or dt.date.fromisoformat(requested) < today):
        return RedirectResponse("/portal/cart?blocked=date#checkout-form", status_code=303)
    posted = text(form, "currency", 3)
    currency = posted if CURRENCY.match(posted) else (account.currency if account else None)
    order_in = _order_in(form, buyer.cart, ship_to, currency)
    receipt = await orders.place_order(hub_of(request), buyer.principal, order_in,
                                       fingerprint=meaning_hash(order_in.model_dump()),
                                       idempotency_key=f"portal-cart-{buyer.cart.nonce}")
    return with_cart(RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303), request, None)


def _order_in(form: FormData, cart: Cart, ship_to: str | None, currency: str | None) -> orders.OrderIn:
    requested = text(form, "requested_date", 10)
    lines = [orders.LineIn(line_no=n, sku=sku, quantity=qty, unit_price_shown=_price(text(form, f"shown:{sku}", 30)))
             for n, (sku, qty) in enumerate(cart.lines, start=1)]
    return orders.OrderIn(external_order_number=f"WEB-{cart.nonce.upper()}",
                          buyer_po_number=text(form, "buyer_po_number", 120) or None,
                          ship_to_id=ship_to, currency=currency,
                          requested_date=dt.date.fromisoformat(requested) if requested else None,
                          notes=text(form, "notes", 2000), lines=lines)


def _iso_date(raw: str) -> bool:
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        return False
    return True


def _price(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() and value >= 0 else None
