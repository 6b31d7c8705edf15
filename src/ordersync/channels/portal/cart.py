"""The buyer portal's cart: a signed cookie, and form quantities.

Why a cookie and not a table: the cart is small (at most 50 lines), belongs to one browser, and the hub
may serve from several processes; signed with the web secret (:func:`ordersync.web.session_secret`) it
works in any of them and cannot be forged. It is bound to the API key it was filled under, so another
account's session never sees it.

Why the cart checks its lines with the intake's own rules (:func:`ordersync.domain.validation.line_reasons`):
a minimum quantity or a pack size the buyer only learns after checkout costs them the order; checked
here, the cart keeps every line and says what to change on each, and the intake never sees a cart that it
would reject for them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from ordersync.domain.validation import line_reasons
from ordersync.runtime.readmodel import product_of
from ordersync.web import session_secret

CART_COOKIE = "ordersync_cart"
MAX_CART_LINES = 50


def _sign(payload: str) -> str:
    return hmac.new(session_secret(), f"portal-cart|{payload}".encode(), hashlib.sha256).hexdigest()


@dataclass
class Cart:
    """What the buyer means to order: SKU and quantity, in the order added. ``nonce`` changes with every
    change of the cart: it makes the idempotency key of placing *this* cart (a double click or a resent
    form places it once)."""

    key_id: str
    lines: list[tuple[str, Decimal]] = field(default_factory=list)
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def add(self, sku: str, quantity: Decimal) -> None:
        for i, (have, qty) in enumerate(self.lines):
            if have == sku:
                self.lines[i] = (sku, qty + quantity)
                break
        else:
            if len(self.lines) >= MAX_CART_LINES:
                raise ValueError(f"a cart holds at most {MAX_CART_LINES} lines")
            self.lines.append((sku, quantity))
        self.nonce = secrets.token_hex(8)

    def set(self, quantities: dict[str, Decimal]) -> None:
        """New quantities by SKU; 0 removes the line."""
        self.lines = [(sku, quantities.get(sku, qty)) for sku, qty in self.lines if quantities.get(sku, qty) > 0]
        self.nonce = secrets.token_hex(8)


def cart_cookie(cart: Cart) -> str:
    raw = json.dumps({"k": cart.key_id, "n": cart.nonce, "l": [[s, str(q)] for s, q in cart.lines]},
                     separators=(",", ":"))
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{payload}.{_sign(payload)}"


def read_cart(cookie: str | None, key_id: str) -> Cart:
    """The cart of this session's key; an empty one when the cookie is missing, forged or another key's."""
    if not cookie or "." not in cookie:
        return Cart(key_id)
    payload, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(payload)):
        return Cart(key_id)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if data["k"] != key_id:
            return Cart(key_id)
        lines = [(str(s), Decimal(q)) for s, q in data["l"]][:MAX_CART_LINES]
        return Cart(key_id, lines, str(data["n"]))
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return Cart(key_id)


def quantity(raw: object, *, allow_zero: bool = False) -> Decimal | None:
    """A quantity from a form field (positive, or 0 with ``allow_zero``; at most 1e9, 6 decimals), else None."""
    try:
        q = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    if not q.is_finite() or q < 0 or (q == 0 and not allow_zero) or q > Decimal("1e9"):
        return None
    if q != q.quantize(Decimal("0.000001")):
        return None
    return q.quantize(Decimal(1)) if q == q.to_integral_value() else q.normalize()


def line_problems(item: dict[str, Any], quantity: Decimal, account_id: str) -> list[str]:
    """What the intake would refuse about ordering ``quantity`` of the catalog ``item`` (its minimum, its
    pack size), as sentences for the buyer; none when the line is fine."""
    return [r.message for r in line_reasons(product_of(item, account_id), quantity)]


def nearest_allowed(item: dict[str, Any], quantity: Decimal) -> Decimal:
    """The smallest quantity at least ``quantity`` that the item's minimum and pack size allow."""
    minimum, pack = Decimal(item["minimum_quantity"]), Decimal(item["pack_multiple"])
    wanted = max(quantity, minimum)
    if pack > 0:
        wanted = (wanted / pack).to_integral_value(rounding=ROUND_CEILING) * pack
    return wanted.quantize(Decimal(1)) if wanted == wanted.to_integral_value() else wanted.normalize()


def first_allowed(item: dict[str, Any]) -> Decimal:
    """The quantity the catalog proposes: the smallest one the item can be ordered in."""
    return nearest_allowed(item, Decimal(0))
