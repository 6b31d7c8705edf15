"""Order validation: does the order make sense for this account and this assortment?

Every failure is a reason a buyer can read, per line where it concerns a line. A rejected order
carries all of them, not only the first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.canonical.v1 import Account, AccountStatus, Order, Product


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    line_no: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "line_no": self.line_no}


@dataclass
class ValidationResult:
    reasons: list[Reason] = field(default_factory=list)
    skus: dict[int, str] = field(default_factory=dict)  # line_no -> resolved SKU

    @property
    def ok(self) -> bool:
        return not self.reasons


def validate_order(
    order: Order,
    account: Account | None,
    products: dict[str, Product],
    today: dt.date,
    *,
    max_days_ahead: int = 365,
) -> ValidationResult:
    """Check account, ship-to, date and every line against the assortment."""
    result = ValidationResult()
    if account is None:
        result.reasons.append(Reason("unknown_account", f"account {order.account_id} is not known"))
        return result
    result.reasons.extend(account_terms(account, order.currency, order.ship_to_id))
    if order.requested_date is not None:
        if order.requested_date < today:
            result.reasons.append(Reason("date_in_past", f"requested date {order.requested_date} is in the past"))
        elif order.requested_date > today + dt.timedelta(days=max_days_ahead):
            result.reasons.append(Reason("date_too_far",
                                         f"requested date {order.requested_date} is more than {max_days_ahead} "
                                         "days ahead"))
    by_part = {
        cpn.part_number: p.sku
        for p in products.values()
        for cpn in p.customer_part_numbers
        if cpn.account_id == account.id
    }
    seen: set[int] = set()
    for line in order.lines:
        if line.line_no in seen:
            result.reasons.append(Reason("duplicate_line", f"line number {line.line_no} appears twice", line.line_no))
            continue
        seen.add(line.line_no)
        sku = _resolve(line.sku, line.customer_part_number, products, by_part)
        if sku is None:
            what = line.sku or line.customer_part_number or "(none)"
            result.reasons.append(Reason("unknown_item", f"item {what} is not in the assortment", line.line_no))
            continue
        product = products[sku]
        result.skus[line.line_no] = sku
        result.reasons.extend(_line_rules(line.line_no, line.quantity, line.unit, product))
    return result


def account_terms(account: Account, currency: str | None, ship_to_id: str | None) -> list[Reason]:
    """What the order asks that the account's terms do not allow: an account that is not active, a
    currency it does not trade in, a ship-to that is not one of its addresses. The intake checks these
    when it knows the account (refused at once, 422), the validation always (before the ERP sees them)."""
    reasons = []
    if account.status is not AccountStatus.ACTIVE:
        reasons.append(Reason("account_inactive", f"account {account.id} is {account.status.value}"))
    if currency and account.currency and currency != account.currency:
        reasons.append(Reason("currency_not_traded", f"account {account.id} trades in {account.currency}, "
                                                     f"not {currency}"))
    if ship_to_id and ship_to_id not in {a.id for a in account.ship_to}:
        reasons.append(Reason("unknown_ship_to", f"ship-to {ship_to_id} is not an address of account {account.id}"))
    return reasons


def _resolve(sku: str | None, part: str | None, products: dict[str, Product], by_part: dict[str, str]) -> str | None:
    if sku and sku in products:
        if part and by_part.get(part) not in (None, sku):
            return None  # the two identifiers disagree
        return sku
    if part and part in by_part:
        return by_part[part]
    return None


def line_reasons(product: Product, quantity: Decimal, line_no: int | None = None) -> list[Reason]:
    """What is wrong with ordering ``quantity`` of ``product`` (inactive, below its minimum, not a multiple
    of its pack): the rules an order's line is checked against, for a channel that checks a line before
    the order exists (the portal's cart), so it says what the intake would."""
    return _line_rules(line_no, quantity, None, product)


def _line_rules(line_no: int | None, quantity: Decimal, unit: str | None, product: Product) -> list[Reason]:
    reasons = []
    if not product.active:
        reasons.append(Reason("item_inactive", f"{product.sku} is no longer sold", line_no))
    if unit and unit != product.unit:
        reasons.append(Reason("wrong_unit", f"{product.sku} is sold per {product.unit}, not {unit}", line_no))
    if quantity < product.minimum_quantity:
        reasons.append(Reason("below_minimum",
                              f"{product.sku}: minimum order quantity is {_n(product.minimum_quantity)}", line_no))
    if product.pack_multiple > 0 and quantity % product.pack_multiple != 0:
        reasons.append(Reason("not_pack_multiple",
                              f"{product.sku} is sold in multiples of {_n(product.pack_multiple)}", line_no))
    return reasons


def _n(value: Decimal) -> str:
    return format(value.normalize(), "f")
