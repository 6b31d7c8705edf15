"""What the double's shop holds: every object as a dict keyed by its GraphQL field names (so the default
resolver reads it as is), with ``__typename`` for unions and interfaces and ``_``-prefixed keys for what
only the double sees (quantities by name, links, fixed prices).

Seeding here is plain Python: tests and the demo build a shop without speaking GraphQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from . import payloads
from .clock import Clock

Obj = dict[str, Any]

#: the quantity names Shopify keeps per inventory level; on_hand is the sum of the others but incoming
QUANTITY_NAMES = ("available", "committed", "reserved", "damaged", "safety_stock", "quality_control", "incoming",
                  "on_hand")
_ON_HAND_PARTS = ("available", "committed", "reserved", "damaged", "safety_stock", "quality_control")

#: Shopify's payment terms templates (ids as Shopify numbers them)
PAYMENT_TERMS = (
    (1, "Due on receipt", "RECEIPT", None),
    (9, "Due on fulfillment", "FULFILLMENT", None),
    (2, "Net 7", "NET", 7),
    (3, "Net 15", "NET", 15),
    (4, "Net 30", "NET", 30),
    (8, "Net 45", "NET", 45),
    (5, "Net 60", "NET", 60),
    (6, "Net 90", "NET", 90),
    (7, "Fixed", "FIXED", None),
)

PLAN_NAMES = {"standard": "Basic", "advanced": "Advanced", "plus": "Shopify Plus", "enterprise": "Enterprise"}


def money(amount: Decimal, currency: str) -> Obj:
    """A ``MoneyBag`` in one currency (shop and presentment alike)."""
    value = {"amount": amount, "currencyCode": currency}
    return {"shopMoney": value, "presentmentMoney": value}


class ShopState:
    """The shop's objects, id allocation and quantity bookkeeping. Callers hold :attr:`lock`."""

    def __init__(self, shop: str, plan: str, currency: str, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.domain = shop
        self.currency = currency
        self.shop: Obj = {
            "__typename": "Shop", "id": "gid://shopify/Shop/1", "name": shop.split(".")[0].replace("-", " ").title(),
            "myshopifyDomain": shop, "currencyCode": currency, "ianaTimezone": "Etc/UTC",
            "plan": {"displayName": PLAN_NAMES[plan], "publicDisplayName": PLAN_NAMES[plan],
                     "shopifyPlus": plan in ("plus", "enterprise"), "partnerDevelopment": False},
        }
        self._ids = itertools.count(1_000_001)
        self.by_gid: dict[str, Obj] = {}
        self.locations: list[Obj] = []
        self.products: list[Obj] = []
        self.variants_by_sku: dict[str, Obj] = {}
        self.items: list[Obj] = []
        self.levels: dict[tuple[str, str], Obj] = {}
        self.companies: list[Obj] = []
        self.company_locations: list[Obj] = []
        self.catalogs: list[Obj] = []
        self.price_lists: list[Obj] = []
        self.orders: list[Obj] = []
        self.subscriptions: list[Obj] = []
        self.bulk_operations: dict[str, Obj] = {}
        self.idempotency: dict[str, tuple[str, Obj]] = {}
        self.order_number = 1000
        self.emit: Callable[[str, Obj, dt.datetime], None] = lambda topic, body, at: None
        self.terms_templates = [self.register({
            "__typename": "PaymentTermsTemplate", "id": f"gid://shopify/PaymentTermsTemplate/{num}",
            "legacyResourceId": num, "name": name, "translatedName": name, "paymentTermsType": kind,
            "dueInDays": days, "description": name if days is None else f"Within {days} days",
        }) for num, name, kind, days in PAYMENT_TERMS]

    # --- identity -------------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """Shopify timestamps have second precision."""
        return self.clock.now().astimezone(dt.UTC).replace(microsecond=0)

    def new(self, typename: str, **fields: Any) -> Obj:
        """A new registered object with the next numeric id."""
        num = next(self._ids)
        return self.register({"__typename": typename, "id": f"gid://shopify/{typename}/{num}",
                              "legacyResourceId": num, **fields})

    def register(self, obj: Obj) -> Obj:
        self.by_gid[obj["id"]] = obj
        return obj

    def find(self, gid: Any, *typenames: str) -> Obj | None:
        """The object with this gid, if it exists and is one of ``typenames`` (any type when none given)."""
        obj = self.by_gid.get(gid) if isinstance(gid, str) else None
        if obj is None or (typenames and obj["__typename"] not in typenames):
            return None
        return obj

    def require(self, gid: Any, *typenames: str) -> Obj:
        obj = self.find(gid, *typenames)
        if obj is None:
            raise KeyError(f"no {'/'.join(typenames) or 'object'} {gid!r} in the double's shop")
        return obj

    # --- seeding --------------------------------------------------------------------------------------

    def add_location(self, name: str) -> Obj:
        now = self.now()
        location = self.new("Location", name=name, isActive=True, fulfillsOnlineOrders=True, hasInventory=True,
                            createdAt=now, updatedAt=now, isPrimary=not self.locations)
        self.locations.append(location)
        for item in self.items:
            self._stock(item, location, 0)
        return location

    def add_product(self, sku: str, title: str, price: Decimal | str,
                    inventory: Mapping[str, int] | None = None) -> Obj:
        if sku in self.variants_by_sku:
            raise ValueError(f"SKU {sku!r} already exists in the double's shop")
        now = self.now()
        product = self.new("Product", title=title, handle=title.lower().replace(" ", "-"), status="ACTIVE",
                           createdAt=now, updatedAt=now, _variants=[])
        variant = self.new("ProductVariant", sku=sku, title="Default Title", displayName=f"{title} - Default Title",
                           price=Decimal(str(price)), compareAtPrice=None, product=product, createdAt=now,
                           updatedAt=now, availableForSale=True, inventoryPolicy="DENY")
        item = self.new("InventoryItem", sku=sku, tracked=True, requiresShipping=True, variant=variant,
                        createdAt=now, updatedAt=now)
        variant["inventoryItem"] = item
        product["_variants"].append(variant)
        self.products.append(product)
        self.variants_by_sku[sku] = variant
        self.items.append(item)
        wanted = dict(inventory or {})
        for location in self.locations:
            self._stock(item, location, int(wanted.pop(location["id"], 0)))
        if wanted:
            raise KeyError(f"unknown locations {sorted(wanted)}")
        return variant

    def _stock(self, item: Obj, location: Obj, available: int) -> None:
        now = self.now()
        quantities = dict.fromkeys(QUANTITY_NAMES, 0)
        quantities.update(available=available, on_hand=available)
        self.levels[(item["id"], location["id"])] = self.new(
            "InventoryLevel", item=item, location=location, isActive=True, canDeactivate=True,
            createdAt=now, updatedAt=now, _q=quantities)

    def add_company(self, name: str, external_id: str | None = None,
                    locations: Iterable[Mapping[str, Any]] | None = None) -> Obj:
        now = self.now()
        company = self.new("Company", name=name, externalId=external_id, note=None, createdAt=now, updatedAt=now,
                           customerSince=now, _locations=[], _contacts=[])
        contact = self.new("CompanyContact", company=company, isMainContact=True, title=None, locale="en",
                           createdAt=now, updatedAt=now)
        company["_contacts"].append(contact)
        company["mainContact"] = contact
        for spec in list(locations or [{"name": name}]):
            self._company_location(company, spec)
        self.companies.append(company)
        return company

    def _company_location(self, company: Obj, spec: Mapping[str, Any]) -> Obj:
        now = self.now()
        location = self.new(
            "CompanyLocation", name=spec.get("name", company["name"]), externalId=spec.get("external_id"),
            currency=spec.get("currency", self.currency), company=company, locale="en", note=None, phone=None,
            createdAt=now, updatedAt=now, _catalogs=[],
            taxSettings={"taxRegistrationId": spec.get("tax_id"), "taxExempt": False, "taxExemptions": []},
            buyerExperienceConfiguration={"paymentTermsTemplate": None, "checkoutToDraft": False,
                                          "editableShippingAddress": False, "payNowOnly": False, "deposit": None},
        )
        company["_locations"].append(location)
        self.company_locations.append(location)
        return location

    # --- inventory ------------------------------------------------------------------------------------

    def level(self, item_gid: str, location_gid: str) -> Obj | None:
        return self.levels.get((item_gid, location_gid))

    def change(self, level: Obj, name: str, delta: int) -> None:
        """Move one named quantity by ``delta``, keeping on_hand the sum of its parts."""
        quantities = level["_q"]
        if name == "on_hand":
            quantities["available"] += delta
        elif name in _ON_HAND_PARTS:
            quantities["on_hand"] += delta
        quantities[name] += delta
        level["updatedAt"] = level["item"]["updatedAt"] = self.now()

    def subscribed(self, topic: str) -> bool:
        """Whether anyone subscribed to ``topic`` (bodies are built only for events someone receives)."""
        wanted = payloads.topic_enum(topic)
        return any(s["topic"] == wanted for s in self.subscriptions)

    def level_changed(self, level: Obj) -> None:
        """Queue ``inventory_levels/update``."""
        if self.subscribed("inventory_levels/update"):
            self.emit("inventory_levels/update", payloads.inventory_level(level), self.now())

    def first_location(self) -> Obj:
        if not self.locations:
            raise LookupError("the double's shop has no location: add_location() first")
        return self.locations[0]
