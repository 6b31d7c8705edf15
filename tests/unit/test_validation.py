from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.canonical.v1 import Account, AccountStatus, Address, CustomerPartNumber, Order, OrderLine, Product
from ordersync.domain.validation import validate_order

TODAY = dt.date(2026, 3, 2)
ACCOUNT = Account(id="C-1", name="Acme", ship_to=(Address(id="A1", region="north"),))
PRODUCTS = {
    "BRG": Product(sku="BRG", name="Bearing", customer_part_numbers=(
        CustomerPartNumber(account_id="C-1", part_number="ACME-77"), CustomerPartNumber(account_id="C-2",
                                                                                          part_number="OTHER-1"))),
    "FIT": Product(sku="FIT", name="Fitting", minimum_quantity=Decimal(20), pack_multiple=Decimal(10)),
    "OLD": Product(sku="OLD", name="Old", active=False),
    "HOS": Product(sku="HOS", name="Hose", unit="m"),
}


def order(*lines: OrderLine, **kwargs: object) -> Order:
    base: dict[str, object] = {"id": "o", "channel": "portal", "external_order_number": "1", "account_id": "C-1",
                               "ship_to_id": "A1"}
    base.update(kwargs)
    return Order(lines=lines, **base)  # type: ignore[arg-type]


def codes(o: Order, account: Account | None = ACCOUNT) -> list[tuple[int | None, str]]:
    return [(r.line_no, r.code) for r in validate_order(o, account, PRODUCTS, TODAY).reasons]


def test_a_good_order_resolves_skus_and_customer_part_numbers() -> None:
    result = validate_order(order(OrderLine(line_no=1, sku="BRG", quantity=Decimal(2)),
                                  OrderLine(line_no=2, customer_part_number="ACME-77", quantity=Decimal(1))),
                            ACCOUNT, PRODUCTS, TODAY)
    assert result.ok and result.skus == {1: "BRG", 2: "BRG"}


def test_every_problem_is_reported_per_line() -> None:
    o = order(
        OrderLine(line_no=1, sku="NOPE", quantity=Decimal(1)),
        OrderLine(line_no=2, customer_part_number="OTHER-1", quantity=Decimal(1)),  # another account's number
        OrderLine(line_no=3, sku="FIT", quantity=Decimal(15)),
        OrderLine(line_no=4, sku="OLD", quantity=Decimal(1)),
        OrderLine(line_no=5, sku="HOS", quantity=Decimal(3), unit="unit"),
    )
    assert codes(o) == [(1, "unknown_item"), (2, "unknown_item"), (3, "below_minimum"), (3, "not_pack_multiple"),
                        (4, "item_inactive"), (5, "wrong_unit")]


def test_account_ship_to_and_date_are_checked() -> None:
    line = OrderLine(line_no=1, sku="BRG", quantity=Decimal(1))
    assert codes(order(line), None) == [(None, "unknown_account")]
    blocked = ACCOUNT.model_copy(update={"status": AccountStatus.BLOCKED})
    assert codes(order(line), blocked) == [(None, "account_inactive")]
    assert codes(order(line, ship_to_id="ELSEWHERE")) == [(None, "unknown_ship_to")]
    assert codes(order(line, requested_date=TODAY - dt.timedelta(days=1))) == [(None, "date_in_past")]
    assert codes(order(line, requested_date=TODAY + dt.timedelta(days=400))) == [(None, "date_too_far")]


def test_conflicting_sku_and_part_number_are_refused() -> None:
    o = order(OrderLine(line_no=1, sku="FIT", customer_part_number="ACME-77", quantity=Decimal(20)))
    assert codes(o) == [(1, "unknown_item")]


def test_an_order_in_a_currency_the_account_does_not_trade_in_is_rejected_before_the_erp() -> None:
    line = OrderLine(line_no=1, sku="BRG", quantity=Decimal(2))
    assert codes(order(line, currency="EUR"), ACCOUNT.model_copy(update={"currency": "EUR"})) == []
    assert codes(order(line), ACCOUNT.model_copy(update={"currency": "EUR"})) == []  # none given: the account's
    result = validate_order(order(line, currency="USD"), ACCOUNT.model_copy(update={"currency": "EUR"}), PRODUCTS,
                            TODAY)
    assert [(r.code, r.message) for r in result.reasons] == [("currency_not_traded", "account C-1 trades in EUR, "
                                                                                     "not USD")]
