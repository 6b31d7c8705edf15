"""The ways in, written once for both areas (the dashboard for staff, the portal for buyers): a password
sign-in (throttled, :mod:`ordersync.web.signin`), OpenID Connect (:mod:`ordersync.web.oidc`), accepting an
invitation, and the session cookie that results. Each area renders its own pages around these.

A session cookie names the person and their session epoch (``<person id>_<epoch>``), signed per area
(:class:`ordersync.web.SessionSigner`): each request looks the person up again, so that disabling them or
ending their sessions takes effect at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ordersync.web import Session, SessionSigner
from ordersync.web.oidc import FLOW_COOKIE, FLOW_SECONDS, Flow, OidcClient, SignInFailed, seal, unseal
from ordersync.web.people import BUYER, BUYER_ROLES, STAFF, STAFF_ROLES, People, Person
from ordersync.web.signin import (
    SigninThrottle,
    clear_cookie,
    device_for,
    origin_of,
    remember_device,
    set_cookie,
    web_settings,
)

DEVICE_COOKIE = "ordersync_device"
DEVICE_MAX_AGE = 180 * 86400
_lock = threading.Lock()


@dataclass(frozen=True)
class Services:
    people: People
    throttle: SigninThrottle
    oidc: OidcClient | None


def services(request: Request) -> Services:
    """The app's people, throttle and OIDC client (made once per application)."""
    state = request.app.state
    found: Services | None = getattr(state, "people_services", None)
    if found is None:
        with _lock:
            found = getattr(state, "people_services", None)
            if found is None:
                hub = state.hub
                web = hub.settings.web
                found = Services(People(hub.db, hub.clock),
                                 SigninThrottle(per_source=web.signin_failures_per_source,
                                                per_person=web.signin_failures_per_person),
                                 OidcClient(web.oidc) if web.oidc is not None else None)
                state.people_services = found
    return found


def subject(person: Person) -> str:
    return f"{person.id}_{person.session_epoch}"


def session_person(request: Request, signer: SessionSigner, cookie: str, kind: str) -> tuple[Person, Session] | None:
    """The active person of ``kind`` whose valid session cookie this request carries, else None."""
    session = signer.read(request.cookies.get(cookie))
    if session is None or "_" not in session.key_id:
        return None
    person_id, _, epoch = session.key_id.partition("_")
    if not epoch.isdigit():
        return None
    person = services(request).people.session_person(person_id, int(epoch))
    if person is None or person.kind != kind:
        return None
    return person, session


def start_session(response: Response, request: Request, signer: SessionSigner, cookie: str, path: str,
                  person: Person) -> Response:
    set_cookie(response, request, cookie, signer.issue(subject(person)), max_age=signer.ttl_seconds, path=path)
    set_cookie(response, request, DEVICE_COOKIE,
               remember_device(request.cookies.get(DEVICE_COOKIE), person.email), max_age=DEVICE_MAX_AGE, path="/")
    return response


@dataclass(frozen=True)
class Attempt:
    """A password sign-in's outcome: the person, or why not (and how long to wait, when throttled)."""

    person: Person | None
    status: int
    message: str
    retry_after: int = 0


def password_signin(request: Request, kind: str, email: str, password: str) -> Attempt:
    svc = services(request)
    source = origin_of(request, web_settings(request)).address
    device = device_for(request.cookies.get(DEVICE_COOKIE), email)
    wait = svc.throttle.wait(source, email, device)
    if wait > 0:
        return Attempt(None, 429, "Too many failed sign-ins for this address from this browser or network. "
                       "Wait a few minutes, or sign in from a browser you have used before.", max(1, int(wait + 0.999)))
    if not email.strip() or not password:
        return Attempt(None, 422, "Enter your e-mail address and password.")
    person = svc.people.authenticate(email, password, kind)
    if person is None:
        svc.throttle.failed(source, email, device)
        return Attempt(None, 401, "That e-mail address and password do not match an active account.")
    svc.throttle.succeeded(source, email)
    return Attempt(person, 200, "")


def base_url(request: Request) -> str:
    web = web_settings(request)
    if web.oidc is not None and web.oidc.redirect_base:
        return web.oidc.redirect_base.rstrip("/")
    origin = origin_of(request, web)
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() if origin.proxied else ""
    return f"{'https' if origin.https else 'http'}://{host or request.url.netloc}"


def oidc_start(request: Request, area: str, next_: str) -> tuple[str, str] | None:
    """Where to send the browser and the flow cookie to set, or None when no provider is configured for
    ``area`` (the portal's only when ``[web.oidc] buyers`` lets buyers use it)."""
    client = services(request).oidc
    if client is None or (area == "portal" and not client.settings.buyers):
        return None
    url, flow = client.start(f"{base_url(request)}/{area}/oidc/callback", area, next_)
    return url, seal(flow)


def set_flow(response: Response, request: Request, sealed: str, area: str) -> Response:
    """The sign-in's flow cookie: SameSite=Lax, because the provider sends the browser back with a
    cross-site navigation, on which a Strict cookie would not be sent."""
    set_cookie(response, request, FLOW_COOKIE, sealed, max_age=FLOW_SECONDS, path=f"/{area}/oidc", samesite="lax")
    return response


def continue_to(target: str) -> Response:
    """The callback's answer: a page that moves on to ``target`` itself. A redirect would keep the
    navigation cross-site (it began at the identity provider), and the browser would withhold the new
    SameSite=Strict session cookie from the first page; a navigation this page starts is same-site."""
    from html import escape

    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="0;url={escape(target)}"><title>Signed in</title></head><body><main><p>Signed in. '
            f'<a id="continue" href="{escape(target)}">Continue</a></p></main></body></html>')
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                       "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"})


def signed_in_with_provider(request: Request, signer: SessionSigner, cookie: str, area: str, person: Person,
                            target: str) -> Response:
    """The callback's answer once the provider's sign-in is verified: the page that moves on to
    ``target`` (:func:`continue_to`) with the person's session, and the flow cookie gone."""
    response = start_session(continue_to(target), request, signer, cookie, f"/{area}", person)
    clear_cookie(response, request, FLOW_COOKIE, path=f"/{area}/oidc")
    return response


def oidc_finish(request: Request, area: str, kind: str) -> tuple[Person, Flow]:
    """The person the provider's answer (this request) signs in; :class:`SignInFailed` says why not."""
    svc = services(request)
    if svc.oidc is None:
        raise SignInFailed("no identity provider is configured")
    flow = unseal(request.cookies.get(FLOW_COOKIE))
    if flow is None or flow.area != area:
        raise SignInFailed("this sign-in expired or was started in another browser; start again")
    if kind == BUYER and not svc.oidc.settings.buyers:
        raise SignInFailed("buyers sign in with their password here")
    claims = svc.oidc.finish(f"{base_url(request)}/{area}/oidc/callback", flow, dict(request.query_params))
    roles = svc.oidc.roles(claims, STAFF_ROLES if kind == STAFF else BUYER_ROLES) if kind == STAFF else None
    person, why = svc.people.from_identity(kind, svc.oidc.issuer, claims, roles)
    if person is None:
        raise SignInFailed(why)
    return person, flow
