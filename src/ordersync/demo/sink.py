"""A tiny webhook receiver that stands in for a CRM or a notification service in the demo (and in tests).

It accepts the hub's signed POSTs on any path, checks each signature with the shared secret, and keeps
what arrived: counts by event type, duplicates (the same delivery id again, which a real receiver drops),
refused signatures, and the last ``keep`` requests. ``GET /`` answers that summary as JSON.

Use::

    from ordersync.demo import sink

    crm = sink.start(port=8010, secret="a-shared-secret-of-16+-chars")
    # ordersync subscriptions add crm --url http://127.0.0.1:8010/hooks --secret ... --type '*'
    ...
    crm.summary()      # {"accepted": 42, "duplicates": 0, "refused": 0, "by_type": {...}, "last": [...]}
    crm.stop()

``start(port=0)`` picks a free port (``crm.url`` says which). ``respond`` lets a test or the demo play a
failing receiver: it gets each request whose signature is valid and returns the HTTP status to answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ordersync.ports.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass(frozen=True)
class Received:
    """One request as the sink saw it; ``status`` is what it answered."""

    delivery_id: str
    event_type: str
    message_id: str | None
    order_id: str | None
    signed_at: str | None
    valid: bool
    duplicate: bool
    status: int
    at: float
    envelope: dict[str, Any] | None
    traceparent: str | None = None  # the W3C trace context the hub sent (tracing on)


Responder = Callable[[Received], int]


class Sink:
    """A running receiver. Thread-safe; stop it with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, host: str, port: int, secret: str, *, keep: int, tolerance_seconds: float | None,
                 respond: Responder | None) -> None:
        self.host = host
        self.secret = secret
        self.tolerance_seconds = tolerance_seconds
        self.respond = respond
        self._lock = threading.Lock()
        self._last: deque[Received] = deque(maxlen=keep)
        self._by_type: Counter[str] = Counter()
        self._seen: Counter[str] = Counter()
        self._refused = 0
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sink-{self.port}", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks"

    def received(self) -> list[Received]:
        """The last ``keep`` requests, oldest first (refused and duplicate ones included)."""
        with self._lock:
            return list(self._last)

    def counts(self) -> dict[str, int]:
        """Accepted deliveries by event type, each delivery id counted once."""
        with self._lock:
            return dict(self._by_type)

    def deliveries(self) -> dict[str, int]:
        """How many times each delivery id arrived with a valid signature (1 unless retried after a
        lost answer)."""
        with self._lock:
            return dict(self._seen)

    def summary(self, last: int = 10) -> dict[str, Any]:
        with self._lock:
            recent = list(self._last)[-last:]
            return {
                "accepted": sum(self._by_type.values()),
                "duplicates": sum(n - 1 for n in self._seen.values()),
                "refused": self._refused,
                "by_type": dict(sorted(self._by_type.items())),
                "last": [{k: v for k, v in asdict(r).items() if k != "envelope"} for r in recent],
            }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- request handling (server threads) ----------------------------------------------------------

    def take(self, headers: Any, body: bytes) -> int:
        valid = verify(self.secret, headers.get(TIMESTAMP_HEADER), body, headers.get(SIGNATURE_HEADER),
                       tolerance_seconds=self.tolerance_seconds)
        try:
            envelope = json.loads(body) if valid else None
        except ValueError:
            envelope = None
        delivery_id = headers.get(DELIVERY_HEADER) or ""
        received = Received(
            delivery_id=delivery_id, event_type=headers.get(EVENT_HEADER) or "",
            message_id=envelope.get("message_id") if isinstance(envelope, dict) else None,
            order_id=envelope.get("correlation_id") if isinstance(envelope, dict) else None,
            signed_at=headers.get(TIMESTAMP_HEADER), valid=valid and isinstance(envelope, dict),
            duplicate=False, status=401, at=time.time(), envelope=envelope if isinstance(envelope, dict) else None,
            traceparent=headers.get("traceparent"))
        if received.valid and self.respond is not None:
            received = _with(received, status=self.respond(received))
        elif received.valid:
            received = _with(received, status=200)
        with self._lock:
            if not received.valid:
                self._refused += 1
            elif 200 <= received.status < 300:
                self._seen[delivery_id] += 1
                if self._seen[delivery_id] > 1:
                    received = _with(received, duplicate=True)
                else:
                    self._by_type[received.event_type] += 1
            self._last.append(received)
        return received.status


def _with(r: Received, **changes: Any) -> Received:
    return Received(**{**asdict(r), **changes})


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status = sink.take(self.headers, self.rfile.read(length))
            self._answer(status, {"ok": 200 <= status < 300})

        def do_GET(self) -> None:
            self._answer(200, sink.summary())

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo shows the summary
            return

    return Handler


def start(port: int = 0, secret: str = "", *, host: str = "127.0.0.1", keep: int = 100,
          tolerance_seconds: float | None = 300, respond: Responder | None = None) -> Sink:
    """Start a sink on ``host:port`` (0: any free port) in a background thread and return it.

    ``secret`` is the subscription's shared secret; ``tolerance_seconds`` how old a signature may be
    (None: any age, for hubs running on a fake clock); ``respond`` picks the status for valid requests
    (default 200)."""
    if not secret:
        raise ValueError("the sink needs the subscription's shared secret to check signatures")
    return Sink(host, port, secret, keep=keep, tolerance_seconds=tolerance_seconds, respond=respond)
