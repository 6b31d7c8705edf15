"""Is a re-sent order the same order? A channel that sends an order number again is either retrying
(same content: answered as a duplicate, nothing changes) or believes it is changing the order (different
content). The second must not be answered "duplicate": the channel would think its change landed while
the hub keeps the first version. :func:`differences` names what differs, for the refusal and its case.

What counts is what the buyer asked for: account, PO, ship-to, dates, currency, notes, campaign and the
lines (item, quantity, unit, shown price, date). The hub's own fields (id, received time) do not count,
and numbers compare by value (``10`` and ``10.000`` are the same quantity)."""

from __future__ import annotations

from typing import Any

from ordersync.canonical.v1 import Order, OrderLine

_ORDER_FIELDS = ("account_id", "buyer_po_number", "ship_to_id", "requested_date", "currency", "campaign", "notes")
_LINE_FIELDS = ("sku", "customer_part_number", "quantity", "unit", "unit_price_shown", "requested_date")


def differences(stored: Order, sent: Order) -> list[str]:
    """What ``sent`` changes of ``stored`` (empty: the same order), one readable item per difference,
    e.g. ``"line 2 quantity: 5 -> 7"``, ``"line 3 added (SKU-9 x 2)"``."""
    found = [f"{name}: {_show(getattr(stored, name))} -> {_show(getattr(sent, name))}"
             for name in _ORDER_FIELDS if _norm(getattr(stored, name)) != _norm(getattr(sent, name))]
    before = {line.line_no: line for line in stored.lines}
    after = {line.line_no: line for line in sent.lines}
    for line_no in sorted(before.keys() | after.keys()):
        old, new = before.get(line_no), after.get(line_no)
        if old is None and new is not None:
            found.append(f"line {line_no} added ({_item(new)})")
        elif new is None and old is not None:
            found.append(f"line {line_no} removed ({_item(old)})")
        elif old is not None and new is not None:
            found.extend(f"line {line_no} {name}: {_show(getattr(old, name))} -> {_show(getattr(new, name))}"
                         for name in _LINE_FIELDS if _norm(getattr(old, name)) != _norm(getattr(new, name)))
    return found


def _norm(value: Any) -> Any:
    if value == "":
        return None  # an empty text and no text are the same
    return value


def _show(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    return str(value)


def _item(line: OrderLine) -> str:
    return f"{line.sku or line.customer_part_number or '?'} x {line.quantity}"
