"""Shopify webhook deliveries: their headers, and the HMAC that proves Shopify sent them.

Shopify signs each delivery with the app's client secret: ``X-Shopify-Hmac-Sha256`` is the base64 of
the HMAC-SHA256 of the raw request body. The check must run over the bytes exactly as they arrived,
before anything parses them.

Why not ``shopify_app`` (``shopifyapp`` 1.0.2, ``ShopifyApp(...).verify_webhook_req``) for the check,
although it is a dependency: its API is a whole request (method, headers, url, body) with the body as a
``str``, and in 1.0.2 it does not fit a plain (raw body, header, secrets) check:

* the body must be decoded first, so bytes that are not UTF-8 cannot be checked as they came;
* before comparing the HMAC it parses the (unauthenticated) body as JSON to redact its log record, so a
  forged body costs a full parse and re-serialisation, and a deeply nested one escapes as
  ``RecursionError`` instead of "not verified";
* it compares ``str`` with :func:`hmac.compare_digest`, which raises ``TypeError`` on a non-ASCII header;
* it takes two secrets (current and old) where settings may list more during a rotation.

So :func:`verify` is the same computation done directly on the bytes with :func:`hmac.compare_digest`;
the tests check that it agrees with ``shopify_app``'s verifier on Shopify's own test vector and on
ordinary bodies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: the header names of each field, the classic ``X-Shopify-`` one first
_NAMES = {
    "topic": ("x-shopify-topic", "shopify-topic"),
    "shop_domain": ("x-shopify-shop-domain", "shopify-shop-domain"),
    "event_id": ("x-shopify-event-id", "shopify-event-id"),
    "webhook_id": ("x-shopify-webhook-id", "shopify-webhook-id"),
    "triggered_at": ("x-shopify-triggered-at", "shopify-triggered-at"),
    "api_version": ("x-shopify-api-version", "shopify-api-version"),
    "hmac": ("x-shopify-hmac-sha256", "shopify-hmac-sha256"),
}


@dataclass(frozen=True)
class WebhookHeaders:
    """What Shopify says of a delivery in its headers ("" for a header that is missing).

    ``event_id`` is the same for every copy of one event (retries, duplicates); ``webhook_id`` is new for
    each delivery attempt; ``triggered_at`` is when the event happened (None if missing or unreadable)."""

    topic: str
    shop_domain: str
    event_id: str
    webhook_id: str
    triggered_at: dt.datetime | None
    api_version: str
    hmac: str


def read_headers(headers: Mapping[str, str]) -> WebhookHeaders:
    """Shopify's webhook headers from any mapping of them (names in any case)."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)

    def get(field: str) -> str:
        return next((lowered[n].strip() for n in _NAMES[field] if n in lowered), "")

    return WebhookHeaders(topic=get("topic"), shop_domain=get("shop_domain").lower(), event_id=get("event_id"),
                          webhook_id=get("webhook_id"), triggered_at=_when(get("triggered_at")),
                          api_version=get("api_version"), hmac=get("hmac"))


def _when(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def sign(raw_body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` Shopify sends with ``raw_body``: base64 of its HMAC-SHA256."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()).decode("ascii")


def verify(raw_body: bytes, hmac_header: str, secrets: Sequence[str]) -> bool:
    """Whether ``hmac_header`` is the HMAC of ``raw_body`` under any of ``secrets`` (more than one while a
    secret is rotated). False for a missing or malformed header and when no secret is configured; never
    raises on what a sender controls."""
    if isinstance(secrets, str):  # one secret passed as is, not as its characters
        secrets = [secrets]
    if not hmac_header:
        return False
    try:
        received = hmac_header.strip().encode("ascii")
    except UnicodeEncodeError:  # base64 is ASCII: not a signature
        return False
    body = bytes(raw_body)
    matched = False
    for secret in secrets:
        if secret:
            matched |= hmac.compare_digest(received, sign(body, secret).encode("ascii"))
    return matched
