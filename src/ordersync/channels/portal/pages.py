"""The buyer portal at ``/portal``: catalog with contract prices and plant availability, a cart, orders with
their partial or backorder outcome, shipments with tracking, invoices with their open balance and disputes,
PDFs of confirmations and invoices, and returns with their RMA numbers.

Why it calls the experience API's functions (``catalog_answer``, ``place_order``, ``order_history``...): the
portal is one more channel on the experience API, so every answer (account isolation, channel price rules,
availability promises, intake idempotency, return checks) is the API's own, not a second implementation that
could drift. It calls the functions the ``/v1`` routes call, never the routes. The portal only adds what a
browser needs: a session instead of a bearer key, forms instead of JSON, HTML instead of problem documents.
Every page goes through one preamble (:func:`ordersync.channels.portal.session.page`): sign-in, rate limit
and scope, for a form its origin and CSRF token, and any refusal the API would answer as a problem shown as
an error page.

Every path under ``/portal`` answers a page (:func:`elsewhere`, registered after every page): an unknown
path is a "not found" page with the way back, and a path that exists for another method (a form's address
opened or reloaded after its post) goes to the page that form belongs to, so post/redirect/get holds even
when the browser asks again.

Sessions are the shared stateless cookie of :mod:`ordersync.web` (the person and their session epoch,
signed); every form carries the session's CSRF token, the cookie is ``SameSite=Strict`` and a foreign
``Origin`` is refused. Pages work without JavaScript; a pending order's page refreshes itself until the hub
has decided."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.routing import Match

from ordersync.channels.portal import (  # noqa: F401  (their routes register on the router)
    catalog,
    invoices,
    orders,
    people,
    quick_order,
    returns,
)
from ordersync.channels.portal.session import _buyer, error_page, router

__all__ = ["router"]

PREFIX = "/portal"


def _has_page(request: Request, path: str) -> bool:
    """Whether a portal page (a GET route other than this fallback) answers ``path``."""
    scope = {**request.scope, "method": "GET", "path": path}
    return any(route.matches(scope)[0] == Match.FULL for route in router.routes
               if getattr(route, "endpoint", None) is not elsewhere)


def page_for(request: Request, path: str) -> str | None:
    """The page a form address belongs to: the address itself, else its nearest parent that is a page
    (``/portal/orders/X/reorder`` -> ``/portal/orders/X``; ``/portal/cart/add`` -> ``/portal/cart``)."""
    parts = path.rstrip("/").split("/")
    while len(parts) > 2:
        candidate = "/".join(parts)
        if _has_page(request, candidate):
            return candidate
        parts.pop()
    return f"{PREFIX}/"


def _known_path(request: Request, path: str) -> bool:
    """Whether some portal route (any method) answers ``path``."""
    for method in ("GET", "POST"):
        scope = {**request.scope, "method": method, "path": path}
        for route in router.routes:
            if getattr(route, "endpoint", None) is not elsewhere and route.matches(scope)[0] != Match.NONE:
                return True
    return False


@router.api_route("/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                  include_in_schema=False)
def elsewhere(request: Request, rest: str) -> Response:
    """What no page answers: another method than the address has (a reloaded form post) goes to its page
    (303, post/redirect/get); an unknown address is a "not found" page with the way back."""
    path = request.url.path
    if _known_path(request, path):
        target = path if request.method != "GET" and _has_page(request, path) else page_for(request, path)
        return RedirectResponse(target or f"{PREFIX}/", status_code=303)
    return error_page(request, _buyer(request), 404, "Page not found",
                      f"there is no page at {path[:200]}; it may have moved, or the link was cut short")
