"""The experience API's application factory: ``create_api(hub)`` serves the ``/v1`` routes, health,
readiness and metrics of a hub built by the composition root. The pages and channels are added above it
(:func:`ordersync.server.create_app`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from ordersync import __version__
from ordersync.api import catalog, health, history, limits, metrics, ops, order_changes, orders, problems, returns
from ordersync.api import disputes as invoice_disputes
from ordersync.api import tracing as api_tracing
from ordersync.api import wms as wms_webhook
from ordersync.api.auth import Authenticator, RateLimiter
from ordersync.api.keys import KeyService
from ordersync.runtime.hub import Hub
from ordersync.telemetry import tracing


def create_api(hub: Hub, *, max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES,
               max_json_depth: int = limits.DEFAULT_MAX_JSON_DEPTH, processes: int = 1) -> FastAPI:
    """The API over ``hub``. Bodies over ``max_body_bytes`` answer 413 and JSON nested deeper than
    ``max_json_depth`` 400, before any route runs (``api/limits.py``). ``processes``: how many API
    processes serve the same port (each limits a key to its share of the key's rate)."""
    limits.check(max_body_bytes, max_json_depth)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if hub.readmodel is not None:  # keep this process's read model current with other processes
            hub.readmodel.start_sync()
        yield
        if hub.readmodel is not None:
            hub.readmodel.stop_sync()
        # uvicorn re-raises the SIGTERM it caught once it has shut down, so nothing after it runs: the
        # spans still buffered go out now
        tracing.flush()

    app = FastAPI(
        lifespan=lifespan,
        title="ordersync",
        version=__version__,
        summary="B2B order hub: contract prices, availability, orders and their status",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.auth = Authenticator(KeyService(hub.db, hub.clock), RateLimiter(share=1.0 / processes))
    problems.install(app)
    problems.document(app)
    app.add_middleware(limits.RequestLimits, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth,
                       larger={"/as2": hub.settings.edi.max_body_bytes})  # EDI interchanges over AS2
    if tracing.enabled():  # outermost: the request's span covers the limits and every route
        app.add_middleware(api_tracing.TracingMiddleware)
    app.include_router(orders.router)
    app.include_router(catalog.router)
    app.include_router(history.router)
    app.include_router(order_changes.router)
    app.include_router(returns.router)
    app.include_router(invoice_disputes.router)
    app.include_router(wms_webhook.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.state.metrics = metrics.registry_for(hub)
    app.include_router(health.router)  # /health, /ready
    return app
