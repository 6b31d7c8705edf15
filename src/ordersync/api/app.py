"""The FastAPI application factory. ``create_app(hub)`` serves a hub built by the composition root."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ordersync import __version__
from ordersync.api import orders, problems
from ordersync.api.auth import Authenticator
from ordersync.api.keys import KeyService


def create_app(hub: Any) -> FastAPI:
    app = FastAPI(
        title="ordersync",
        version=__version__,
        summary="B2B order hub: contract prices, availability, orders and their status",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.auth = Authenticator(KeyService(hub.db, hub.clock))
    problems.install(app)
    app.include_router(orders.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
