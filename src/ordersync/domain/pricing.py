"""Pricing orchestration: the ERP contract price is the authority; channel and promotional rules apply
on top of it, in order of precedence; a price the channel showed is checked against the result.

Rules compound: each matching rule takes its percentage off the running price. A rule marked
``exclusive`` stops the rules after it. Unit prices keep 4 decimals, like the ERP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from ordersync.canonical.v1 import PriceAdjustment

PRICE_DIGITS = Decimal("0.0001")


@dataclass(frozen=True)
class ChannelRule:
    """A channel or campaign price rule. Empty filters match everything."""

    name: str
    percent_off: Decimal
    description: str = ""
    channels: frozenset[str] = frozenset()
    campaigns: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    precedence: int = 100
    exclusive: bool = False

    def matches(self, *, channel: str, campaign: str | None, sku: str, category: str, account_id: str,
                on: dt.date) -> bool:
        if self.channels and channel not in self.channels:
            return False
        if self.campaigns and campaign not in self.campaigns:
            return False
        if self.skus and sku not in self.skus:
            return False
        if self.categories and category not in self.categories:
            return False
        if self.accounts and account_id not in self.accounts:
            return False
        if self.valid_from and on < self.valid_from:
            return False
        return not (self.valid_until and on > self.valid_until)


@dataclass(frozen=True)
class PricedLine:
    line_no: int
    sku: str
    quantity: Decimal
    contract_unit_price: Decimal
    unit_price: Decimal
    adjustments: tuple[PriceAdjustment, ...] = field(default=())

    @property
    def amount(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)


def apply_rules(
    contract_unit_price: Decimal,
    rules: list[ChannelRule],
    *,
    channel: str,
    campaign: str | None,
    sku: str,
    category: str,
    account_id: str,
    on: dt.date,
) -> tuple[Decimal, tuple[PriceAdjustment, ...]]:
    """The unit price after channel rules, and the adjustments that produced it."""
    price = contract_unit_price
    adjustments: list[PriceAdjustment] = []
    for rule in sorted(rules, key=lambda r: (r.precedence, r.name)):
        if not rule.matches(channel=channel, campaign=campaign, sku=sku, category=category,
                            account_id=account_id, on=on):
            continue
        new_price = (price * (1 - rule.percent_off / 100)).quantize(PRICE_DIGITS, ROUND_HALF_UP)
        adjustments.append(PriceAdjustment(rule=rule.name, description=rule.description or
                                           f"{rule.percent_off}% off", unit_amount=new_price - price))
        price = new_price
        if rule.exclusive:
            break
    return price.quantize(PRICE_DIGITS, ROUND_HALF_UP), tuple(adjustments)


def mismatch(shown: Decimal | None, computed: Decimal, tolerance_percent: Decimal) -> bool:
    """Whether the price the channel showed differs from ours by more than the tolerance."""
    if shown is None:
        return False
    if computed == 0:
        return shown != 0
    return abs(shown - computed) / computed * 100 > tolerance_percent
