"""Resolvers of the read side: root query fields and the computed fields of the objects they reach."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .connections import SortKey, by_id, paginate, search
from .registry import Info, ctx, resolves, state
from .state import Obj


def connection(info: Info, items: Iterable[Obj], key: Callable[[Obj], SortKey] = by_id, **args: Any) -> Obj:
    return paginate(list(items), key, unbounded=ctx(info).bulk, **args)


def _plain_list(items: list[Obj], first: int | None = None) -> list[Obj]:
    return items if first is None else items[:first]


# --- root fields ----------------------------------------------------------------------------------------


@resolves("QueryRoot", "shop")
def shop(_: Any, info: Info) -> Obj:
    return state(info).shop


@resolves("QueryRoot", "node")
def node(_: Any, info: Info, id: str) -> Obj | None:
    return state(info).find(id)


@resolves("QueryRoot", "nodes")
def nodes(_: Any, info: Info, ids: list[str]) -> list[Obj | None]:
    if len(ids) > 250:
        from graphql import GraphQLError

        raise GraphQLError(f"The input array size of {len(ids)} is greater than the maximum allowed of 250.",
                           extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"})
    found = state(info).find
    return [found(gid) for gid in ids]


def _lookup(*typenames: str) -> Callable[..., Obj | None]:
    def resolve(_: Any, info: Info, id: str | None = None, **__: Any) -> Obj | None:
        return state(info).find(id, *typenames)

    return resolve


for _type, _field in (("Order", "order"), ("Company", "company"), ("CompanyLocation", "companyLocation"),
                      ("ProductVariant", "productVariant"), ("Product", "product"),
                      ("InventoryItem", "inventoryItem"), ("InventoryLevel", "inventoryLevel"),
                      ("FulfillmentOrder", "fulfillmentOrder"), ("Fulfillment", "fulfillment"),
                      ("PriceList", "priceList"), ("WebhookSubscription", "webhookSubscription"),
                      ("Refund", "refund")):
    resolves("QueryRoot", _field)(_lookup(_type))
resolves("QueryRoot", "catalog")(_lookup("CompanyLocationCatalog", "MarketCatalog", "AppCatalog"))


@resolves("QueryRoot", "location")
def location(_: Any, info: Info, id: str | None = None) -> Obj | None:
    shop = state(info)
    if id is None:
        return shop.locations[0] if shop.locations else None
    return shop.find(id, "Location")


_ORDER_SORT: dict[str, Callable[[Obj], SortKey]] = {
    "UPDATED_AT": lambda o: (o["updatedAt"], o["legacyResourceId"]),
    "CREATED_AT": lambda o: (o["createdAt"], o["legacyResourceId"]),
    "PROCESSED_AT": lambda o: (o["processedAt"], o["legacyResourceId"]),
    "ORDER_NUMBER": lambda o: (o["_number"], o["legacyResourceId"]),
    "ID": by_id,
}
_ORDER_FILTERS: dict[str, Callable[[Obj], Any]] = {
    "updated_at": lambda o: o["updatedAt"],
    "created_at": lambda o: o["createdAt"],
    "processed_at": lambda o: o["processedAt"],
    "name": lambda o: o["name"].lstrip("#"),
    "id": lambda o: o["legacyResourceId"],
    "po_number": lambda o: o["poNumber"] or "",
    "status": lambda o: "cancelled" if o["cancelledAt"] else ("closed" if o["closed"] else "open"),
    "financial_status": lambda o: o["displayFinancialStatus"].lower(),
    "fulfillment_status": lambda o: o["displayFulfillmentStatus"].lower(),
}


@resolves("QueryRoot", "orders")
def orders(_: Any, info: Info, query: str | None = None, sortKey: str = "ID", **args: Any) -> Obj:
    found = search(state(info).orders, _order_name_query(query), _ORDER_FILTERS)
    return connection(info, found, _ORDER_SORT.get(sortKey, by_id), **args)


def _order_name_query(query: str | None) -> str | None:
    """``name:1001`` and ``name:#1001`` mean the same order."""
    return query.replace("name:#", "name:") if query else query


@resolves("QueryRoot", "companyLocations")
def company_locations(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    fields = {"external_id": lambda c: c["externalId"] or "", "name": lambda c: c["name"],
              "company_id": lambda c: c["company"]["legacyResourceId"]}
    return connection(info, search(state(info).company_locations, query, fields), **args)


@resolves("QueryRoot", "companies")
def companies(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    fields = {"external_id": lambda c: c["externalId"] or "", "name": lambda c: c["name"]}
    return connection(info, search(state(info).companies, query, fields), **args)


@resolves("QueryRoot", "locations")
def locations(_: Any, info: Info, query: str | None = None, includeInactive: bool = False, **args: Any) -> Obj:
    shop = state(info)
    found = [loc for loc in shop.locations if includeInactive or loc["isActive"]]
    return connection(info, search(found, query, {"name": lambda loc: loc["name"]}), **args)


_VARIANT_FILTERS: dict[str, Callable[[Obj], Any]] = {
    "sku": lambda v: v["sku"],
    "id": lambda v: v["legacyResourceId"],
    "product_id": lambda v: v["product"]["legacyResourceId"],
    "title": lambda v: v["product"]["title"],
    "updated_at": lambda v: v["updatedAt"],
}


@resolves("QueryRoot", "productVariants")
def product_variants(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    variants = state(info).variants_by_sku.values()
    return connection(info, search(variants, query, _VARIANT_FILTERS), **args)


@resolves("QueryRoot", "products")
def products(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    fields = {"title": lambda p: p["title"], "sku": lambda p: p["_variants"][0]["sku"]}
    return connection(info, search(state(info).products, query, fields), **args)


@resolves("QueryRoot", "inventoryItems")
def inventory_items(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    return connection(info, search(state(info).items, query, {"sku": lambda i: i["sku"]}), **args)


@resolves("QueryRoot", "paymentTermsTemplates")
def payment_terms_templates(_: Any, info: Info, paymentTermsType: str | None = None) -> list[Obj]:
    return [t for t in state(info).terms_templates if paymentTermsType in (None, t["paymentTermsType"])]


@resolves("QueryRoot", "catalogs")
def catalogs(_: Any, info: Info, query: str | None = None, **args: Any) -> Obj:
    return connection(info, search(state(info).catalogs, query, {"title": lambda c: c["title"]}), **args)


@resolves("QueryRoot", "priceLists")
def price_lists(_: Any, info: Info, **args: Any) -> Obj:
    return connection(info, state(info).price_lists, **args)


# --- computed fields ------------------------------------------------------------------------------------


def _child_connection(type_name: str, field_name: str, key: str) -> None:
    def resolve(source: Obj, info: Info, query: str | None = None, **args: Any) -> Obj:
        return connection(info, source[key], **args)

    resolves(type_name, field_name)(resolve)


for _type, _field, _key in (("Order", "lineItems", "_lineItems"), ("Order", "fulfillmentOrders", "_fulfillmentOrders"),
                            ("FulfillmentOrder", "lineItems", "_lineItems"), ("Product", "variants", "_variants"),
                            ("Company", "locations", "_locations"), ("Company", "contacts", "_contacts"),
                            ("CompanyLocation", "catalogs", "_catalogs"),
                            ("CompanyLocationCatalog", "companyLocations", "_locations"),
                            ("Fulfillment", "fulfillmentLineItems", "_lineItems"),
                            ("Refund", "refundLineItems", "_lineItems")):
    _child_connection(_type, _field, _key)


@resolves("Order", "fulfillments")
def order_fulfillments(source: Obj, info: Info, first: int | None = None) -> list[Obj]:
    return _plain_list(source["_fulfillments"], first)


@resolves("Order", "refunds")
def order_refunds(source: Obj, info: Info, first: int | None = None) -> list[Obj]:
    return _plain_list(source["_refunds"], first)


@resolves("Fulfillment", "trackingInfo")
def tracking_info(source: Obj, info: Info, first: int | None = None) -> list[Obj]:
    return _plain_list(source["_tracking"], first)


@resolves("InventoryItem", "inventoryLevels")
def item_levels(source: Obj, info: Info, query: str | None = None, **args: Any) -> Obj:
    shop = state(info)
    pairs = [(source["id"], loc["id"]) for loc in shop.locations]
    levels = [shop.levels[pair] for pair in pairs if pair in shop.levels]
    return connection(info, levels, **args)


@resolves("InventoryItem", "inventoryLevel")
def item_level(source: Obj, info: Info, locationId: str) -> Obj | None:
    return state(info).level(source["id"], locationId)


@resolves("Location", "inventoryLevels")
def location_levels(source: Obj, info: Info, query: str | None = None, **args: Any) -> Obj:
    shop = state(info)
    pairs = [(item["id"], source["id"]) for item in shop.items]
    levels = [shop.levels[pair] for pair in pairs if pair in shop.levels]
    return connection(info, levels, lambda level: (level["item"]["legacyResourceId"],), **args)


@resolves("Location", "inventoryLevel")
def location_level(source: Obj, info: Info, inventoryItemId: str) -> Obj | None:
    return state(info).level(inventoryItemId, source["id"])


@resolves("InventoryLevel", "quantities")
def quantities(source: Obj, info: Info, names: list[str]) -> list[Obj]:
    return [{"id": f"{source['id']}?name={name}", "name": name, "quantity": source["_q"][name],
             "updatedAt": source["updatedAt"]} for name in names if name in source["_q"]]


@resolves("ProductVariant", "inventoryQuantity")
def inventory_quantity(source: Obj, info: Info) -> int:
    shop = state(info)
    item = source["inventoryItem"]["id"]
    return sum(shop.levels[(item, loc["id"])]["_q"]["available"] for loc in shop.locations)


@resolves("PriceList", "prices")
def price_list_prices(source: Obj, info: Info, originType: str | None = None, **args: Any) -> Obj:
    prices = [p for p in source["_prices"].values() if originType in (None, p["originType"])]
    return connection(info, prices, lambda p: (p["variant"]["legacyResourceId"],), **args)


@resolves("PriceList", "fixedPricesCount")
def fixed_prices_count(source: Obj, info: Info) -> int:
    return len(source["_prices"])


@resolves("PriceListPrice", "quantityPriceBreaks")
def quantity_price_breaks(source: Obj, info: Info, **args: Any) -> Obj:
    return connection(info, source["_breaks"], lambda b: (b["minimumQuantity"], b["legacyResourceId"]), **args)
