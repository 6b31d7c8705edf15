"""Authentication, scopes and per-key rate limits for the APIs.

``Authorization: Bearer <token>`` (or ``X-API-Key: <token>``). A missing or bad key answers 401, a
missing scope 403, too many requests 429 with ``Retry-After``. Verified keys are cached for a few
seconds so that a busy storefront does not pay a store lookup per request; a revoked key stops working
within that time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from ordersync.api.keys import KeyService, Principal, Scope
from ordersync.api.problems import Problem

CACHE_SECONDS = 5.0


class RateLimiter:
    """Token bucket per key: ``rate_per_minute`` requests per minute, bursts up to a tenth of it.
    ``share``: this process's part of every key's rate when ``serve --workers N`` spreads the requests
    over N processes (each keeps its own buckets; the kernel spreads connections about evenly)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, share: float = 1.0) -> None:
        self.clock = clock
        self.share = share
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_minute: int) -> float:
        """0 when allowed, else the seconds to wait."""
        rate = rate_per_minute * self.share / 60.0
        capacity = max(1.0, rate_per_minute * self.share / 10.0)
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / rate


class Authenticator:
    def __init__(self, keys: KeyService, limiter: RateLimiter | None = None) -> None:
        self.keys = keys
        self.limiter = limiter or RateLimiter()
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def principal(self, token: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        found = self.keys.verify(token)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, found)
        return found


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def require(scope: Scope) -> Any:
    """A dependency that authenticates the caller and checks ``scope`` and the rate limit."""

    async def dependency(request: Request) -> Principal:
        auth: Authenticator = request.app.state.auth
        token = _token(request)
        if not token:
            raise Problem(401, "Authentication required", "send an API key as 'Authorization: Bearer <key>'",
                          headers={"WWW-Authenticate": 'Bearer realm="ordersync"'})
        principal = auth.principal(token)
        if principal is None:
            raise Problem(401, "Invalid API key", "the key is unknown or revoked",
                          headers={"WWW-Authenticate": 'Bearer realm="ordersync", error="invalid_token"'})
        wait = auth.limiter.take(principal.key_id, principal.rate_per_minute)
        if wait > 0:
            raise Problem(429, "Too many requests",
                          f"key {principal.key_id} is limited to {principal.rate_per_minute} requests per minute",
                          headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if not principal.has(scope):
            raise Problem(403, "Missing scope", f"this key lacks the {scope.value} scope")
        request.state.principal = principal
        return principal

    return Depends(dependency)


CatalogReader = Annotated[Principal, require(Scope.CATALOG_READ)]
OrderReader = Annotated[Principal, require(Scope.ORDERS_READ)]
OrderWriter = Annotated[Principal, require(Scope.ORDERS_WRITE)]
ReturnWriter = Annotated[Principal, require(Scope.RETURNS_WRITE)]
Admin = Annotated[Principal, require(Scope.ADMIN)]


def account_for(principal: Principal, requested: str | None) -> str:
    """The account a request acts for: a bound key's own account (asking for another one is
    indistinguishable from asking for something that does not exist), or the one an unbound key names."""
    if principal.account_id is not None:
        if requested is not None and requested != principal.account_id:
            raise Problem(404, "Not found", f"account {requested} not found")
        return principal.account_id
    if requested is None:
        raise Problem(422, "Account required", "this key is not bound to an account: pass account_id")
    return requested
