"""Errors as RFC 9457 problem details (``application/problem+json``), mapped at the edge only."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ordersync.api.tracing import TRACE_ID
from ordersync.domain.errors import (
    ChangedResend,
    Conflict,
    DomainError,
    IntegrationError,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from ordersync.telemetry import tracing

log = logging.getLogger("ordersync.api")
PROBLEM = "application/problem+json"


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", *, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(status: int, title: str, detail: str = "", *, type_: str = "about:blank",
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    if "trace_id" not in body:
        trace_id = tracing.current_trace_id()
        if trace_id:  # the operator finds the request's trace (and its log lines) by it
            body["trace_id"] = trace_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path is served with. Starlette's 405 names only the methods of the
    first route that matched the path, but ``GET`` and ``POST /v1/orders`` live in different routers."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, type_=exc.type, instance=request.url.path,
                                headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()[:50]
        ]
        return problem_response(422, "Request is not valid", f"{len(exc.errors())} problem(s) in the request",
                                type_="https://ordersync.dev/problems/invalid-request",
                                instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem_response(exc.status_code, str(exc.detail), instance=request.url.path, headers=headers)

    @app.exception_handler(ValidationFailed)
    async def _validation(request: Request, exc: ValidationFailed) -> JSONResponse:
        return problem_response(422, "Request is not valid", str(exc), instance=request.url.path,
                                errors=[{"message": r} for r in exc.reasons])

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, "Not found", str(exc), instance=request.url.path)

    @app.exception_handler(ChangedResend)
    async def _changed(request: Request, exc: ChangedResend) -> JSONResponse:
        return problem_response(409, "Order number received before with other content", str(exc),
                                type_="https://ordersync.dev/problems/changed-resend", instance=request.url.path,
                                order_id=exc.order_id, differences=exc.differences)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return problem_response(409, "Conflict", str(exc), instance=request.url.path)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(422, "Refused", str(exc), instance=request.url.path)

    @app.exception_handler(IntegrationError)
    async def _integration(request: Request, exc: IntegrationError) -> JSONResponse:
        status = 503 if isinstance(exc, Unavailable) else 502
        return problem_response(status, "A connected system is not available", str(exc),
                                instance=request.url.path, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # answered outside the request's span (Starlette's outermost layer): its trace id was kept
        trace = {"trace_id": request.scope[TRACE_ID]} if request.scope.get(TRACE_ID) else {}
        return problem_response(500, "Internal error", "the error was logged with this path and time",
                                instance=request.url.path, **trace)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; ``errors`` lists each invalid field of a refused request.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string", "description": "the request's trace (when tracing is on)"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["message"], "properties": {
            "location": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
# The answers any /v1 operation can give, whatever its route declares: they come from the key check
# (401/403/429), the account binding (404), validation (422) and the ERP gates (502/503).
V1_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    401: ("no API key, or an unknown or revoked one",
          {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}}),
    403: ("the API key lacks the scope this operation needs", {}),
    404: ("not found, or not visible to this key's account", {}),
    422: ("the request is not valid: one entry in ``errors`` per problem", {}),
    429: ("the key is over its rate limit", {"Retry-After": {**_RETRY_AFTER["Retry-After"], "required": True}}),
    502: ("a connected system answered with an error", _RETRY_AFTER),
    503: ("a connected system is not available", _RETRY_AFTER),
}
# The request limits' answer (``api/limits.py``) to any operation: PostgreSQL text cannot hold a NUL.
ANY_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("the path or the query string holds a NUL character", {}),
}
# The answers of the request limits (``api/limits.py``) for any operation with a request body.
BODY_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("the body cannot be parsed, its JSON nests too deeply, or the request holds a NUL character", {}),
    413: ("the body is larger than the hub accepts", {}),
}


def document(app: FastAPI) -> None:
    """Declare the problem answers in the OpenAPI document, once for every route.

    Why here and not in each route's ``responses=``: those answers come from the edge (keys, limits,
    exception handlers), not from the route, so a new route gets them without remembering to; and a
    client generated from the document (or schemathesis) can rely on every status it may see being
    listed with its ``application/problem+json`` body. FastAPI's own 422 (``HTTPValidationError``,
    ``application/json``) is replaced: this hub never answers that shape. A problem status a /v1 route
    declared with a description only gets the problem body; a route's own error body is left alone."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, item in schema.get("paths", {}).items():
            v1 = path.startswith("/v1/")
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                declared = {**ANY_PROBLEMS, **(V1_PROBLEMS if v1 else {}),
                            **(BODY_PROBLEMS if "requestBody" in operation else {})}
                for status, (description, headers) in declared.items():
                    response = responses.setdefault(str(status), {"description": description})
                    if headers:
                        response.setdefault("headers", {}).update(headers)
                ours = {str(s) for s in declared}
                for status, response in responses.items():
                    if not status.startswith(("4", "5")):
                        continue
                    media = response.get("content") or {}
                    if "HTTPValidationError" in str(media) or (not media and (v1 or status in ours)):
                        response["content"] = content
        if "HTTPValidationError" not in str(schema.get("paths")):
            for name in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
