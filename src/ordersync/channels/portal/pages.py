"""The buyer portal at ``/portal``: catalog with contract prices and plant availability, a cart, orders
with their partial or backorder outcome, shipments with tracking, invoices, reorders and return requests.

Why it calls the experience API's functions (``catalog_answer``, ``place_order``, ``order_history``...):
the portal is one more channel on the experience API, so every answer (account isolation, channel price
rules, availability promises, intake idempotency, return checks) is the API's own, not a second
implementation that could drift. It calls the functions the ``/v1`` routes call, never the routes. The
portal only adds what a browser needs: a session instead of a bearer key, forms instead of JSON, HTML
instead of problem documents. Every page goes through one preamble (:func:`page`): sign-in, rate limit and
scope, for a form its origin and CSRF token, and any refusal the API would answer as a problem shown as
an error page.

Sessions are the shared stateless cookie of :mod:`ordersync.web` (the API key's id, signed; the key
itself never leaves the sign-in request); only keys bound to an account may sign in. Every form carries
the session's CSRF token, the cookie is ``SameSite=Strict`` and a foreign ``Origin`` is refused. Pages
work without JavaScript; a pending order's page refreshes itself until the hub has decided.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api import catalog, history, order_changes, orders, returns
from ordersync.api.auth import Authenticator
from ordersync.api.keys import Principal, Scope
from ordersync.api.problems import Problem
from ordersync.channels.portal.cart import CART_COOKIE, Cart, cart_cookie, quantity, read_cart
from ordersync.domain.errors import DomainError, IntegrationError, NotFound, Unavailable, ValidationFailed
from ordersync.flows.services.intake import request_hash
from ordersync.runtime.hub import Hub
from ordersync.web import Session, SessionSigner, templates

router = APIRouter(prefix="/portal", include_in_schema=False)
signer = SessionSigner("portal")
SESSION_COOKIE = "ordersync_portal"
PAGE_SIZE = 20
#: the hub is still deciding: the order page refreshes itself
PENDING = frozenset({"received", "validated", "priced", "allocated", "backordered", "submitted_to_erp"})
ACCEPTED = frozenset({"accepted", "in_fulfillment", "partially_shipped", "shipped", "invoiced", "closed"})
FAILURES = (Problem, DomainError, IntegrationError, ValidationError, ValueError)
SIGNIN_ATTEMPTS_PER_MINUTE = 30


@dataclass(frozen=True)
class Buyer:
    """The signed-in buyer of one request: the API key's principal, the session and the cart."""

    principal: Principal
    session: Session
    cart: Cart

    @property
    def account_id(self) -> str:
        return self.principal.account_id or ""


# -- sessions, pages, errors --------------------------------------------------------------------------

def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def _buyer(request: Request) -> Buyer | None:
    """The buyer of a valid session whose key is still active and bound to an account, else None."""
    session = signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    try:
        info = _auth(request).keys.get(session.key_id)
    except NotFound:
        return None
    if info.revoked_at is not None or info.account_id is None:
        return None
    principal = Principal(key_id=info.id, name=info.name, client=info.client, channel=info.channel,
                          account_id=info.account_id, scopes=frozenset(info.scopes),
                          rate_per_minute=info.rate_per_minute)
    return Buyer(principal, session, read_cart(request.cookies.get(CART_COOKIE), info.id))


def _gate(request: Request, scope: Scope) -> Buyer | Response:
    """The signed-in buyer, or the answer instead of the page: sign in first, slow down, or missing scope."""
    buyer = _buyer(request)
    if buyer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/portal/"
        return RedirectResponse(f"/portal/signin?next={quote(target)}", status_code=303)
    wait = _auth(request).limiter.take(buyer.principal.key_id, buyer.principal.rate_per_minute)
    if wait > 0:
        return _error(request, buyer, 429, "Too many requests", "please wait a moment and try again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    if not buyer.principal.has(scope):
        return _error(request, buyer, 403, "Not allowed", f"your key lacks the {scope.value} scope; "
                      "ask your administrator for a portal key")
    return buyer


async def _gate_async(request: Request, scope: Scope) -> Buyer | Response:
    return await run_in_threadpool(_gate, request, scope)


def _same_origin(request: Request) -> bool:
    """Browsers name the page a form was posted from; one from another site is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request, buyer: Buyer | None) -> FormData | Response:
    """The posted form, once its origin and (for a signed-in buyer) its CSRF token are right. The raw
    body is read first, so the API's intake can fingerprint it for idempotency."""
    await request.body()
    form = await request.form()
    if not _same_origin(request):
        return _error(request, buyer, 403, "Refused", "this form was sent from another site")
    if buyer is not None and not SessionSigner.csrf_ok(buyer.session.csrf, _text(form, "csrf")):
        return _error(request, buyer, 403, "Refused", "the form has expired; reload the page and try again")
    return form


async def _posted(request: Request, scope: Scope) -> tuple[Buyer, FormData] | Response:
    """A signed-in buyer with ``scope`` and their checked form (see :func:`_gate`, :func:`_form`)."""
    buyer = await _gate_async(request, scope)
    if isinstance(buyer, Response):
        return buyer
    form = await _form(request, buyer)
    if isinstance(form, Response):
        return form
    return buyer, form


def _text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _page(request: Request, name: str, buyer: Buyer | None, status: int = 200,
          headers: dict[str, str] | None = None, **context: Any) -> Response:
    ctx = {"buyer": buyer, "csrf": buyer.session.csrf if buyer else "",
           "cart_count": len(buyer.cart.lines) if buyer else 0, **context}
    response = templates.TemplateResponse(request, f"portal/{name}", ctx, status_code=status)
    response.headers.update({"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                             "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                        "frame-ancestors 'none'; form-action 'self'",
                             **(headers or {})})
    return response


def _error(request: Request, buyer: Buyer | None, status: int, title: str, detail: str = "",
           headers: dict[str, str] | None = None, reasons: list[str] | None = None) -> Response:
    return _page(request, "error.html", buyer, status, headers, title=title, detail=detail, reasons=reasons or [])


def _failure(request: Request, buyer: Buyer, exc: Exception) -> Response:
    """What the API would have answered as a problem document, as a page."""
    if isinstance(exc, Problem):
        reasons = [str(e.get("message", "")) for e in exc.extra.get("errors", [])]
        return _error(request, buyer, exc.status, exc.title, exc.detail, exc.headers, reasons)
    if isinstance(exc, ValidationFailed):
        return _error(request, buyer, 422, "Not accepted", str(exc), reasons=list(exc.reasons))
    if isinstance(exc, NotFound):
        return _error(request, buyer, 404, "Not found", str(exc))
    if isinstance(exc, DomainError):
        return _error(request, buyer, 409 if type(exc).__name__ == "Conflict" else 422, "Not possible", str(exc))
    if isinstance(exc, IntegrationError):
        status = 503 if isinstance(exc, Unavailable) else 502
        return _error(request, buyer, status, "Our ERP is not available", "please try again in a moment",
                      headers={"Retry-After": "5"})
    if isinstance(exc, ValidationError):
        reasons = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:20]]
        return _error(request, buyer, 422, "Not accepted", "the form has problems", reasons=reasons)
    return _error(request, buyer, 422, "Not accepted", str(exc))


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


PageFn = Callable[..., Any]


def page(scope: Scope, *, posted: bool = False) -> Callable[[PageFn], PageFn]:
    """The preamble of every buyer page, written once: the signed-in buyer with ``scope`` (else the answer
    instead of the page: sign in, slow down, missing scope), for a posted form (``posted``) its origin and
    CSRF token, then the page; a refusal the API would answer as a problem becomes an error page. The
    page function takes ``(request, buyer, [form,] ...)``; a plain ``def`` runs in the thread pool."""

    def wrap(fn: PageFn) -> PageFn:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def route(request: Request, **params: Any) -> Response:
            if posted:
                checked = await _posted(request, scope)
                if isinstance(checked, Response):
                    return checked
                buyer, form = checked
                params["form"] = form
            else:
                gated = await _gate_async(request, scope)
                if isinstance(gated, Response):
                    return gated
                buyer = gated
            try:
                if inspect.iscoroutinefunction(fn):
                    answer: Response = await fn(request, buyer, **params)
                else:
                    answer = await run_in_threadpool(fn, request, buyer, **params)
            except FAILURES as exc:
                return _failure(request, buyer, exc)
            return answer

        kept = [p for name, p in signature.parameters.items() if name not in ("buyer", "form")]
        route.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        return route

    return wrap


def _with_cart(response: Response, request: Request, cart: Cart | None) -> Response:
    if cart is None:
        response.delete_cookie(CART_COOKIE, path="/portal")
    else:
        response.set_cookie(CART_COOKIE, cart_cookie(cart), max_age=signer.ttl_seconds, path="/portal",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def _local(target: str) -> str:
    """Only a portal page is a place to go back to after signing in (no open redirect)."""
    return target if target.startswith("/portal/") and not target.startswith("//") else "/portal/catalog"


# -- sign in, sign out --------------------------------------------------------------------------------

@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/portal/catalog", status_code=303)


@router.get("/signin")
def signin_page(request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = "/portal/catalog"
                ) -> Response:
    if _buyer(request) is not None:
        return RedirectResponse(_local(next_), status_code=303)
    return _page(request, "signin.html", None, next=_local(next_))


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange an account-bound API key for a session cookie; the key is not kept anywhere."""
    form = await _form(request, None)
    if isinstance(form, Response):
        return form
    auth = _auth(request)
    client = request.client.host if request.client else "unknown"
    wait = auth.limiter.take(f"portal-signin:{client}", SIGNIN_ATTEMPTS_PER_MINUTE)
    if wait > 0:
        return _error(request, None, 429, "Too many attempts", "wait a minute before trying again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    principal = await run_in_threadpool(auth.principal, _text(form, "api_key", 300))
    if principal is None:
        return _page(request, "signin.html", None, 401, next=_local(_text(form, "next")),
                     message="That key is unknown or was revoked.")
    if principal.account_id is None:
        return _page(request, "signin.html", None, 403, next=_local(_text(form, "next")),
                     message="This key is not bound to a customer account; the portal needs an account key.")
    response = RedirectResponse(_local(_text(form, "next")), status_code=303)
    response.set_cookie(SESSION_COOKIE, signer.issue(principal.key_id), max_age=signer.ttl_seconds, path="/portal",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return _with_cart(response, request, None)


@router.post("/signout")
async def signout(request: Request) -> Response:
    buyer = await run_in_threadpool(_buyer, request)
    form = await _form(request, buyer)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/portal/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/portal")
    return _with_cart(response, request, None)


# -- catalog and cart ---------------------------------------------------------------------------------

async def _catalog_items(request: Request, buyer: Buyer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await catalog.catalog_answer(_hub(request), buyer.principal))["items"]
    return items


def _matches(item: dict[str, Any], q: str) -> bool:
    text = " ".join([item["sku"], item["name"], item["category"], *item["customer_part_numbers"]]).lower()
    return all(word in text for word in q.lower().split())


@router.get("/catalog")
@page(Scope.CATALOG_READ)
async def catalog_page(request: Request, buyer: Buyer, q: str = "", added: str = "") -> Response:
    """The account's assortment with its contract prices (after the portal's channel rules) and what
    each plant can promise now."""
    hub = _hub(request)
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
    return _page(request, "catalog.html", buyer, rows=rows, plants=plants, q=q, added=added,
                 stale=prices.get("stale") or stock.get("stale"), as_of=prices.get("as_of"))


@router.post("/cart/add")
@page(Scope.CATALOG_READ, posted=True)
async def cart_add(request: Request, buyer: Buyer, form: FormData) -> Response:
    sku, qty = _text(form, "sku", 120), quantity(_text(form, "quantity", 30))
    known = {i["sku"] for i in await _catalog_items(request, buyer)}
    if sku not in known or qty is None:
        raise ValueError(f"{sku or 'the item'} with quantity {_text(form, 'quantity', 30) or '(none)'} "
                         "cannot be added: pick an item of the catalog and a positive quantity")
    buyer.cart.add(sku, qty)
    back = f"/portal/catalog?added={quote(sku)}" + (f"&q={quote(_text(form, 'q', 120))}" if _text(form, "q") else "")
    return _with_cart(RedirectResponse(back, status_code=303), request, buyer.cart)


@router.post("/cart/update")
@page(Scope.CATALOG_READ, posted=True)
async def cart_update(request: Request, buyer: Buyer, form: FormData) -> Response:
    """New quantities for the cart's lines (0 removes one)."""
    changes = {}
    for sku, _ in buyer.cart.lines:
        q = quantity(_text(form, f"qty:{sku}", 30), allow_zero=True)
        if q is not None:
            changes[sku] = q
    if _text(form, "remove"):
        changes[_text(form, "remove", 120)] = Decimal(0)
    buyer.cart.set(changes)
    return _with_cart(RedirectResponse("/portal/cart", status_code=303), request, buyer.cart)


@router.get("/cart")
@page(Scope.CATALOG_READ)
async def cart_page(request: Request, buyer: Buyer) -> Response:
    """The cart with today's prices for its quantities and how each line would ship: plant, quantity and
    promised date, and what would be backordered."""
    hub = _hub(request)
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
    return _page(request, "cart.html", buyer, rows=rows, total=total, currency=currency,
                 can_order=buyer.principal.has(Scope.ORDERS_WRITE))


@router.post("/cart/checkout")
@page(Scope.ORDERS_WRITE, posted=True)
async def checkout(request: Request, buyer: Buyer, form: FormData) -> Response:
    """Place the cart as an order through the same intake as ``POST /v1/orders``. The idempotency key is
    the cart's, so a resent form places the order once; the prices shown go along, so a price that
    changed since is caught by the hub like any storefront's."""
    if not buyer.cart.lines:
        return RedirectResponse("/portal/cart", status_code=303)
    receipt = await orders.place_order(_hub(request), buyer.principal, _order_in(form, buyer.cart),
                                       fingerprint=request_hash(await request.body()),
                                       idempotency_key=f"portal-cart-{buyer.cart.nonce}")
    return _with_cart(RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303), request, None)


def _order_in(form: FormData, cart: Cart) -> orders.OrderIn:
    requested = _text(form, "requested_date", 10)
    lines = [orders.LineIn(line_no=n, sku=sku, quantity=qty, unit_price_shown=_price(_text(form, f"shown:{sku}", 30)))
             for n, (sku, qty) in enumerate(cart.lines, start=1)]
    return orders.OrderIn(external_order_number=f"WEB-{cart.nonce.upper()}",
                          buyer_po_number=_text(form, "buyer_po_number", 120) or None,
                          ship_to_id=_text(form, "ship_to_id", 120) or None,
                          requested_date=dt.date.fromisoformat(requested) if requested else None,
                          notes=_text(form, "notes", 2000), lines=lines)


def _price(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() and value >= 0 else None


# -- orders -------------------------------------------------------------------------------------------

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
    return orders.order_answer(_hub(request), buyer.principal, order_id[:64])


@router.get("/orders")
@page(Scope.ORDERS_READ)
def orders_page(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    """The account's orders, newest first, a page at a time."""
    found = history.order_history(_hub(request), buyer.principal, limit=PAGE_SIZE,
                                  cursor=cursor[:500] if cursor else None)
    return _page(request, "orders.html", buyer, orders=found.items, next_cursor=found.next_cursor)


@router.get("/orders/{order_id}")
@page(Scope.ORDERS_READ)
def order_page(request: Request, buyer: Buyer, order_id: str, placed: int = 0) -> Response:
    """One order: its outcome, lines with plants and promised dates, shipments with tracking, invoices."""
    view = _order(request, buyer, order_id)
    result = outcome(view)
    headers = {"Refresh": "2"} if result["kind"] == "pending" else None
    return _page(request, "order.html", buyer, headers=headers, order=view, outcome=result, placed=bool(placed),
                 nonce=secrets.token_hex(8), can_order=buyer.principal.has(Scope.ORDERS_WRITE),
                 can_return=buyer.principal.has(Scope.RETURNS_WRITE) and result["state"] in ACCEPTED)


@router.post("/orders/{order_id}/reorder")
@page(Scope.ORDERS_WRITE, posted=True)
async def reorder(request: Request, buyer: Buyer, form: FormData, order_id: str) -> Response:
    """The same lines again as a new order (``POST /v1/orders/{id}/reorder``); the form's nonce is the
    idempotency key, so a resent form orders once."""
    nonce = _text(form, "nonce", 64) or secrets.token_hex(8)
    receipt = await order_changes.place_reorder(_hub(request), buyer.principal, order_id[:64],
                                                order_changes.ReorderIn(), raw=await request.body(),
                                                idempotency_key=f"portal-reorder-{nonce}")
    return RedirectResponse(f"/portal/orders/{receipt.order_id}?placed=1", status_code=303)


@router.get("/invoices")
@page(Scope.ORDERS_READ)
def invoices_page(request: Request, buyer: Buyer, cursor: str | None = None) -> Response:
    found = history.invoice_history(_hub(request), buyer.principal, limit=PAGE_SIZE,
                                    cursor=cursor[:500] if cursor else None)
    return _page(request, "invoices.html", buyer, invoices=found.items, next_cursor=found.next_cursor)


# -- returns ------------------------------------------------------------------------------------------

@router.get("/orders/{order_id}/return")
@page(Scope.RETURNS_WRITE)
def return_form(request: Request, buyer: Buyer, order_id: str) -> Response:
    return _page(request, "return_form.html", buyer, order=_order(request, buyer, order_id))


@router.post("/orders/{order_id}/return")
@page(Scope.RETURNS_WRITE, posted=True)
async def request_return(request: Request, buyer: Buyer, form: FormData, order_id: str) -> Response:
    """A return request for some of the order's lines (``POST /v1/returns``): the hub checks the
    quantities against what was shipped and answers with the request, which the ERP then decides."""
    reason = _text(form, "reason", 500)
    lines = []
    for name in form:
        if name.startswith("qty:") and _text(form, name):
            q = quantity(_text(form, name, 30), allow_zero=True)
            if q is None:
                return _error(request, buyer, 422, "Not accepted", f"{_text(form, name, 30)} is not a quantity")
            if q > 0:
                lines.append(returns.ReturnLineIn(line_no=int(name[4:]) if name[4:].isdigit() else 0,
                                                  quantity=q, reason=reason))
    if not lines:
        return _error(request, buyer, 422, "Not accepted", "give a quantity to return for at least one line")
    body = returns.ReturnIn(order_id=order_id[:64], lines=lines)
    made = await run_in_threadpool(returns.request_return_as, _hub(request), buyer.principal, body)
    return RedirectResponse(f"/portal/returns/{made.id}", status_code=303)


@router.get("/returns/{return_id}")
@page(Scope.ORDERS_READ)
def return_page(request: Request, buyer: Buyer, return_id: str) -> Response:
    return _page(request, "return.html", buyer, ret=returns.return_answer(_hub(request), buyer.principal,
                                                                          return_id[:64]))
