"""Webhook deliveries the way Shopify makes them, and the ways they go wrong on purpose.

Shopify delivers at least once: each event goes to every HTTP subscription of its topic, signed with the
app's secret (``X-Shopify-Hmac-Sha256``, base64 HMAC-SHA256 of the raw body); an answer other than 2xx,
a timeout (5 s) or a connection error is retried 8 times over the next 4 hours (:data:`RETRY_DELAYS`, on
the injected clock). Every delivery attempt has its own ``X-Shopify-Webhook-Id``; every copy of one event
shares its ``X-Shopify-Event-Id``. Tests make it misbehave: deliver the next event twice
(:meth:`Webhooks.duplicate_next`), never (:meth:`Webhooks.drop_next`), or out of order
(:meth:`Webhooks.hold` then :meth:`Webhooks.release`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from .clock import Clock
from .payloads import topic_enum
from .state import ShopState

#: the waits before retry 1..8: 14,400 s (4 hours) in all
RETRY_DELAYS = (60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 6720.0)
TIMEOUT = 5.0


def sign(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body under the app's secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    body: bytes
    triggered_at: dt.datetime


@dataclass
class Delivery:
    event: Event
    uri: str
    due: float
    seq: int
    attempts: int = 0
    held: bool = False
    statuses: list[Any] = field(default_factory=list)


class Webhooks:
    """The shop's outgoing webhook queue. ``log`` holds (event id, topic, status, attempt) per attempt;
    status is the HTTP status, ``"timeout"`` or ``"connection error"``."""

    def __init__(self, shop: ShopState, secret: str, api_version: str, clock: Clock) -> None:
        self._shop = shop
        self._secret = secret
        self._version = api_version
        self._clock = clock
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one deliver_due at a time (background thread and a test alike)
        self._queue: list[Delivery] = []
        self._seq = itertools.count()
        self._held = False
        self._duplicates = 0
        self._drops: list[str | None] = []
        self._random = random.Random(1234)
        self._transport: httpx.BaseTransport | None = None
        self._client: httpx.Client | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.log: list[tuple[str, str, Any, int]] = []
        self.dropped: list[Event] = []
        self.given_up: list[Delivery] = []
        self.delivered: list[Delivery] = []

    # --- the shop's side ------------------------------------------------------------------------------

    def enqueue(self, topic: str, body: dict[str, Any], at: dt.datetime) -> None:
        """An event happened: queue a delivery to each subscription of its topic."""
        uris = [s["uri"] for s in self._shop.subscriptions if s["topic"] == topic_enum(topic)]
        if not uris:
            return
        event = Event(str(uuid.uuid4()), topic, json.dumps(body, separators=(",", ":")).encode(), at)
        with self._lock:
            drop = next((i for i, t in enumerate(self._drops) if t in (None, topic)), None)
            if drop is not None:
                del self._drops[drop]
                self.dropped.append(event)
                return
            copies, self._duplicates = max(1, self._duplicates), 0
            now = self._clock.monotonic()
            for uri in uris:
                for _ in range(copies):
                    self._queue.append(Delivery(event, uri, now, next(self._seq), held=self._held))

    # --- misbehaviour ---------------------------------------------------------------------------------

    def duplicate_next(self, n: int = 2) -> None:
        """Deliver the next event ``n`` times (same event id, a new webhook id each)."""
        with self._lock:
            self._duplicates = n

    def drop_next(self, topic: str | None = None) -> None:
        """Never deliver the next event (of ``topic``, e.g. ``"orders/create"``): only a sweep finds it."""
        with self._lock:
            self._drops.append(topic)

    def hold(self) -> None:
        """Keep every delivery queued from now on until :meth:`release`."""
        with self._lock:
            self._held = True

    def release(self, order: str = "fifo") -> None:
        """Let the held deliveries go, in ``"fifo"``, ``"reverse"`` or ``"shuffle"`` order."""
        with self._lock:
            held = [d for d in self._queue if d.held]
            rest = [d for d in self._queue if not d.held]
            if order == "reverse":
                held.reverse()
            elif order == "shuffle":
                self._random.shuffle(held)
            elif order != "fifo":
                raise ValueError(f"release order must be fifo, reverse or shuffle, not {order!r}")
            for delivery in held:
                delivery.held = False
                delivery.seq = next(self._seq)
            self._queue = rest + held
            self._held = False

    # --- delivery -------------------------------------------------------------------------------------

    def use_transport(self, transport: httpx.BaseTransport | None) -> None:
        """Deliver through ``transport`` (an ``httpx.MockTransport`` in unit tests) instead of the network."""
        with self._lock:
            self._transport = transport
            if self._client is not None:
                self._client.close()
            self._client = None

    def use_client(self, client: httpx.Client) -> None:
        """Deliver with this client, e.g. a ``starlette.testclient.TestClient`` of the hub's app (no sockets;
        build it with ``raise_server_exceptions=False`` so that a failing handler is a 500, as on a server)."""
        with self._lock:
            if self._client is not None and self._client is not client:
                self._client.close()
            self._client = client

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def deliver_due(self) -> int:
        """Attempt every delivery that is due on the clock, in queue order; returns how many were attempted."""
        with self._sending:
            with self._lock:
                now = self._clock.monotonic()
                due = [d for d in self._queue if not d.held and d.due <= now]
                client = self._client = self._client or httpx.Client(transport=self._transport, timeout=TIMEOUT)
            for delivery in due:
                status = self._post(client, delivery)
                self._settle(delivery, status)
            return len(due)

    def _post(self, client: httpx.Client, delivery: Delivery) -> Any:
        event = delivery.event
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": event.topic,
            "X-Shopify-Hmac-Sha256": sign(event.body, self._secret),
            "X-Shopify-Shop-Domain": self._shop.domain,
            "X-Shopify-API-Version": self._version,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": event.id,
            "X-Shopify-Triggered-At": event.triggered_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        try:
            return client.post(delivery.uri, content=event.body, headers=headers).status_code
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError:
            return "connection error"

    def _settle(self, delivery: Delivery, status: Any) -> None:
        with self._lock:
            delivery.attempts += 1
            delivery.statuses.append(status)
            self.log.append((delivery.event.id, delivery.event.topic, status, delivery.attempts))
            self._queue.remove(delivery)
            if isinstance(status, int) and 200 <= status < 300:
                self.delivered.append(delivery)
            elif delivery.attempts > len(RETRY_DELAYS):
                self.given_up.append(delivery)
            else:
                delivery.due = self._clock.monotonic() + RETRY_DELAYS[delivery.attempts - 1]
                delivery.seq = next(self._seq)
                self._queue.append(delivery)

    # --- background mode ------------------------------------------------------------------------------

    def start(self, interval: float = 0.05) -> None:
        """Deliver what is due every ``interval`` seconds in a thread (for the demo and served tests)."""
        if self._thread is not None:
            return
        stop = self._stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.deliver_due()

        self._thread = threading.Thread(target=loop, name="shopify-double-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = self._stop = None
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
