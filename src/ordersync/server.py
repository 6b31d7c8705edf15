"""The hub's HTTP server: the experience API (``/v1``, health, readiness, metrics), the operations
dashboard (``/ops``) and the sales channels served as pages (the buyer portal, ``/portal``), on one
FastAPI application. ``ordersync serve`` and the demo run it with uvicorn."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ordersync.api import limits
from ordersync.api.app import create_api
from ordersync.channels.edi import http as edi_http
from ordersync.channels.portal import pages as portal
from ordersync.channels.shopify import http as shopify_http
from ordersync.runtime.hub import Hub
from ordersync.web import STATIC_DIR, ops_drift, ops_people
from ordersync.web import ops as ops_pages


def create_app(hub: Hub, *, max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES,
               max_json_depth: int = limits.DEFAULT_MAX_JSON_DEPTH, processes: int = 1) -> FastAPI:
    """Everything the hub serves over HTTP (see :func:`ordersync.api.app.create_api` for the limits)."""
    app = create_api(hub, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth, processes=processes)
    app.include_router(ops_pages.router)  # the operations dashboard (server-rendered, /ops)
    app.include_router(ops_people.router)  # who may sign in (/ops/people)
    app.include_router(ops_drift.router)  # inbound drift and quarantined payloads (/ops/drift)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")  # pinned front-end assets
    app.include_router(portal.router)  # the buyer portal (/portal)
    app.include_router(edi_http.router)  # EDI partners' AS2 messages (/as2)
    app.include_router(shopify_http.router)  # Shopify's webhooks (/shopify/webhooks)
    app.include_router(ops_pages.fallback)  # last: an unknown /ops address is a page, not JSON
    _pages_refuse_with_pages(app)
    return app


async def _answer(result: Response | Awaitable[Response]) -> Response:
    return await result if inspect.isawaitable(result) else result


def _pages_refuse_with_pages(app: FastAPI) -> None:
    """On the pages for people, a refusal the framework raises (a stale form's 403, a field over its
    length, a wrong method) is a page; on the API it stays a problem document."""
    api_http = app.exception_handlers[StarletteHTTPException]
    api_invalid = app.exception_handlers[RequestValidationError]

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(("/ops", "/portal")) and exc.status_code >= 400:
            return ops_pages.error_page(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))
        return await _answer(api_http(request, exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith(("/ops", "/portal")):
            fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"
                               for e in exc.errors()[:5])
            return ops_pages.error_page(request, 422, f"The form or address has problems ({fields}).")
        return await _answer(api_invalid(request, exc))

    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(RequestValidationError, invalid)
