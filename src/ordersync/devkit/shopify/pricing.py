"""B2B pricing and terms: price lists, catalogs for company locations, fixed prices, quantity price
breaks, and the payment terms a company location buys on."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError

from .inventory import check_input_size
from .registry import Info, resolves, state, user_error
from .state import Obj, ShopState


def amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as error:
        raise GraphQLError(f"Invalid decimal amount: {value!r}", extensions={"code": "BAD_REQUEST"}) from error


def _money(value: Obj) -> Obj:
    return {"amount": amount(value["amount"]), "currencyCode": value["currencyCode"]}


@resolves("Mutation", "priceListCreate")
def price_list_create(_: Any, info: Info, input: Obj) -> Obj:
    shop = state(info)
    if any(pl["name"] == input["name"] for pl in shop.price_lists):
        return {"priceList": None, "userErrors": [user_error(["input", "name"], "Name has already been taken",
                                                             "TAKEN")]}
    catalog = None
    if input.get("catalogId"):
        catalog = shop.find(input["catalogId"], "CompanyLocationCatalog")
        if catalog is None:
            return {"priceList": None, "userErrors": [user_error(["input", "catalogId"], "Catalog not found",
                                                                 "CATALOG_DOES_NOT_EXIST")]}
    adjustment = input["parent"]["adjustment"]
    price_list = shop.new("PriceList", name=input["name"], currency=input["currency"], catalog=catalog,
                          parent={"adjustment": {"type": adjustment["type"], "value": adjustment["value"]},
                                  "settings": input["parent"].get("settings")},
                          _prices={}, _rules={})
    if catalog is not None:
        catalog["priceList"] = price_list
    shop.price_lists.append(price_list)
    return {"priceList": price_list, "userErrors": []}


@resolves("Mutation", "catalogCreate")
def catalog_create(_: Any, info: Info, input: Obj) -> Obj:
    shop = state(info)
    context = input["context"]
    location_ids = context.get("companyLocationIds") or []
    if context.get("marketIds") or not location_ids:
        return {"catalog": None, "userErrors": [user_error(
            ["input", "context"], "The double supports catalogs for company locations only",
            "UNSUPPORTED_CATALOG_ACTION")]}
    locations = [shop.find(gid, "CompanyLocation") for gid in location_ids]
    errors = [user_error(["input", "context", "companyLocationIds", str(i)], "Company location not found",
                         "COMPANY_LOCATION_NOT_FOUND") for i, loc in enumerate(locations) if loc is None]
    price_list = shop.find(input.get("priceListId"), "PriceList") if input.get("priceListId") else None
    if input.get("priceListId") and price_list is None:
        errors.append(user_error(["input", "priceListId"], "Price list not found", "PRICE_LIST_NOT_FOUND"))
    if errors:
        return {"catalog": None, "userErrors": errors}
    catalog = shop.new("CompanyLocationCatalog", title=input["title"], status=input["status"], priceList=price_list,
                       publication=None, operations=[], _locations=locations)
    if price_list is not None:
        price_list["catalog"] = catalog
    for location in locations:
        assert location is not None
        location["_catalogs"].append(catalog)
    shop.catalogs.append(catalog)
    return {"catalog": catalog, "userErrors": []}


@resolves("Mutation", "priceListFixedPricesAdd")
def fixed_prices_add(_: Any, info: Info, priceListId: str, prices: list[Obj]) -> Obj:
    check_input_size(len(prices))
    shop = state(info)
    price_list = shop.find(priceListId, "PriceList")
    if price_list is None:
        return {"prices": None, "userErrors": [user_error(["priceListId"], "Price list not found",
                                                          "PRICE_LIST_NOT_FOUND")]}
    errors = _price_errors(shop, price_list, prices, "prices", "VARIANT_NOT_FOUND", "PRICE_LIST_CURRENCY_MISMATCH")
    if errors:
        return {"prices": None, "userErrors": errors}
    return {"prices": [_set_price(shop, price_list, p) for p in prices], "userErrors": []}


def _price_errors(shop: ShopState, price_list: Obj, prices: list[Obj], field: str, missing: str,
                  mismatch: str) -> list[Obj]:
    errors = []
    for index, price in enumerate(prices):
        path = [field, str(index)]
        if shop.find(price["variantId"], "ProductVariant") is None:
            errors.append(user_error([*path, "variantId"], "Variant not found", missing))
        elif price["price"]["currencyCode"] != price_list["currency"]:
            errors.append(user_error([*path, "price", "currencyCode"],
                                     f"The currency must be the price list's currency ({price_list['currency']})",
                                     mismatch))
    return errors


def _set_price(shop: ShopState, price_list: Obj, price: Obj) -> Obj:
    variant = shop.require(price["variantId"], "ProductVariant")
    existing = price_list["_prices"].get(variant["id"])
    compare_at = price.get("compareAtPrice")
    entry = {"variant": variant, "price": _money(price["price"]), "originType": "FIXED",
             "compareAtPrice": _money(compare_at) if compare_at else None,
             "_breaks": existing["_breaks"] if existing else []}
    price_list["_prices"][variant["id"]] = entry
    return entry


@resolves("Mutation", "quantityPricingByVariantUpdate")
def quantity_pricing_update(_: Any, info: Info, priceListId: str, input: Obj) -> Obj:
    shop = state(info)
    price_list = shop.find(priceListId, "PriceList")
    if price_list is None:
        return {"productVariants": None, "userErrors": [user_error(["priceListId"], "Price list not found",
                                                                   "PRICE_LIST_NOT_FOUND")]}
    errors = _price_errors(shop, price_list, input["pricesToAdd"], "pricesToAdd", "PRICE_ADD_VARIANT_NOT_FOUND",
                           "PRICE_ADD_CURRENCY_MISMATCH") + _break_errors(shop, price_list, input)
    if errors:
        return {"productVariants": None, "userErrors": errors}
    touched: dict[str, Obj] = {}
    for gid in input["pricesToDeleteByVariantId"]:
        price_list["_prices"].pop(gid, None)
    for price in input["pricesToAdd"]:
        touched[price["variantId"]] = _set_price(shop, price_list, price)["variant"]
    deleted = set(input["quantityPriceBreaksToDelete"])
    by_variant = set(input.get("quantityPriceBreaksToDeleteByVariantId") or [])
    for entry in price_list["_prices"].values():
        entry["_breaks"] = [b for b in entry["_breaks"]
                            if b["id"] not in deleted and b["variant"]["id"] not in by_variant]
    for spec in input["quantityPriceBreaksToAdd"]:
        entry = price_list["_prices"][spec["variantId"]]
        entry["_breaks"] = [b for b in entry["_breaks"] if b["minimumQuantity"] != spec["minimumQuantity"]]
        entry["_breaks"].append(shop.new("QuantityPriceBreak", minimumQuantity=spec["minimumQuantity"],
                                         price=_money(spec["price"]), variant=entry["variant"], priceList=price_list))
        touched[spec["variantId"]] = entry["variant"]
    for gid in input["quantityRulesToDeleteByVariantId"]:
        price_list["_rules"].pop(gid, None)
    for rule in input["quantityRulesToAdd"]:
        price_list["_rules"][rule["variantId"]] = dict(rule)
    return {"productVariants": list(touched.values()), "userErrors": []}


def _break_errors(shop: ShopState, price_list: Obj, input: Obj) -> list[Obj]:
    priced = set(price_list["_prices"]) | {p["variantId"] for p in input["pricesToAdd"]}
    priced -= set(input["pricesToDeleteByVariantId"])
    errors, seen = [], set()
    for index, spec in enumerate(input["quantityPriceBreaksToAdd"]):
        path = ["input", "quantityPriceBreaksToAdd", str(index)]
        key = (spec["variantId"], spec["minimumQuantity"])
        if shop.find(spec["variantId"], "ProductVariant") is None:
            errors.append(user_error(path, "Variant not found", "QUANTITY_PRICE_BREAK_ADD_VARIANT_NOT_FOUND"))
        elif spec["variantId"] not in priced:
            errors.append(user_error(path, "A quantity price break needs a fixed price for the variant on the price "
                                     "list", "QUANTITY_PRICE_BREAK_ADD_PRICE_LIST_PRICE_NOT_FOUND"))
        elif spec["minimumQuantity"] < 2:
            errors.append(user_error([*path, "minimumQuantity"], "The minimum quantity must be at least 2",
                                     "QUANTITY_PRICE_BREAK_ADD_INVALID"))
        elif spec["price"]["currencyCode"] != price_list["currency"]:
            errors.append(user_error(path, "Currency mismatch", "QUANTITY_PRICE_BREAK_ADD_CURRENCY_MISMATCH"))
        elif key in seen:
            errors.append(user_error(path, "Duplicate price break",
                                     "QUANTITY_PRICE_BREAK_ADD_DUPLICATE_INPUT_FOR_VARIANT_AND_MIN"))
        seen.add(key)
    return errors


@resolves("Mutation", "companyLocationUpdate")
def company_location_update(_: Any, info: Info, companyLocationId: str, input: Obj) -> Obj:
    shop = state(info)
    location = shop.find(companyLocationId, "CompanyLocation")
    if location is None:
        return {"companyLocation": None, "userErrors": [user_error(["companyLocationId"],
                                                                   "Resource requested does not exist.",
                                                                   "RESOURCE_NOT_FOUND")]}
    config = input.get("buyerExperienceConfiguration") or {}
    template = None
    if config.get("paymentTermsTemplateId"):
        template = shop.find(config["paymentTermsTemplateId"], "PaymentTermsTemplate")
        if template is None:
            return {"companyLocation": None, "userErrors": [user_error(
                ["input", "buyerExperienceConfiguration", "paymentTermsTemplateId"],
                "Payment terms template does not exist.", "RESOURCE_NOT_FOUND")]}
    for key in ("name", "externalId", "note", "phone", "locale"):
        if key in input:
            location[key] = input[key]
    buyer = location["buyerExperienceConfiguration"]
    if "paymentTermsTemplateId" in config:
        buyer["paymentTermsTemplate"] = template
    for key in ("checkoutToDraft", "editableShippingAddress"):
        if config.get(key) is not None:
            buyer[key] = config[key]
    location["updatedAt"] = shop.now()
    return {"companyLocation": location, "userErrors": []}


def location_price(shop: ShopState, company_location: Obj, variant: Obj, quantity: int) -> Decimal:
    """What a company location pays for ``quantity`` of a variant: its catalog's fixed price (or the best
    quantity break it reaches), else the variant's own price."""
    for catalog in company_location["_catalogs"]:
        price_list = catalog.get("priceList")
        entry = price_list["_prices"].get(variant["id"]) if price_list else None
        if entry is None or catalog["status"] != "ACTIVE":
            continue
        reached = [b for b in entry["_breaks"] if b["minimumQuantity"] <= quantity]
        best = max(reached, key=lambda b: b["minimumQuantity"], default=None)
        return Decimal((best or entry)["price"]["amount"])
    return Decimal(variant["price"])
