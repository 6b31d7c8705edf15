"""A Shopify B2B order into the canonical order: the purchasing company to its ERP account (mapping,
external id, tax id — never a guess), lines by SKU, the buyer's shown price kept for the price check."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ordersync.canonical.v1 import Account, Address
from ordersync.channels.shopify.orders import Buyer, match_account, normalise_tax_id, numeric_id, to_order

ACCOUNTS = [
    Account(id="C-1001", name="Rheinland Industrial Supply GmbH", currency="EUR",
            ship_to=(Address(id="RIS-KOE", name="Köln"), Address(id="RIS-DUS", name="Düsseldorf"))),
    Account(id="C-1002", name="Alpen Field Service GmbH", currency="EUR"),
]


def with_tax_ids(accounts: list[Account], ids: dict[str, str]) -> list[Account]:
    """The accounts as an ERP that knows tax ids gives them (the field is optional in v1)."""
    if "tax_id" not in Account.model_fields:
        return [_Taxed(a, ids.get(a.id)) for a in accounts]  # type: ignore[misc]
    return [a.model_copy(update={"tax_id": ids.get(a.id)}) for a in accounts]


class _Taxed:
    def __init__(self, account: Account, tax_id: str | None) -> None:
        self._a, self.tax_id = account, tax_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._a, name)


def shopify_order(*, company_external: str | None = "C-1001", location_external: str | None = None,
                  tax_id: str | None = None, lines: list[dict[str, Any]] | None = None,
                  entity: str = "PurchasingCompany") -> dict[str, Any]:
    return {
        "id": "gid://shopify/Order/5600123", "name": "#1042", "createdAt": "2026-12-05T09:30:00Z",
        "updatedAt": "2026-12-05T09:31:00Z", "cancelledAt": None, "poNumber": "PO-77", "currencyCode": "EUR",
        "displayFinancialStatus": "PENDING",
        "purchasingEntity": {
            "__typename": entity,
            "company": {"id": "gid://shopify/Company/11", "externalId": company_external, "name": "Rheinland"},
            "location": {"id": "gid://shopify/CompanyLocation/21", "externalId": location_external, "name": "Köln",
                         "taxSettings": {"taxRegistrationId": tax_id}},
            "contact": {"id": "gid://shopify/CompanyContact/31"},
        } if entity == "PurchasingCompany" else {"__typename": "Customer", "id": "gid://shopify/Customer/9"},
        "lineItems": {"nodes": lines if lines is not None else [
            {"id": "gid://shopify/LineItem/1", "sku": "BRG-6204-2RS", "quantity": 20, "currentQuantity": 20,
             "variant": {"id": "gid://shopify/ProductVariant/7", "sku": "BRG-6204-2RS"},
             "originalUnitPriceSet": {"shopMoney": {"amount": "3.84", "currencyCode": "EUR"}}},
        ]},
    }


def test_an_order_of_a_company_with_the_accounts_external_id_becomes_its_hub_order() -> None:
    mapped = to_order(shopify_order(location_external="RIS-KOE"), channel="shopify-kestrel", order_id="o1",
                      accounts=ACCOUNTS, mapping={})
    assert mapped.order is not None and mapped.match is not None
    order = mapped.order
    assert (order.account_id, order.channel, order.external_order_number) == ("C-1001", "shopify-kestrel", "5600123")
    assert order.ship_to_id == "RIS-KOE" and order.buyer_po_number == "PO-77" and order.currency == "EUR"
    assert order.placed_at == dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
    assert [(line.sku, line.quantity, line.unit_price_shown) for line in order.lines] == \
        [("BRG-6204-2RS", Decimal(20), Decimal("3.84"))]
    assert mapped.match.how == "external id"


def test_a_location_external_id_that_is_not_an_address_of_the_account_leaves_the_erp_default() -> None:
    mapped = to_order(shopify_order(location_external="ELSEWHERE"), channel="s", order_id="o1", accounts=ACCOUNTS,
                      mapping={})
    assert mapped.order is not None and mapped.order.ship_to_id is None


def test_the_configured_mapping_wins_over_the_external_id() -> None:
    match = match_account(Buyer.of(shopify_order())  # type: ignore[arg-type]
                          , ACCOUNTS, {"gid://shopify/CompanyLocation/21": "C-1002"})
    assert match.account is not None and match.account.id == "C-1002" and match.how == "mapping"


def test_a_mapping_to_an_unknown_account_is_no_match_and_says_so() -> None:
    match = match_account(Buyer.of(shopify_order())  # type: ignore[arg-type]
                          , ACCOUNTS, {"gid://shopify/Company/11": "C-9999"})
    assert match.account is None and "C-9999" in match.reason


def test_the_tax_id_matches_when_there_is_no_external_id_whatever_its_spelling() -> None:
    accounts = with_tax_ids(ACCOUNTS, {"C-1002": "DE 123 456 788"})
    mapped = to_order(shopify_order(company_external=None, tax_id="de123456788"), channel="s", order_id="o1",
                      accounts=accounts, mapping={})
    assert mapped.order is not None and mapped.order.account_id == "C-1002"
    assert mapped.match is not None and mapped.match.how == "tax id"
    assert normalise_tax_id("de 123.456-788") == "DE123456788"


def test_a_tax_id_two_accounts_share_is_no_match() -> None:
    accounts = with_tax_ids(ACCOUNTS, {"C-1001": "DE123456788", "C-1002": "DE123456788"})
    mapped = to_order(shopify_order(company_external=None, tax_id="DE123456788"), channel="s", order_id="o1",
                      accounts=accounts, mapping={})
    assert mapped.order is None and "2 ERP accounts" in mapped.problems[0]


def test_a_company_nothing_matches_is_never_guessed() -> None:
    mapped = to_order(shopify_order(company_external="SOMEONE", tax_id="FR999"), channel="s", order_id="o1",
                      accounts=ACCOUNTS, mapping={})
    assert mapped.order is None and mapped.match is not None and mapped.match.account is None
    assert "matches no ERP account" in mapped.problems[0] and "FR999" in mapped.problems[0]


def test_a_consumer_order_is_ignored_with_its_reason() -> None:
    mapped = to_order(shopify_order(entity="Customer"), channel="s", order_id="o1", accounts=ACCOUNTS, mapping={})
    assert mapped.order is None and mapped.ignored.startswith("not a B2B order")


def test_lines_go_by_sku_removed_lines_are_left_and_a_line_without_sku_keeps_its_variant() -> None:
    lines = [
        {"id": "gid://shopify/LineItem/1", "sku": None, "quantity": 5, "currentQuantity": 5,
         "variant": {"id": "gid://shopify/ProductVariant/7", "sku": "VLV-SV-24V-G12"},
         "originalUnitPriceSet": {"shopMoney": {"amount": "41.00"}}},
        {"id": "gid://shopify/LineItem/2", "sku": "BRG-6205-2RS", "quantity": 4, "currentQuantity": 0,
         "variant": None, "originalUnitPriceSet": None},
        {"id": "gid://shopify/LineItem/3", "sku": "", "quantity": 2, "currentQuantity": 2,
         "variant": {"id": "gid://shopify/ProductVariant/99", "sku": None}, "originalUnitPriceSet": None},
    ]
    mapped = to_order(shopify_order(lines=lines), channel="s", order_id="o1", accounts=ACCOUNTS, mapping={})
    assert mapped.order is not None
    assert [(x.line_no, x.sku, x.customer_part_number, x.quantity) for x in mapped.order.lines] == [
        (1, "VLV-SV-24V-G12", None, Decimal(5)), (2, None, "shopify-variant-99", Decimal(2))]


def test_an_order_with_nothing_left_to_ship_is_refused_with_a_reason() -> None:
    lines = [{"id": "gid://shopify/LineItem/1", "sku": "X", "quantity": 3, "currentQuantity": 0}]
    mapped = to_order(shopify_order(lines=lines), channel="s", order_id="o1", accounts=ACCOUNTS, mapping={})
    assert mapped.order is None and mapped.problems == ["the order has no line with a quantity to ship"]


def test_numeric_id() -> None:
    assert numeric_id("gid://shopify/Order/5600123") == "5600123"
