from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.domain.pricing import ChannelRule, apply_rules, mismatch

DAY = dt.date(2026, 3, 1)


def price(rules: list[ChannelRule], *, channel: str = "portal", campaign: str | None = None,
          sku: str = "BRG-6204-2RS", category: str = "Bearings") -> tuple[Decimal, list[str]]:
    unit, adjustments = apply_rules(Decimal("10.00"), rules, channel=channel, campaign=campaign, sku=sku,
                                    category=category, account_id="C-1001", on=DAY)
    return unit, [a.rule for a in adjustments]


def test_without_rules_the_contract_price_stands() -> None:
    assert price([]) == (Decimal("10.0000"), [])


def test_a_channel_rule_applies_only_to_its_channel() -> None:
    rule = ChannelRule("portal-2", Decimal(2), channels=frozenset({"portal"}))
    assert price([rule]) == (Decimal("9.8000"), ["portal-2"])
    assert price([rule], channel="edi") == (Decimal("10.0000"), [])


def test_rules_compound_in_order_of_precedence_and_an_exclusive_rule_stops_the_rest() -> None:
    later = ChannelRule("later", Decimal(10), precedence=20)
    first = ChannelRule("first", Decimal(5), precedence=10)
    assert price([later, first]) == (Decimal("8.5500"), ["first", "later"])
    exclusive = ChannelRule("exclusive", Decimal(5), precedence=10, exclusive=True)
    assert price([later, exclusive]) == (Decimal("9.5000"), ["exclusive"])


def test_a_campaign_rule_needs_the_campaign_and_its_dates() -> None:
    spring = ChannelRule("spring", Decimal(10), campaigns=frozenset({"SPRING"}), valid_from=dt.date(2026, 3, 1),
                         valid_until=dt.date(2026, 3, 31), categories=frozenset({"Bearings"}))
    assert price([spring], campaign="SPRING")[1] == ["spring"]
    assert price([spring])[1] == []
    assert price([spring], campaign="SPRING", category="Valves")[1] == []
    expired = ChannelRule("old", Decimal(10), valid_until=dt.date(2026, 2, 28))
    assert price([expired])[1] == []


def test_a_shown_price_within_tolerance_is_no_mismatch() -> None:
    assert not mismatch(Decimal("10.04"), Decimal("10.00"), Decimal("0.5"))
    assert mismatch(Decimal("10.06"), Decimal("10.00"), Decimal("0.5"))
    assert mismatch(Decimal("8.00"), Decimal("10.00"), Decimal("0.5"))
    assert not mismatch(None, Decimal("10.00"), Decimal("0.5"))
