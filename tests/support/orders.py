"""Builders for canonical test data."""

from __future__ import annotations

import uuid
from decimal import Decimal

from ordersync.canonical.v1 import Order, OrderLine


def make_order(external: str | None = None, channel: str = "portal", account: str = "ACME",
               lines: int = 1) -> Order:
    return Order(
        id=uuid.uuid4().hex,
        channel=channel,
        external_order_number=external or f"PO-{uuid.uuid4().hex[:8]}",
        account_id=account,
        lines=tuple(OrderLine(line_no=i + 1, sku=f"SKU-{i}", quantity=Decimal(i + 1)) for i in range(lines)),
    )
