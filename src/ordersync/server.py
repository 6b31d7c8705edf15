"""The hub's HTTP server: the experience API (``/v1``, health, readiness, metrics), the operations
dashboard (``/ops``) and the sales channels served as pages (the buyer portal, ``/portal``), on one
FastAPI application. ``ordersync serve`` and the demo run it with uvicorn."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ordersync.api import limits
from ordersync.api.app import create_api
from ordersync.channels.edi import http as edi_http
from ordersync.channels.portal import pages as portal
from ordersync.channels.shopify import http as shopify_http
from ordersync.runtime.hub import Hub
from ordersync.web import STATIC_DIR, ops_people
from ordersync.web import ops as ops_pages


def create_app(hub: Hub, *, max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES,
               max_json_depth: int = limits.DEFAULT_MAX_JSON_DEPTH, processes: int = 1) -> FastAPI:
    """Everything the hub serves over HTTP (see :func:`ordersync.api.app.create_api` for the limits)."""
    app = create_api(hub, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth, processes=processes)
    app.include_router(ops_pages.router)  # the operations dashboard (server-rendered, /ops)
    app.include_router(ops_people.router)  # who may sign in (/ops/people)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")  # pinned front-end assets
    app.include_router(portal.router)  # the buyer portal (/portal)
    app.include_router(edi_http.router)  # EDI partners' AS2 messages (/as2)
    app.include_router(shopify_http.router)  # Shopify's webhooks (/shopify/webhooks)
    app.include_router(ops_pages.fallback)  # last: an unknown /ops address is a page, not JSON
    return app
