"""The buyer portal's sessions and its page preamble: who the buyer is (an account-bound API key signed in
with a session cookie), the checks every page and form goes through (:func:`page`), how refusals become
pages, and signing in and out.

Sessions are the shared stateless cookie of :mod:`ordersync.web` (the API key's id, signed; the key
itself never leaves the sign-in request); only keys bound to an account may sign in. Every form carries
the session's CSRF token, the cookie is ``SameSite=Strict`` and a foreign ``Origin`` is refused.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ordersync.api.auth import Authenticator
from ordersync.api.keys import Principal, Scope
from ordersync.api.problems import Problem
from ordersync.channels.portal.cart import CART_COOKIE, Cart, cart_cookie, read_cart
from ordersync.domain.errors import DomainError, IntegrationError, NotFound, Unavailable, ValidationFailed
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


def gate(request: Request, scope: Scope) -> Buyer | Response:
    """The signed-in buyer, or the answer instead of the page: sign in first, slow down, or missing scope."""
    buyer = _buyer(request)
    if buyer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/portal/"
        return RedirectResponse(f"/portal/signin?next={quote(target)}", status_code=303)
    wait = _auth(request).limiter.take(buyer.principal.key_id, buyer.principal.rate_per_minute)
    if wait > 0:
        return error_page(request, buyer, 429, "Too many requests", "please wait a moment and try again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    if not buyer.principal.has(scope):
        return error_page(request, buyer, 403, "Not allowed", f"your key lacks the {scope.value} scope; "
                      "ask your administrator for a portal key")
    return buyer


async def gate_async(request: Request, scope: Scope) -> Buyer | Response:
    return await run_in_threadpool(gate, request, scope)


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
        return error_page(request, buyer, 403, "Refused", "this form was sent from another site")
    if buyer is not None and not SessionSigner.csrf_ok(buyer.session.csrf, text(form, "csrf")):
        return error_page(request, buyer, 403, "Refused", "the form has expired; reload the page and try again")
    return form


async def posted_form(request: Request, scope: Scope) -> tuple[Buyer, FormData] | Response:
    """A signed-in buyer with ``scope`` and their checked form (see :func:`gate`, :func:`_form`)."""
    buyer = await gate_async(request, scope)
    if isinstance(buyer, Response):
        return buyer
    form = await _form(request, buyer)
    if isinstance(form, Response):
        return form
    return buyer, form


def text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def render(request: Request, name: str, buyer: Buyer | None, status: int = 200,
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


def error_page(request: Request, buyer: Buyer | None, status: int, title: str, detail: str = "",
           headers: dict[str, str] | None = None, reasons: list[str] | None = None) -> Response:
    return render(request, "error.html", buyer, status, headers, title=title, detail=detail, reasons=reasons or [])


def failure_page(request: Request, buyer: Buyer, exc: Exception) -> Response:
    """What the API would have answered as a problem document, as a page."""
    if isinstance(exc, Problem):
        reasons = [str(e.get("message", "")) for e in exc.extra.get("errors", [])]
        return error_page(request, buyer, exc.status, exc.title, exc.detail, exc.headers, reasons)
    if isinstance(exc, ValidationFailed):
        return error_page(request, buyer, 422, "Not accepted", str(exc), reasons=list(exc.reasons))
    if isinstance(exc, NotFound):
        return error_page(request, buyer, 404, "Not found", str(exc))
    if isinstance(exc, DomainError):
        return error_page(request, buyer, 409 if type(exc).__name__ == "Conflict" else 422, "Not possible", str(exc))
    if isinstance(exc, IntegrationError):
        status = 503 if isinstance(exc, Unavailable) else 502
        return error_page(request, buyer, status, "Our ERP is not available", "please try again in a moment",
                      headers={"Retry-After": "5"})
    if isinstance(exc, ValidationError):
        reasons = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:20]]
        return error_page(request, buyer, 422, "Not accepted", "the form has problems", reasons=reasons)
    return error_page(request, buyer, 422, "Not accepted", str(exc))


def hub_of(request: Request) -> Hub:
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
                checked = await posted_form(request, scope)
                if isinstance(checked, Response):
                    return checked
                buyer, form = checked
                params["form"] = form
            else:
                gated = await gate_async(request, scope)
                if isinstance(gated, Response):
                    return gated
                buyer = gated
            try:
                if inspect.iscoroutinefunction(fn):
                    answer: Response = await fn(request, buyer, **params)
                else:
                    answer = await run_in_threadpool(fn, request, buyer, **params)
            except FAILURES as exc:
                return failure_page(request, buyer, exc)
            return answer

        kept = [p for name, p in signature.parameters.items() if name not in ("buyer", "form")]
        route.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        return route

    return wrap


def with_cart(response: Response, request: Request, cart: Cart | None) -> Response:
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
def signinrender(request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = "/portal/catalog"
                ) -> Response:
    if _buyer(request) is not None:
        return RedirectResponse(_local(next_), status_code=303)
    return render(request, "signin.html", None, next=_local(next_))


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
        return error_page(request, None, 429, "Too many attempts", "wait a minute before trying again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    principal = await run_in_threadpool(auth.principal, text(form, "api_key", 300))
    if principal is None:
        return render(request, "signin.html", None, 401, next=_local(text(form, "next")),
                     message="That key is unknown or was revoked.")
    if principal.account_id is None:
        return render(request, "signin.html", None, 403, next=_local(text(form, "next")),
                     message="This key is not bound to a customer account; the portal needs an account key.")
    response = RedirectResponse(_local(text(form, "next")), status_code=303)
    response.set_cookie(SESSION_COOKIE, signer.issue(principal.key_id), max_age=signer.ttl_seconds, path="/portal",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return with_cart(response, request, None)


@router.post("/signout")
async def signout(request: Request) -> Response:
    buyer = await run_in_threadpool(_buyer, request)
    form = await _form(request, buyer)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/portal/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/portal")
    return with_cart(response, request, None)
