"""Reorders: a new order with the lines of a past one, placed through the normal intake.

The new order is an order like any other (validated, priced at today's contract prices, credit-checked
and allocated afresh), so nothing of the past order's prices, dates or allocations is copied: only what
the buyer ordered, as it stands after amendments (cancelled lines are left out), by SKU where the hub
resolved one, and the ship-to address.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from ordersync.canonical.v1 import Order, OrderLine
from ordersync.domain.errors import Conflict
from ordersync.domain.order import OrderRecord
from ordersync.ports.store import OrderRepository

#: external order numbers are at most 120 characters; room is kept for "-R<n>"
_BASE_LENGTH = 108


def reorder_lines(record: OrderRecord) -> tuple[OrderLine, ...]:
    """The past order's lines as they stand, by the SKU the hub resolved (else as the channel sent them)."""
    out = []
    for line in record.order.lines:
        p = record.line(line.line_no)
        if p is None:
            out.append(OrderLine(line_no=line.line_no, sku=line.sku, customer_part_number=line.customer_part_number,
                                 quantity=line.quantity, unit=line.unit))
        elif not p.cancelled:
            out.append(OrderLine(line_no=line.line_no, sku=p.sku, quantity=p.quantity, unit=line.unit))
    if not out:
        raise Conflict(f"order {record.id} has no line left to order again (every line was cancelled)")
    return tuple(out)


def next_reorder_number(orders: OrderRepository, channel: str, original: str) -> str:
    """``<original>-R<n>`` with the next free ``n`` in ``channel`` (business keys are per channel)."""
    base = f"{original[:_BASE_LENGTH]}-R"
    taken = orders.numbers_starting(channel, base)
    pattern = re.compile(re.escape(base) + r"(\d{1,9})")
    numbers = [int(m.group(1)) for n in taken if (m := pattern.fullmatch(n))]
    return f"{base}{max(numbers, default=0) + 1}"


def reorder(record: OrderRecord, *, channel: str, external_order_number: str, placed_at: dt.datetime,
            buyer_po_number: str | None = None, requested_date: dt.date | None = None) -> Order:
    """The new order (not stored: the caller hands it to intake). A new purchase gets its own PO
    number or none; the past order's is not reused."""
    past = record.order
    return Order(id=uuid.uuid4().hex, channel=channel, external_order_number=external_order_number,
                 account_id=past.account_id, buyer_po_number=buyer_po_number, ship_to_id=past.ship_to_id,
                 requested_date=requested_date, currency=past.currency, lines=reorder_lines(record),
                 placed_at=placed_at, notes=f"reorder of {past.external_order_number} ({past.id})")
