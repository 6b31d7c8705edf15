"""A Shopify B2B order (as ``ops.ORDER`` reads it) into the canonical order, and its purchasing company
into an ERP account: by an explicit mapping, then the external id, then the tax id — never a guessed
customer. What cannot be mapped is said, so the caller can open a case instead of taking the order.

Pure functions: no I/O, so every rule is tested without a shop or an ERP.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from ordersync.canonical.v1 import Account, Order, OrderLine


@dataclass(frozen=True)
class Buyer:
    """Who bought, as Shopify says: the company, the location it buys for, the contact."""

    company_id: str
    company_name: str
    company_external_id: str | None
    location_id: str
    location_name: str
    location_external_id: str | None
    tax_id: str | None
    contact_id: str | None

    @classmethod
    def of(cls, order: Mapping[str, Any]) -> Buyer | None:
        entity = order.get("purchasingEntity") or {}
        if entity.get("__typename") != "PurchasingCompany":
            return None
        company, location = entity.get("company") or {}, entity.get("location") or {}
        return cls(company_id=company.get("id", ""), company_name=company.get("name", ""),
                   company_external_id=company.get("externalId") or None, location_id=location.get("id", ""),
                   location_name=location.get("name", ""), location_external_id=location.get("externalId") or None,
                   tax_id=((location.get("taxSettings") or {}).get("taxRegistrationId") or None),
                   contact_id=(entity.get("contact") or {}).get("id"))


@dataclass(frozen=True)
class Match:
    """The ERP account (and ship-to) a buyer is, and how we know; ``account`` None: not matched."""

    account: Account | None
    ship_to_id: str | None = None
    how: str = ""  # mapping, external id, tax id
    reason: str = ""


@dataclass
class Mapped:
    order: Order | None
    buyer: Buyer | None = None
    match: Match | None = None
    problems: list[str] = field(default_factory=list)
    #: why the order is not for the hub at all (a consumer order on a B2B hub): recorded, not a case
    ignored: str = ""


def normalise_tax_id(value: str | None) -> str:
    return re.sub(r"[^0-9A-Z]", "", (value or "").upper())


def match_account(buyer: Buyer, accounts: Sequence[Account], mapping: Mapping[str, str]) -> Match:
    """The buyer's ERP account: configured mapping (location, then company), external id (location,
    then company), tax id. Two accounts with the buyer's tax id is no match (said why)."""
    by_id = {a.id: a for a in accounts}
    for key in (buyer.location_id, buyer.company_id):
        if key and key in mapping:
            account = by_id.get(mapping[key])
            if account is None:
                return Match(None, reason=f"{key} is mapped to {mapping[key]}, which is not an active ERP account")
            return _with_ship_to(account, buyer, "mapping")
    for external in (buyer.location_external_id, buyer.company_external_id):
        if external and external in by_id:
            return _with_ship_to(by_id[external], buyer, "external id")
    wanted = normalise_tax_id(buyer.tax_id)
    if wanted:
        found = [a for a in accounts if normalise_tax_id(getattr(a, "tax_id", None)) == wanted]
        if len(found) == 1:
            return _with_ship_to(found[0], buyer, "tax id")
        if len(found) > 1:
            return Match(None, reason=f"tax id {buyer.tax_id} belongs to {len(found)} ERP accounts "
                                      f"({', '.join(a.id for a in found)}); map the company explicitly")
    said = ", ".join(filter(None, [
        f"external id {buyer.company_external_id}" if buyer.company_external_id else "",
        f"location external id {buyer.location_external_id}" if buyer.location_external_id else "",
        f"tax id {buyer.tax_id}" if buyer.tax_id else ""])) or "no external id and no tax id"
    return Match(None, reason=f"company {buyer.company_name!r} at {buyer.location_name!r} ({said}) matches no "
                              "ERP account")


def _with_ship_to(account: Account, buyer: Buyer, how: str) -> Match:
    """The location's external id names the ship-to when it is one of the account's addresses; otherwise
    the ERP's default delivery address is used (the sale says so)."""
    ship_to = buyer.location_external_id if any(a.id == buyer.location_external_id for a in account.ship_to) \
        else None
    return Match(account, ship_to, how)


def numeric_id(gid: str) -> str:
    """``gid://shopify/Order/5678`` -> ``5678`` (the order number the hub keys Shopify orders by)."""
    return gid.rsplit("/", 1)[-1]


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _amount(line: Mapping[str, Any]) -> Decimal | None:
    money = ((line.get("originalUnitPriceSet") or {}).get("shopMoney") or {}).get("amount")
    try:
        return Decimal(str(money)) if money is not None else None
    except InvalidOperation:
        return None


def to_order(shopify: Mapping[str, Any], *, channel: str, order_id: str, accounts: Sequence[Account],
             mapping: Mapping[str, str]) -> Mapped:
    """The hub order for a Shopify order, or why there is none. Lines are matched by SKU (the variant's
    when the line has none), never by title; a line without any SKU keeps the variant as its part number,
    so the intake rejects that line with a reason instead of the hub guessing a product."""
    buyer = Buyer.of(shopify)
    if buyer is None:
        return Mapped(None, ignored="not a B2B order (no purchasing company)")
    match = match_account(buyer, accounts, mapping)
    if match.account is None:
        return Mapped(None, buyer, match, problems=[match.reason])
    lines: list[OrderLine] = []
    problems: list[str] = []
    for item in (shopify.get("lineItems") or {}).get("nodes") or []:
        quantity = item.get("currentQuantity", item.get("quantity")) or 0
        if quantity <= 0:
            continue  # removed by an edit, or refunded before we saw the order
        sku = (item.get("sku") or (item.get("variant") or {}).get("sku") or "").strip() or None
        part = None if sku else f"shopify-variant-{numeric_id((item.get('variant') or {}).get('id') or item['id'])}"
        lines.append(OrderLine(line_no=len(lines) + 1, sku=sku, customer_part_number=part, quantity=quantity,
                               unit_price_shown=_amount(item)))
    if not lines:
        return Mapped(None, buyer, match, problems=["the order has no line with a quantity to ship"])
    try:
        order = Order(id=order_id, channel=channel, external_order_number=numeric_id(shopify["id"]),
                      account_id=match.account.id, buyer_po_number=shopify.get("poNumber") or None,
                      ship_to_id=match.ship_to_id, currency=shopify.get("currencyCode") or None, lines=tuple(lines),
                      placed_at=parse_time(shopify.get("createdAt")),
                      notes=f"Shopify {shopify.get('name', '')} ({buyer.company_name}, {buyer.location_name})"[:500])
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        return Mapped(None, buyer, match, problems=problems)
    return Mapped(order, buyer, match, problems)
