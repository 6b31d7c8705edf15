"""An order number sent again: the same order (a retry) or a change the hub must not swallow."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.canonical.v1 import Order, OrderLine
from ordersync.domain.order.resend import differences
from ordersync.flows.services.intake import meaning_hash


def order(*lines: OrderLine, **kwargs: object) -> Order:
    base: dict[str, object] = {"id": "o1", "channel": "edi", "external_order_number": "PO-1", "account_id": "C-1"}
    base.update(kwargs)
    return Order(lines=lines, **base)  # type: ignore[arg-type]


L1 = OrderLine(line_no=1, sku="BRG", quantity=Decimal(10))
L2 = OrderLine(line_no=2, customer_part_number="ACME-77", quantity=Decimal(3), unit_price_shown=Decimal("4.50"))


def test_a_retry_with_new_hub_fields_and_numbers_written_otherwise_is_the_same_order() -> None:
    again = order(L1.model_copy(update={"quantity": Decimal("10.000")}), L2, id="o2",
                  placed_at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    assert differences(order(L1, L2), again) == []
    assert differences(order(L1, notes=""), order(L1)) == []


def test_every_change_is_named_field_by_field_and_line_by_line() -> None:
    sent = order(L1.model_copy(update={"quantity": Decimal(12), "requested_date": dt.date(2026, 12, 24)}),
                 OrderLine(line_no=3, sku="FIT", quantity=Decimal(20)),
                 ship_to_id="A2", currency="EUR")
    assert differences(order(L1, L2, ship_to_id="A1"), sent) == [
        "ship_to_id: A1 -> A2", "currency: (none) -> EUR",
        "line 1 quantity: 10 -> 12", "line 1 requested_date: (none) -> 2026-12-24",
        "line 2 removed (ACME-77 x 3)", "line 3 added (FIT x 20)"]


def test_the_meaning_hash_ignores_key_order_and_how_numbers_are_written() -> None:
    assert meaning_hash({"a": 1, "q": Decimal("10.0"), "d": dt.date(2026, 1, 2)}) == \
        meaning_hash({"d": dt.date(2026, 1, 2), "q": Decimal("10"), "a": 1})
    assert meaning_hash({"q": Decimal("10")}) != meaning_hash({"q": Decimal("11")})
