"""The buyer portal's sessions and its page preamble: who the buyer is (a person of their company's
account, :mod:`ordersync.web.people`, signed in with a password or OpenID Connect), the checks every page
and form goes through (:func:`page`), how refusals become pages, and signing in and out.

Sessions are the shared stateless cookie of :mod:`ordersync.web` (the person and their session epoch,
signed; :mod:`ordersync.web.doors`). The portal's pages call the same flows as the API with the buyer's
:class:`Principal`: their account and the scopes their roles give (``BUYER_SCOPES``); API keys are for
machines and no longer sign in here. Every form carries the session's CSRF token, the cookie is
``SameSite=Strict`` and a foreign ``Origin`` is refused.
"""

from __future__ import annotations

import functools
import inspect
import logging
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
from ordersync.web import Session, SessionSigner, doors, templates
from ordersync.web.oidc import SignInFailed
from ordersync.web.people import BUYER, Person
from ordersync.web.signin import clear_cookie, set_cookie

log = logging.getLogger("ordersync.portal")

router = APIRouter(prefix="/portal", include_in_schema=False)
signer = SessionSigner("portal")
SESSION_COOKIE = "ordersync_portal"
PAGE_SIZE = 20
#: the hub is still deciding: the order page refreshes itself
PENDING = frozenset({"received", "validated", "priced", "allocated", "backordered", "submitted_to_erp"})
ACCEPTED = frozenset({"accepted", "in_fulfillment", "partially_shipped", "shipped", "invoiced", "closed"})
FAILURES = (Problem, DomainError, IntegrationError, ValidationError, ValueError)


@dataclass(frozen=True)
class Buyer:
    """The signed-in buyer of one request: the person, the principal the flows see (their account and
    the scopes of their roles), the session and the cart."""

    principal: Principal
    session: Session
    cart: Cart
    person: Person | None = None

    @property
    def name(self) -> str:
        return self.person.name if self.person else self.principal.name

    @property
    def is_admin(self) -> bool:
        return self.person is not None and "admin" in self.person.roles

    @property
    def account_id(self) -> str:
        return self.principal.account_id or ""


# -- sessions, pages, errors --------------------------------------------------------------------------

def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


#: requests per minute a signed-in buyer's pages may make (the API's default for a portal key)
BUYER_RATE_PER_MINUTE = 600


def principal_of(person: Person) -> Principal:
    """What the flows see of a buyer: their account, the scopes of their roles, the portal channel."""
    return Principal(key_id=f"person_{person.id}", name=person.actor, client="portal", channel="portal",
                     account_id=person.account_id, scopes=person.scopes, rate_per_minute=BUYER_RATE_PER_MINUTE,
                     person=person.actor)


def _buyer(request: Request) -> Buyer | None:
    """The buyer of a valid session: an active person of an account whose sessions have not ended."""
    found = doors.session_person(request, signer, SESSION_COOKIE, BUYER)
    if found is None or found[0].account_id is None:
        return None
    person, session = found
    principal = principal_of(person)
    return Buyer(principal, session, read_cart(request.cookies.get(CART_COOKIE), principal.key_id), person)


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
        return error_page(request, buyer, 403, "Not allowed", "your role in your company's account does not "
                      f"allow this ({scope.value}); ask your company's portal admin")
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
                             "Content-Security-Policy": "default-src 'self'; style-src 'self'; frame-ancestors 'none'; "
                                                        "form-action 'self'; base-uri 'none'",
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
        clear_cookie(response, request, CART_COOKIE, path="/portal")
    else:
        set_cookie(response, request, CART_COOKIE, cart_cookie(cart), max_age=signer.ttl_seconds, path="/portal")
    return response


def _local(target: str) -> str:
    """Only a portal page is a place to go back to after signing in (no open redirect)."""
    return target if target.startswith("/portal/") and not target.startswith("//") else "/portal/catalog"


# -- sign in, sign out --------------------------------------------------------------------------------

@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/portal/catalog", status_code=303)


def _signin_page(request: Request, next_: str, status: int = 200, message: str = "",
                 headers: dict[str, str] | None = None) -> Response:
    oidc = doors.services(request).oidc
    return render(request, "signin.html", None, status, headers, next=_local(next_), message=message,
                  oidc=oidc if oidc is not None and oidc.settings.buyers else None)


@router.get("/signin")
def signinrender(request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = "/portal/catalog"
                ) -> Response:
    if _buyer(request) is not None:
        return RedirectResponse(_local(next_), status_code=303)
    return _signin_page(request, next_)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """A buyer's e-mail address and password (throttled, :mod:`ordersync.web.signin`): the session cookie."""
    form = await _form(request, None)
    if isinstance(form, Response):
        return form
    attempt = await run_in_threadpool(doors.password_signin, request, BUYER, text(form, "email", 254),
                                      text(form, "password", 1000))
    if attempt.person is None:
        headers = {"Retry-After": str(attempt.retry_after)} if attempt.retry_after else None
        return _signin_page(request, text(form, "next"), attempt.status, attempt.message, headers)
    log.info("%s of %s signed in to the portal (password)", attempt.person.actor, attempt.person.account_id)
    response = RedirectResponse(_local(text(form, "next")), status_code=303)
    doors.start_session(response, request, signer, SESSION_COOKIE, "/portal", attempt.person)
    return with_cart(response, request, None)


@router.get("/oidc/start")
def oidc_start(request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = "/portal/catalog"
               ) -> Response:
    try:
        started = doors.oidc_start(request, "portal", _local(next_))
    except SignInFailed as exc:
        return _signin_page(request, next_, 503, str(exc))
    if started is None:
        return _signin_page(request, next_, 404, "Signing in with an identity provider is not offered here.")
    url, flow = started
    return doors.set_flow(RedirectResponse(url, status_code=303), request, flow, "portal")


@router.get("/oidc/callback")
def oidc_callback(request: Request) -> Response:
    try:
        person, flow = doors.oidc_finish(request, "portal", BUYER)
    except SignInFailed as exc:
        log.warning("portal sign-in with the identity provider refused: %s", exc)
        return _signin_page(request, "/portal/catalog", 403, f"Sign-in refused: {exc}.")
    log.info("%s of %s signed in to the portal (OpenID Connect)", person.actor, person.account_id)
    response = doors.signed_in_with_provider(request, signer, SESSION_COOKIE, "portal", person, _local(flow.next))
    return with_cart(response, request, None)


@router.get("/invite/{token}")
def invitation_form(request: Request, token: str) -> Response:
    person = doors.services(request).people.invitation(token[:100])
    if person is None or person.kind != BUYER:
        return render(request, "invite.html", None, 404, person=None, token="", message="")
    oidc = doors.services(request).oidc
    return render(request, "invite.html", None, person=person, token=token[:100], message="",
                  oidc=oidc if oidc is not None and oidc.settings.buyers else None)


@router.post("/invite/{token}")
async def invitation_accept(request: Request, token: str) -> Response:
    form = await _form(request, None)
    if isinstance(form, Response):
        return form
    people = doors.services(request).people
    person = await run_in_threadpool(people.invitation, token[:100])
    if person is None or person.kind != BUYER:
        return render(request, "invite.html", None, 404, person=None, token="", message="")
    password = text(form, "password", 1000)
    if password != text(form, "repeat", 1000):
        return render(request, "invite.html", None, 422, person=person, token=token[:100],
                      message="The two passwords differ.")
    try:
        person = await run_in_threadpool(people.accept, token[:100], password, text(form, "name", 200) or None)
    except ValidationFailed as exc:
        return render(request, "invite.html", None, 422, person=person, token=token[:100], message=str(exc))
    log.info("%s of %s accepted their invitation to the portal", person.actor, person.account_id)
    response = RedirectResponse("/portal/catalog", status_code=303)
    doors.start_session(response, request, signer, SESSION_COOKIE, "/portal", person)
    return with_cart(response, request, None)


@router.post("/signout")
async def signout(request: Request) -> Response:
    buyer = await run_in_threadpool(_buyer, request)
    form = await _form(request, buyer)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/portal/signin", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE, path="/portal")
    return with_cart(response, request, None)
