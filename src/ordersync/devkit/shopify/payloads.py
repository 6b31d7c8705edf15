"""Webhook bodies as Shopify sends them: the REST resource (numeric ``id``, ``admin_graphql_api_id``,
snake_case, amounts as strings), snapshotted when the event happens.

B2B orders carry ``company: {"id", "location_id"}`` (numeric ids of the Company and CompanyLocation), as
Shopify documents the field; the order fixture in ``shared/samples/shopify`` has ``"company": null``
because it is not a B2B order.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

Obj = dict[str, Any]


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE`` (the GraphQL name of a webhook topic)."""
    return topic.replace("/", "_").upper()


def rest_time(value: dt.datetime | None) -> str | None:
    """REST timestamps: ISO 8601 with the shop's offset (the double's shop runs on UTC)."""
    return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else None


def _money(amount: Decimal, currency: str) -> Obj:
    value = {"amount": f"{amount:.2f}", "currency_code": currency}
    return {"shop_money": value, "presentment_money": value}


def order(o: Obj) -> Obj:
    """The ``orders/*`` body of an order as it is now."""
    currency = o["currencyCode"]
    lines = [_line(li, currency) for li in o["_lineItems"]]
    total = sum((li["_price"] * li["currentQuantity"] for li in o["_lineItems"]), Decimal(0))
    entity = o["purchasingEntity"]
    company = None
    if entity and entity["__typename"] == "PurchasingCompany":
        company = {"id": entity["company"]["legacyResourceId"], "location_id": entity["location"]["legacyResourceId"]}
    return {
        "id": o["legacyResourceId"],
        "admin_graphql_api_id": o["id"],
        "name": o["name"],
        "number": o["_number"] - 1000,
        "order_number": o["_number"],
        "created_at": rest_time(o["createdAt"]),
        "updated_at": rest_time(o["updatedAt"]),
        "processed_at": rest_time(o["processedAt"]),
        "cancelled_at": rest_time(o["cancelledAt"]),
        "cancel_reason": o["cancelReason"].lower() if o["cancelReason"] else None,
        "closed_at": rest_time(o["closedAt"]),
        "po_number": o["poNumber"],
        "note": o["note"],
        "currency": currency,
        "presentment_currency": currency,
        "financial_status": (o["displayFinancialStatus"] or "pending").lower(),
        "fulfillment_status": _fulfillment_status(o["displayFulfillmentStatus"]),
        "subtotal_price": f"{total:.2f}",
        "total_price": f"{total:.2f}",
        "current_total_price": f"{total:.2f}",
        "total_price_set": _money(total, currency),
        "total_tax": "0.00",
        "taxes_included": False,
        "test": False,
        "confirmed": True,
        "source_name": "web",
        "tags": "",
        "customer": None,
        "company": company,
        "line_items": lines,
        "fulfillments": [_fulfillment(f) for f in o["_fulfillments"]],
        "refunds": [{"id": r["legacyResourceId"], "admin_graphql_api_id": r["id"],
                     "created_at": rest_time(r["createdAt"]), "note": r["note"]} for r in o["_refunds"]],
    }


def _fulfillment_status(display: str) -> str | None:
    return {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}.get(display)


def _line(li: Obj, currency: str) -> Obj:
    variant = li["variant"]
    return {
        "id": li["legacyResourceId"],
        "admin_graphql_api_id": li["id"],
        "sku": li["sku"],
        "name": li["name"],
        "title": li["title"],
        "variant_title": None,
        "quantity": li["quantity"],
        "current_quantity": li["currentQuantity"],
        "fulfillable_quantity": li["_unfulfilled"],
        "fulfillment_status": "fulfilled" if li["quantity"] and not li["_unfulfilled"] and li["_fulfilled"] else None,
        "price": f"{li['_price']:.2f}",
        "price_set": _money(li["_price"], currency),
        "total_discount": "0.00",
        "variant_id": variant["legacyResourceId"] if variant else None,
        "product_id": variant["product"]["legacyResourceId"] if variant else None,
        "requires_shipping": True,
        "taxable": True,
        "gift_card": False,
        "fulfillment_service": "manual",
        "tax_lines": [],
        "discount_allocations": [],
    }


def _fulfillment(f: Obj) -> Obj:
    tracking = f["_tracking"][0] if f["_tracking"] else {}
    return {
        "id": f["legacyResourceId"], "admin_graphql_api_id": f["id"], "status": f["status"].lower(),
        "created_at": rest_time(f["createdAt"]), "tracking_company": tracking.get("company"),
        "tracking_number": tracking.get("number"), "tracking_url": tracking.get("url"),
        "line_items": [{"id": fl["lineItem"]["legacyResourceId"], "sku": fl["lineItem"]["sku"],
                        "quantity": fl["quantity"]} for fl in f["_lineItems"]],
    }


def inventory_level(level: Obj) -> Obj:
    """The ``inventory_levels/update`` body."""
    item, location = level["item"], level["location"]
    return {
        "inventory_item_id": item["legacyResourceId"],
        "location_id": location["legacyResourceId"],
        "available": level["_q"]["available"],
        "updated_at": rest_time(level["updatedAt"]),
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location['legacyResourceId']}"
                                f"?inventory_item_id={item['legacyResourceId']}",
    }
