"""The outbound webhook port: the signing scheme every subscriber verifies, and the sender the delivery
runtime (:mod:`ordersync.runtime.webhooks`) POSTs through.

Every request is a POST of the canonical event envelope (JSON, exactly the bytes the outbox holds) with

- ``X-Ordersync-Event``: the event type, e.g. ``order.accepted``;
- ``X-Ordersync-Delivery``: the delivery id, the same on every retry, so a receiver can drop repeats;
- ``X-Ordersync-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Ordersync-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` under the
  subscription's shared secret.

Signing the timestamp with the body lets a receiver refuse an old request replayed by someone who
captured it (:func:`verify` takes a tolerance), which signing the body alone would not.

The sender says what happened in three ways: an answer (any HTTP status, which the caller classifies),
:class:`SubscriberDown` (nothing reached the receiver: connection refused, DNS, connect timeout), or
:class:`SubscriberTimeout` (the request went out but no answer came in time: the receiver may have
processed it, which is why the delivery id is stable).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Protocol

from ordersync import __version__
from ordersync.domain.errors import IntegrationError, Unavailable

EVENT_HEADER = "X-Ordersync-Event"
DELIVERY_HEADER = "X-Ordersync-Delivery"
TIMESTAMP_HEADER = "X-Ordersync-Timestamp"
SIGNATURE_HEADER = "X-Ordersync-Signature"

#: how much of a receiver's answer is kept with the delivery (and in its dead letter)
ANSWER_KEPT = 2000


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ordersync-Signature`` value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, *,
           tolerance_seconds: float | None = 300, now: float | None = None) -> bool:
    """Check a received request's signature (constant time) and, unless ``tolerance_seconds`` is None,
    that it was signed at most that long ago (or ahead, for clock skew)."""
    if not timestamp or not signature:
        return False
    try:
        signed_at = int(timestamp)
    except ValueError:
        return False
    if tolerance_seconds is not None and abs((time.time() if now is None else now) - signed_at) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, signed_at, body), signature)


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    secret: str
    event_type: str
    delivery_id: str
    body: bytes
    timestamp: int

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": f"ordersync/{__version__}",
            EVENT_HEADER: self.event_type,
            DELIVERY_HEADER: self.delivery_id,
            TIMESTAMP_HEADER: str(self.timestamp),
            SIGNATURE_HEADER: sign(self.secret, self.timestamp, self.body),
        }


@dataclass(frozen=True)
class WebhookAnswer:
    """What the receiver answered: status, the start of the body, and ``Retry-After`` in seconds."""

    status: int
    body: str = ""
    retry_after: float | None = None


class SubscriberDown(Unavailable):
    """Nothing reached the receiver (refused, unknown host, connect timeout): it is down, not failing."""


class SubscriberTimeout(IntegrationError):
    """The request was sent but no answer came in time; the receiver may have processed it."""


class WebhookPort(Protocol):
    def send(self, request: WebhookRequest) -> WebhookAnswer:
        """POST a signed request; raise :class:`SubscriberDown` or :class:`SubscriberTimeout`."""
        ...

    def close(self) -> None: ...
