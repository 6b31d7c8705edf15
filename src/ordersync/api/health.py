"""``/health`` (liveness) and ``/ready`` (readiness, :mod:`ordersync.runtime.health`), served by the API
and, with ``/metrics``, on a worker's own port (:func:`create_health_app`, ``ordersync worker
--health-port``). No API key: like ``/metrics``, nothing here names an account, an order or a case."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from ordersync.api import metrics
from ordersync.runtime.health import readiness
from ordersync.runtime.hub import Hub

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "not ready: the store, the NATS quorum or every worker "
                                                      "is missing (the reasons say which)"}})
def ready(request: Request) -> JSONResponse:
    """Readiness: ``ready``, ``degraded`` (what is wrong is in ``warnings``: an ERP circuit open, a NATS
    node down, a worker missing, lag over a threshold) or ``not ready`` (503, ``reasons``: the store down,
    NATS quorum lost or not connected, no live worker). Also reports each ERP, the bus (streams, their
    leaders and replicas, consumers' backlogs), the workers' heartbeats and the outbox."""
    verdict = readiness(request.app.state.hub)
    return JSONResponse(verdict.body, status_code=verdict.http_status)


def create_health_app(hub: Hub) -> FastAPI:
    """What a worker serves on its health port: ``/health``, ``/ready`` and ``/metrics`` of its hub."""
    app = FastAPI(title="ordersync worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub
    app.state.metrics = metrics.registry_for(hub)
    app.include_router(router)
    app.include_router(metrics.router)
    return app
