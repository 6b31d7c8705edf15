"""The double over HTTP: one request handler behind an ASGI app (Starlette), an ``httpx.MockTransport``
(no sockets, for sync clients in unit tests) and a uvicorn server on a free localhost port."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[str, str, Mapping[str, str], bytes, str], tuple[int, dict[str, str], bytes]]

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
_GRAPHQL = re.compile(r"^/admin/api/(?P<version>[^/]+)/graphql\.json$")
_BULK = re.compile(r"^/bulk/(?P<number>\d+)\.jsonl$")


def json_response(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json; charset=utf-8"}, json.dumps(body).encode()


Execute = Callable[[str, dict[str, Any] | None, str | None, str], tuple[int, Any]]


def route(execute: Execute, bulk_file: Callable[[int], str | None], version: str, token: str) -> Handler:
    """The request handler shared by the app and the transport."""

    def handle(method: str, path: str, headers: Mapping[str, str], body: bytes,
               base_url: str) -> tuple[int, dict[str, str], bytes]:
        graphql_path = _GRAPHQL.match(path)
        if graphql_path and method == "POST":
            if graphql_path["version"] != version:
                return json_response(404, {"errors": "Not Found"})
            if headers.get("x-shopify-access-token") != token:
                return json_response(401, {"errors": INVALID_TOKEN})
            try:
                request = json.loads(body or b"{}")
                query = request["query"]
                assert isinstance(query, str)
            except (ValueError, KeyError, TypeError, AssertionError):
                return json_response(400, {"errors": {"query": "Required parameter missing or invalid"}})
            variables = request.get("variables")
            status, answer = execute(query, variables if isinstance(variables, dict) else None,
                                     request.get("operationName"), base_url)
            return json_response(status, answer)
        bulk_path = _BULK.match(path)
        if bulk_path and method == "GET":
            text = bulk_file(int(bulk_path["number"]))
            if text is None:
                return json_response(404, {"errors": "Not Found"})
            return 200, {"content-type": "application/jsonl"}, text.encode()
        return json_response(404, {"errors": "Not Found"})

    return handle


def asgi_app(handle: Handler) -> Starlette:
    async def endpoint(request: Request) -> Response:
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, out_headers, payload = handle(request.method, request.url.path, headers, await request.body(),
                                              base_url)
        return Response(payload, status_code=status, headers=out_headers)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def mock_transport(handle: Handler) -> httpx.MockTransport:
    def respond(request: httpx.Request) -> httpx.Response:
        base_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, out_headers, payload = handle(request.method, request.url.path, headers, request.read(), base_url)
        return httpx.Response(status, headers=out_headers, content=payload)

    return httpx.MockTransport(respond)


class Server:
    """uvicorn in a thread on 127.0.0.1 at a free port."""

    def __init__(self, app: Starlette) -> None:
        self._app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None

    def start(self) -> str:
        if self.base_url is not None:
            return self.base_url
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = self._server = uvicorn.Server(uvicorn.Config(self._app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="shopify-double",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Shopify double's server did not start")
            time.sleep(0.005)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None
        self.base_url = None
