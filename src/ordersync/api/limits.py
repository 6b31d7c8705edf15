"""Request limits at the edge: body size, JSON nesting depth and NUL characters, refused before any
route runs.

Why a pure ASGI middleware and not ``BaseHTTPMiddleware``: the latter wraps every request in extra tasks
and streams, which costs the intake endpoint a noticeable part of its few-millisecond p99 budget. Here a
request without a body passes straight through, and a request with one costs a loop over its (usually
single) ``http.request`` message plus, for JSON, two C-speed scans.

Why buffer the body here: a refusal must come before the route touches the store, so the decision needs
the whole body first. FastAPI reads the whole body into memory for a JSON route anyway, and the buffer
is capped at ``max_body_bytes``, so this adds no memory a request could not already take.

- A ``Content-Length`` above the limit is refused up front (413) without reading the body; a streamed
  (chunked) body is counted while it arrives and refused as soon as it passes the limit.
- A JSON body (``application/json``, ``application/*+json``, or no content type, which FastAPI parses
  as JSON) on a method with a body is refused (400) when brackets nest deeper than ``max_json_depth``.
  Python's JSON parser recurses per level; a depth limit keeps a hostile body from costing a deep
  recursion (and its error path) in every worker. The scan removes string literals first, so brackets
  inside strings do not count, and never recurses itself.

- A NUL character in the path, the query string or a JSON, form or text body is refused (400): PostgreSQL
  text cannot hold one (the store would fail with a server error), SQLite would keep it, and no order
  number, SKU or note has a use for it. Refusing it here gives both stores one answer. Binary bodies
  (multipart, octet-stream) are not scanned.

FastAPI's own ``max_body_size`` is not used: it answers with its default error body rather than a problem
document, and has no depth limit.
"""

from __future__ import annotations

import re
from itertools import accumulate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordersync.api.problems import problem_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# A string literal, or an unterminated one running to the end: every opening quote then matches, so the
# substitution stays linear even for a hostile body full of quotes and backslashes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# Opening brackets become 1 and closing ones -1 (0xff read as a signed byte); everything else is deleted.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# ``\u0000`` after an even number of backslashes (an odd one would make it the literal text "\u0000")
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _outside_strings(body: bytes) -> bytes:
    if b"\\" not in body:  # no escapes: every quote opens or closes a string (split is C speed)
        return b"".join(body.split(b'"')[::2])
    return _STRING.sub(b"", body)


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether arrays/objects in ``body`` nest deeper than ``max_depth`` (brackets in strings ignored).

    Only a scan, not a parse: invalid JSON is left to the JSON parser behind it. Every step runs in C
    (about 0.2 ms for a 500-line order, 40 ms for a hostile 1 MiB of brackets, the same order as
    parsing it); the running depth is the running sum of +1/-1 per bracket."""
    if body.count(b"[") + body.count(b"{") <= max_depth:  # the common case: cannot be deeper
        return False
    steps = memoryview(_outside_strings(body).translate(_BRACKETS, _NOT_BRACKETS)).cast("b")
    return max(accumulate(steps), default=0) > max_depth


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return True
    media = _media(content_type)
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _media(content_type: bytes | None) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower() if content_type else b""


def body_has_nul(body: bytes, content_type: bytes | None) -> bool:
    """Whether a JSON, form or text body carries a NUL character (raw, JSON-escaped or percent-encoded)."""
    if _is_json(content_type):
        return b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body) is not None)
    media = _media(content_type)
    if media == b"application/x-www-form-urlencoded":
        return b"\x00" in body or b"%00" in body
    return media.startswith(b"text/") and b"\x00" in body


def check(max_body_bytes: int, max_json_depth: int) -> None:
    """Refuse a nonsensical configuration when the app is built, not at its first request."""
    if max_body_bytes < 0 or max_json_depth < 1:
        raise ValueError("max_body_bytes must be >= 0 and max_json_depth >= 1")


class RequestLimits:
    """ASGI middleware: 413 for bodies over ``max_body_bytes``, 400 for JSON nested deeper than
    ``max_json_depth`` and for NUL characters; all as ``application/problem+json``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_json_depth: int = DEFAULT_MAX_JSON_DEPTH, larger: dict[str, int] | None = None) -> None:
        check(max_body_bytes, max_json_depth)
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        #: paths that take larger bodies (an EDI interchange over AS2), path -> their limit
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        content_type: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        declared = 0
        if length is not None:
            if not length.strip().isdigit():
                await self._refuse(scope, receive, send, 400, "Invalid Content-Length",
                                   "Content-Length must be a number of bytes", close=True)
                return
            declared = int(length)
            if declared > self._limit(scope):
                await self._too_large(scope, receive, send)
                return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
            await self._nul(scope, receive, send, "the path or the query string", close=declared > 0 or chunked)
            return
        method = scope["method"]
        if method not in BODY_METHODS and not chunked and declared == 0:
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit(scope):
                await self._too_large(scope, receive, send)
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if (method in BODY_METHODS and _is_json(content_type)
                and json_too_deep(body, self.max_json_depth)):
            await self._refuse(scope, receive, send, 400, "Request body nested too deeply",
                               f"JSON arrays and objects may nest at most {self.max_json_depth} levels",
                               type_="https://ordersync.dev/problems/too-deep")
            return
        if method in BODY_METHODS and body_has_nul(body, content_type):
            await self._nul(scope, receive, send, "the body")
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)

    def _limit(self, scope: Scope) -> int:
        return self.larger.get(scope["path"], self.max_body_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._refuse(scope, receive, send, 413, "Request body too large",
                           f"the body may have at most {self._limit(scope)} bytes",
                           type_="https://ordersync.dev/problems/body-too-large", close=True)

    async def _nul(self, scope: Scope, receive: Receive, send: Send, where: str, close: bool = False) -> None:
        await self._refuse(scope, receive, send, 400, "NUL character in the request",
                           f"{where} contains a NUL character (U+0000), which no field may hold",
                           type_="https://ordersync.dev/problems/nul-character", close=close)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, title: str, detail: str,
                      type_: str = "about:blank", close: bool = False) -> None:
        # ``close``: the rest of the body was not read, so the connection cannot carry another request.
        response = problem_response(status, title, detail, type_=type_, instance=scope.get("path"),
                                    headers={"Connection": "close"} if close else None)
        await response(scope, receive, send)
