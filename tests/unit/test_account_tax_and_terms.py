"""The tax ids and payment terms of the demo accounts: numbers Tryton accepts, terms read as Tryton has them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.adapters.erp.tryton.directory import _net_days
from ordersync.devkit import demo_data

CUSTOMERS = [c for prof in demo_data.PROFILES.values() for c in prof["customers"]]


def de_vat_valid(number: str) -> bool:
    """python-stdnum's check of a German VAT number (``stdnum.de.vat``): DE, 9 digits, no leading 0, and
    the ISO 7064 Mod 11,10 check digit."""
    if not re.fullmatch(r"DE[1-9]\d{8}", number):
        return False
    product = 10
    for digit in number[2:-1]:
        product = (2 * ((int(digit) + product) % 10 or 10)) % 11
    return (11 - product) % 10 == int(number[-1])


def test_the_check_digit_check_is_the_iso_7064_one() -> None:
    assert de_vat_valid("DE136695976")  # python-stdnum's own example
    assert not de_vat_valid("DE136695978") and not de_vat_valid("DE036695976")


@pytest.mark.parametrize("customer", CUSTOMERS, ids=lambda c: c["code"])
def test_every_demo_customer_has_a_valid_tax_id_of_a_tax_identifier_type(customer: demo_data.Customer) -> None:
    if customer["addresses"][0]["country"] == "DE":
        assert customer["tax_id_type"] == "eu_vat" and de_vat_valid(customer["tax_id"])
    else:  # the acquired US company's customers: an EIN as Tryton formats it (NN-NNNNNNN)
        assert customer["tax_id_type"] == "us_ein" and re.fullmatch(r"\d{2}-\d{7}", customer["tax_id"])


def test_tax_ids_are_unique() -> None:
    ids = [c["tax_id"] for c in CUSTOMERS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("key", sorted(demo_data.PROFILES))
def test_every_customer_payment_term_is_a_seeded_term(key: str) -> None:
    prof = demo_data.profile(key)
    names = {t["name"] for t in prof["payment_terms"]}
    assert {c["payment_term"] for c in prof["customers"]} <= names


def test_the_memory_twin_gives_the_seeded_tax_id_and_terms() -> None:
    account = MemoryErp("acquired").account("C-2002")
    assert (account.tax_id, account.payment_terms, account.payment_terms_days) == ("75-2960417", "Net 45", 45)


def _term(*lines: dict[str, Any]) -> dict[str, Any]:
    return {"id": 1, "name": "t", "lines.": list(lines)}


def _delta(**values: Any) -> dict[str, Any]:
    return {"days": 0, "weeks": 0, "months": 0, "day": None, "month": None, "weekday": None} | values


@pytest.mark.parametrize(
    ("term", "days"),
    [
        (_term({"type": "remainder", "relativedeltas.": [_delta(days=30)]}), 30),
        (_term({"type": "remainder", "relativedeltas.": [_delta(weeks=2, days=1)]}), 15),
        (_term({"type": "remainder", "relativedeltas.": []}), 0),  # due on the invoice date
        (_term({"type": "remainder", "relativedeltas.": [_delta(months=1)]}), None),
        (_term({"type": "remainder", "relativedeltas.": [_delta(days=30, day=31)]}), None),  # end of month
        (_term({"type": "percent", "relativedeltas.": []}, {"type": "remainder", "relativedeltas.": []}), None),
        (_term(), None),
    ],
)
def test_net_days_only_for_the_whole_amount_after_a_number_of_days(term: dict[str, Any], days: int | None) -> None:
    assert _net_days(term) == days
