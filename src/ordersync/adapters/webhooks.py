"""Outbound webhooks over HTTP: :class:`HttpWebhookSender` implements the webhook port
(:mod:`ordersync.ports.webhooks`, which also holds the signing scheme) with httpx."""

from __future__ import annotations

import threading

import httpx

from ordersync.ports.webhooks import (
    ANSWER_KEPT,
    SubscriberDown,
    SubscriberTimeout,
    WebhookAnswer,
    WebhookRequest,
)
from ordersync.telemetry import tracing


class HttpWebhookSender:
    """:class:`WebhookPort` over httpx. One client (connection pool) shared by the sender's threads;
    redirects are not followed (a moved endpoint is the subscription's to fix, and following would
    post signed events to wherever a receiver points)."""

    def __init__(self, *, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        """Made on first use: every hub process builds a sender, few of them ever send."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
            return self._client

    def send(self, request: WebhookRequest) -> WebhookAnswer:
        try:
            headers = {**request.headers(), **tracing.headers_of(*tracing.current_context())}
            with self._http().stream("POST", request.url, content=request.body, headers=headers) as response:
                return WebhookAnswer(response.status_code, _read_some(response),
                                     _retry_after(response.headers.get("Retry-After")))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            raise SubscriberDown(f"{request.url}: {type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise SubscriberTimeout(f"{request.url}: no answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:  # the connection broke mid-request: like a timeout, it may have arrived
            raise SubscriberTimeout(f"{request.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _read_some(response: httpx.Response) -> str:
    """The first :data:`ANSWER_KEPT` characters of the answer, without reading a huge body whole."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= ANSWER_KEPT:
            break
    return data[:ANSWER_KEPT].decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare for webhooks and ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None
