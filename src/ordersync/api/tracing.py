"""A span per HTTP request (tracing on): the root of an order's trace, or a child of the caller's
``traceparent``. Installed by :func:`ordersync.api.app.create_api` only when tracing is on, so a hub
without tracing runs no code of it."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordersync.telemetry import tracing

#: where the request's trace id is kept in the ASGI scope (for answers written after its span ended)
TRACE_ID = "ordersync.trace_id"


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        given = {k: v.decode("latin-1") for k, v in scope.get("headers", ())
                 if k in (b"traceparent", b"tracestate")}
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        status = [0]

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
        with tracing.span(f"{method} {path}", parent=tracing.valid_traceparent(given.get(b"traceparent")),
                          state=given.get(b"tracestate"), kind=tracing.SpanKind.SERVER,
                          attributes=attributes) as span:
            scope[TRACE_ID] = tracing.current_trace_id()
            try:
                await self.app(scope, receive, answer)
            finally:
                if span is not None:
                    route = scope.get("route")
                    template = getattr(route, "path", None)
                    if template:  # low cardinality: the route's template, not the order's id
                        span.update_name(f"{method} {template}")
                        span.set_attribute("http.route", template)
                    if status[0]:
                        span.set_attribute("http.response.status_code", status[0])
                        if status[0] >= 500:
                            span.set_status(tracing.StatusCode.ERROR, f"HTTP {status[0]}")
