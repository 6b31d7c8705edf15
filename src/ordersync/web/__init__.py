"""Server-rendered pages for people: the operations dashboard (``/ops``, :mod:`ordersync.web.ops`) and what
every page shares, the buyer portal (``/portal``, a sales channel: :mod:`ordersync.channels.portal`) included.

Why server-rendered: the pages are lists, forms and one chart; rendering them where the data is keeps them
fast, needs no front-end build step, and every form posts to the same flows the API uses. Front-end
assets (htmx) are pinned files in ``static/`` fetched once from a package registry and served locally.

This package holds what the pages share: the template environment, the static files directory and the
signed session cookie (:class:`SessionSigner`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def plain(value: object) -> str:
    """A decimal quantity as people write it: 10, 2.5 (never 1E+1 or 10.000)."""
    from decimal import Decimal, InvalidOperation

    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = format(number.normalize(), "f")
    return text


templates.env.filters["plain"] = plain
#: a secret shared by the hub's processes, so that a session signed by one is valid in another; without
#: it each process draws its own and its sessions end with it (one sign-in per restart)
SECRET_ENV = "ORDERSYNC_WEB_SECRET"
_PROCESS_SECRET = secrets.token_bytes(32)


def session_secret() -> bytes:
    configured = os.environ.get(SECRET_ENV)
    return configured.encode() if configured else _PROCESS_SECRET


@dataclass(frozen=True)
class Session:
    """A signed-in person: the API key they signed in with (its id, never the key), when the session
    ends, and the token its forms must carry (CSRF)."""

    key_id: str
    expires: int
    csrf: str


class SessionSigner:
    """Stateless sessions: the cookie holds ``<key id>.<expiry>.<nonce>.<HMAC>``, so it proves who signed
    in without the raw API key ever leaving the sign-in request, and needs no session table. Each
    request still looks the key up, so revoking the key ends its sessions. ``purpose`` keeps a cookie
    of one area (ops) from being accepted by another (portal)."""

    def __init__(self, purpose: str, *, ttl_seconds: int = 8 * 3600, secret: bytes | None = None) -> None:
        self.purpose = purpose
        self.ttl_seconds = ttl_seconds
        self._secret = secret

    def _mac(self, *parts: str) -> str:
        secret = self._secret if self._secret is not None else session_secret()
        digest = hmac.new(secret, "|".join((self.purpose, *parts)).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.ttl_seconds)
        nonce = secrets.token_urlsafe(12)
        body = f"{key_id}.{expires}.{nonce}"
        return f"{body}.{self._mac(body)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie this signer issued and that has not expired, else None."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._mac(body)):
            return None
        expires = int(parts[1])
        if expires <= (now if now is not None else time.time()):
            return None
        return Session(key_id=parts[0], expires=expires, csrf=self._mac("csrf", cookie))

    @staticmethod
    def csrf_ok(expected: str, token: str | None) -> bool:
        """``token`` (from a form) is the session's CSRF token ``expected``; constant time."""
        return bool(token) and hmac.compare_digest(expected, token or "")
