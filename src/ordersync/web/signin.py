"""What signing in to the pages shares between the dashboard and the portal: who the request really
comes from behind a proxy, cookie flags, and throttling password guesses without letting one source lock
everybody else out.

**Proxies.** ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the addresses in
``[web] trusted_proxies``; from anyone else they are what they are, headers a client can write. The
client is the right-most forwarded address that is not a trusted proxy. Cookies are ``Secure`` when the
browser's connection was https (directly, or at a trusted proxy that terminated TLS), or always with
``secure_cookies = "always"``.

**Throttling** (after OWASP's "device cookies"). A browser that has signed in as someone gets a signed
*device cookie* for that person. Failed attempts are counted per e-mail address and per source address,
but these limits apply only to browsers *without* a device cookie for the address they try: an attacker
guessing from behind a company's proxy makes unknown browsers there wait, while the people who have
signed in from their browsers before go on signing in (their own failures are counted per device, and a
device that fails too often loses its standing). A successful sign-in never counts. The counts are per
process (each API process of ``serve --workers N`` keeps its own; the limits are per process).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from ordersync.config import WebSettings
from ordersync.web import session_secret

WINDOW_SECONDS = 900.0
DEVICE_FAILURES = 10
DEVICE_DAYS = 180
PAIR_FAILURES = 5  # one source guessing one address: the tightest limit


def _networks(trusted: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for entry in trusted:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return nets


def _is_trusted(address: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)


@dataclass(frozen=True)
class Origin:
    """Where a request comes from: the client's address and whether its connection was https."""

    address: str
    https: bool
    proxied: bool = False  # came through a trusted proxy (its X-Forwarded-* headers count)


def origin_of(request: Request, web: WebSettings) -> Origin:
    peer = request.client.host if request.client else "unknown"
    https = request.url.scheme == "https"
    nets = _networks(web.trusted_proxies)
    if not nets or not _is_trusted(peer, nets):
        return Origin(peer, https)
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    address = peer
    for hop in reversed(forwarded):  # the right-most hop no trusted proxy added is the client
        address = hop
        if not _is_trusted(hop, nets):
            break
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return Origin(address, proto == "https" if proto else https, proxied=True)


def secure_cookie(request: Request, web: WebSettings) -> bool:
    return web.secure_cookies == "always" or origin_of(request, web).https


def web_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.hub.settings.web
    return settings


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int, path: str,
               samesite: Literal["strict", "lax"] = "strict") -> None:
    """A session-grade cookie: HttpOnly, SameSite=Strict (Lax only for what must survive the identity
    provider's redirect back, a cross-site navigation), Secure as :func:`secure_cookie` says."""
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite=samesite,
                        secure=secure_cookie(request, web_settings(request)))


def clear_cookie(response: Response, request: Request, name: str, *, path: str) -> None:
    """Delete a cookie set by :func:`set_cookie`, with the same flags (a browser may refuse a deletion
    that is less secure than the cookie it deletes)."""
    response.delete_cookie(name, path=path, httponly=True, samesite="strict",
                           secure=secure_cookie(request, web_settings(request)))


# -- device cookies ------------------------------------------------------------------------------------

def _mac(*parts: str) -> str:
    digest = hmac.new(session_secret(), "|".join(("device", *parts)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _who(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:20]


def device_cookie(email: str, now: float | None = None) -> str:
    """A cookie saying this browser has signed in as ``email``: ``<who>.<nonce>.<expiry>.<mac>``."""
    expires = int((now if now is not None else time.time()) + DEVICE_DAYS * 86400)
    body = f"{_who(email)}.{secrets.token_urlsafe(9)}.{expires}"
    return f"{body}.{_mac(body)}"


def device_for(cookie: str | None, email: str, now: float | None = None) -> str | None:
    """The device's nonce when ``cookie`` is a valid, unexpired device cookie for ``email``, else None."""
    if not cookie:
        return None
    for one in cookie.split("~"):
        parts = one.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], _mac(body)):
            continue
        if parts[0] == _who(email) and int(parts[2]) > (now if now is not None else time.time()):
            return parts[1]
    return None


def remember_device(existing: str | None, email: str) -> str:
    """The device cookie's new value: this person added to the people the browser knows (at most 5)."""
    kept = [c for c in (existing or "").split("~") if c and not c.startswith(_who(email) + ".")]
    return "~".join([*kept[-4:], device_cookie(email)])


# -- throttle ------------------------------------------------------------------------------------------

class SigninThrottle:
    """Failed sign-ins over a sliding window, by e-mail address, by source, by (source, address) and by
    trusted device. :meth:`wait` says how long an attempt must wait (0: go ahead)."""

    def __init__(self, *, per_source: int = 100, per_person: int = 10, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_source = per_source
        self.per_person = per_person
        self.window = window
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}
        self._burned: set[str] = set()
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> tuple[int, float]:
        """Failures of ``key`` in the window, and when the oldest of them leaves it."""
        q = self._failures.get(key)
        if not q:
            return 0, 0.0
        while q and q[0] <= now - self.window:
            q.popleft()
        return len(q), (q[0] + self.window - now) if q else 0.0

    def wait(self, source: str, email: str, device: str | None) -> float:
        now = self.clock()
        who = email.strip().lower()
        with self._lock:
            if device is not None and device not in self._burned:
                count, free = self._count(f"d:{device}", now)
                return free if count >= DEVICE_FAILURES else 0.0
            waits = [free for key, limit in ((f"p:{source}|{who}", PAIR_FAILURES), (f"e:{who}", self.per_person),
                                             (f"s:{source}", self.per_source))
                     for count, free in [self._count(key, now)] if count >= limit]
            return max(waits, default=0.0)

    def failed(self, source: str, email: str, device: str | None) -> None:
        now = self.clock()
        who = email.strip().lower()
        with self._lock:
            if len(self._failures) > 100_000:  # a flood of distinct keys: forget the oldest half
                for key in list(self._failures)[:50_000]:
                    del self._failures[key]
            if device is not None and device not in self._burned:
                q = self._failures.setdefault(f"d:{device}", collections.deque())
                q.append(now)
                if len(q) >= DEVICE_FAILURES:
                    self._burned.add(device)  # from now on the browser counts as unknown
                return
            for key in (f"p:{source}|{who}", f"e:{who}", f"s:{source}"):
                self._failures.setdefault(key, collections.deque()).append(now)

    def succeeded(self, source: str, email: str) -> None:
        with self._lock:
            self._failures.pop(f"p:{source}|{email.strip().lower()}", None)
