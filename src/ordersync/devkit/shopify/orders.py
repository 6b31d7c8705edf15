"""Orders as the store makes them: a B2B buyer places one, the merchant marks it paid or cancels it; and
the fields of an order computed from its lines (totals, what is left to fulfil).

Each change bumps ``updatedAt`` and queues the webhooks Shopify would send (``orders/create``,
``orders/paid``, ``orders/cancelled``, ``orders/updated`` ...), with the order's body as of that moment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from . import payloads
from .pricing import location_price
from .registry import Info, resolves, state, user_error
from .state import Obj, ShopState, money


def emit(shop: ShopState, order: Obj, *topics: str) -> None:
    """Queue the order's webhooks, its body as of now."""
    wanted = [topic for topic in topics if shop.subscribed(topic)]
    body = payloads.order(order) if wanted else {}
    for topic in wanted:
        shop.emit(topic, body, order["updatedAt"])


def place_order(shop: ShopState, company_location_gid: str, lines: Iterable[tuple[str, int]],
                po_number: str | None = None, paid: bool = False) -> Obj:
    """A B2B buyer's order: priced from the location's catalog, one fulfillment order at the shop's first
    location, stock moved from available to committed there."""
    buyer = shop.require(company_location_gid, "CompanyLocation")
    company = buyer["company"]
    currency = buyer["currency"]
    now = shop.now()
    shop.order_number += 1
    order = shop.new(
        "Order", name=f"#{shop.order_number}", _number=shop.order_number, createdAt=now, updatedAt=now,
        processedAt=now, cancelledAt=None, cancelReason=None, closed=False, closedAt=None, poNumber=po_number,
        note=None, email=None, phone=None, currencyCode=currency, presentmentCurrencyCode=currency, confirmed=True,
        test=False, tags=[], displayFinancialStatus="PAID" if paid else "PENDING",
        displayFulfillmentStatus="UNFULFILLED", customer=None, sourceName="web",
        purchasingEntity={"__typename": "PurchasingCompany", "company": company, "location": buyer,
                          "contact": company.get("mainContact")},
        paymentTerms=None, _lineItems=[], _fulfillmentOrders=[], _fulfillments=[], _refunds=[])
    for sku, quantity in lines:
        order["_lineItems"].append(_line_item(shop, order, buyer, sku, quantity))
    if not order["_lineItems"]:
        raise ValueError("an order needs at least one line")
    _fulfillment_order(shop, order)
    shop.orders.append(order)
    emit(shop, order, "orders/create", *(["orders/paid"] if paid else []))
    return order


def _line_item(shop: ShopState, order: Obj, buyer: Obj, sku: str, quantity: int) -> Obj:
    variant = shop.variants_by_sku.get(sku)
    if variant is None:
        raise KeyError(f"no variant with SKU {sku!r} in the double's shop")
    if quantity <= 0:
        raise ValueError(f"quantity of {sku} must be positive, not {quantity}")
    price = location_price(shop, buyer, variant, quantity)
    title = variant["product"]["title"]
    return shop.new(
        "LineItem", sku=sku, name=title, title=title, variantTitle=None, vendor=None, quantity=quantity,
        currentQuantity=quantity, variant=variant, product=variant["product"], requiresShipping=True,
        taxable=True, isGiftCard=False, merchantEditable=True, restockable=True, canRestock=True,
        originalUnitPriceSet=money(price, order["currencyCode"]),
        discountedUnitPriceSet=money(price, order["currencyCode"]),
        originalUnitPrice=price, discountedUnitPrice=price, _price=price, _fulfilled=0, _unfulfilled=quantity)


def _fulfillment_order(shop: ShopState, order: Obj) -> None:
    location = shop.first_location()
    now = order["createdAt"]
    fulfillment_order = shop.new(
        "FulfillmentOrder", status="OPEN", requestStatus="UNSUBMITTED", order=order, orderId=order["id"],
        orderName=order["name"], orderProcessedAt=now, createdAt=now, updatedAt=now, fulfillAt=now, fulfillBy=None,
        supportedActions=[], fulfillmentHolds=[], destination=None, deliveryMethod=None,
        assignedLocation={"location": location, "name": location["name"], "countryCode": "DE"}, _lineItems=[])
    for line in order["_lineItems"]:
        item = line["variant"]["inventoryItem"]
        fulfillment_order["_lineItems"].append(shop.new(
            "FulfillmentOrderLineItem", sku=line["sku"], remainingQuantity=line["quantity"],
            totalQuantity=line["quantity"], lineItem=line, variant=line["variant"], inventoryItemId=item["id"],
            productTitle=line["title"], variantTitle=None, vendor=None, requiresShipping=True, warnings=[],
            financialSummaries=[], originalUnitPriceSet=line["originalUnitPriceSet"]))
        level = shop.level(item["id"], location["id"])
        if level is not None:
            shop.change(level, "available", -line["quantity"])
            shop.change(level, "committed", line["quantity"])
            shop.level_changed(level)
    order["_fulfillmentOrders"].append(fulfillment_order)


def touch(shop: ShopState, order: Obj) -> None:
    order["updatedAt"] = shop.now()


def edit(shop: ShopState, order: Obj, quantities: dict[str, int]) -> None:
    """The merchant edits the order (Shopify's order editing): a line's quantity lowered or the line
    removed (0); the fulfillment order and committed stock follow; ``orders/edited`` and
    ``orders/updated`` are sent."""
    for line in order["_lineItems"]:
        if line["sku"] not in quantities:
            continue
        new = quantities[line["sku"]]
        if new < 0 or new > line["currentQuantity"]:
            raise ValueError(f"{line['sku']}: an edit here only lowers a quantity ({line['currentQuantity']} -> {new})")
        less = line["currentQuantity"] - new
        line["currentQuantity"] = new
        line["_unfulfilled"] = max(0, line["_unfulfilled"] - less)
        for fulfillment_order in order["_fulfillmentOrders"]:
            for item in fulfillment_order["_lineItems"]:
                if item["lineItem"] is line and less:
                    taken = min(less, item["remainingQuantity"])
                    item["remainingQuantity"] -= taken
                    release(shop, item["inventoryItemId"], fulfillment_order["assignedLocation"]["location"]["id"],
                            taken, True)
    touch(shop, order)
    emit(shop, order, "orders/edited", "orders/updated")


def pay(shop: ShopState, order: Obj) -> None:
    """The buyer pays (or the merchant marks the order paid)."""
    order["displayFinancialStatus"] = "PAID"
    touch(shop, order)
    emit(shop, order, "orders/paid", "orders/updated")


def cancel(shop: ShopState, order: Obj, reason: str = "CUSTOMER", restock: bool = True,
           refund: bool = False) -> list[Obj]:
    """Cancel what is not fulfilled yet: its committed stock goes back to available (``restock``) or is
    written off; userErrors (Shopify's) when the order cannot be cancelled."""
    if order["cancelledAt"] is not None:
        return [user_error(["orderId"], "Order has already been cancelled", "INVALID")]
    if any(f["status"] == "SUCCESS" for f in order["_fulfillments"]):
        return [user_error(["orderId"], "Cannot cancel an order with fulfillments; cancel them first", "INVALID")]
    for fulfillment_order in order["_fulfillmentOrders"]:
        location = fulfillment_order["assignedLocation"]["location"]
        for line in fulfillment_order["_lineItems"]:
            release(shop, line["inventoryItemId"], location["id"], line["remainingQuantity"], restock)
            line["lineItem"]["currentQuantity"] -= line["remainingQuantity"]
            line["lineItem"]["_unfulfilled"] -= line["remainingQuantity"]
            line["remainingQuantity"] = 0
        if fulfillment_order["status"] not in ("CLOSED", "CANCELLED"):
            fulfillment_order["status"] = "CLOSED"
    now = shop.now()
    order.update(cancelledAt=now, cancelReason=reason, closed=True, closedAt=now, updatedAt=now)
    if order["displayFinancialStatus"] == "PAID" and refund:
        order["displayFinancialStatus"] = "REFUNDED"
    elif order["displayFinancialStatus"] in ("PENDING", "AUTHORIZED"):
        order["displayFinancialStatus"] = "VOIDED"
    emit(shop, order, "orders/cancelled", "orders/updated")
    return []


def release(shop: ShopState, item_gid: str, location_gid: str, quantity: int, restock: bool) -> None:
    """Committed stock no longer promised to an order: back to available, or gone (written off)."""
    level = shop.level(item_gid, location_gid)
    if level is None or quantity <= 0:
        return
    shop.change(level, "committed", -quantity)
    if restock:
        shop.change(level, "available", quantity)
    shop.level_changed(level)


@resolves("Mutation", "orderCancel")
def order_cancel(_: Any, info: Info, orderId: str, reason: str, restock: bool, refund: bool | None = None,
                 **__: Any) -> Obj:
    shop = state(info)
    order = shop.find(orderId, "Order")
    errors = [user_error(["orderId"], "Order does not exist", "NOT_FOUND")] if order is None else \
        cancel(shop, order, reason, restock, bool(refund))
    job = None if errors else {"id": f"gid://shopify/Job/{uuid.uuid4()}", "done": False, "query": None}
    return {"job": job, "orderCancelUserErrors": errors,
            "userErrors": [{"field": e["field"], "message": e["message"]} for e in errors]}


@resolves("QueryRoot", "job")
def job(_: Any, info: Info, id: str) -> Obj:
    return {"id": id, "done": True, "query": None}


# --- computed order fields ------------------------------------------------------------------------------


def _total(order: Obj, quantity_key: str) -> Decimal:
    return sum((line["_price"] * line[quantity_key] for line in order["_lineItems"]), Decimal(0))


def _refunded(order: Obj) -> Decimal:
    return sum((r["totalRefundedSet"]["shopMoney"]["amount"] for r in order["_refunds"]), Decimal(0))


def _money_field(type_name: str, field_name: str, compute: Any) -> None:
    def resolve(source: Obj, info: Info, **_: Any) -> Obj:
        return money(compute(source), source.get("currencyCode") or state(info).currency)

    resolves(type_name, field_name)(resolve)


for _field, _compute in (
        ("totalPriceSet", lambda o: _total(o, "quantity")),
        ("originalTotalPriceSet", lambda o: _total(o, "quantity")),
        ("subtotalPriceSet", lambda o: _total(o, "quantity")),
        ("currentTotalPriceSet", lambda o: _total(o, "currentQuantity")),
        ("currentSubtotalPriceSet", lambda o: _total(o, "currentQuantity")),
        ("totalRefundedSet", _refunded),
        ("totalOutstandingSet", lambda o: Decimal(0) if o["displayFinancialStatus"] in ("PAID", "REFUNDED",
                                                                                          "PARTIALLY_REFUNDED")
         else _total(o, "currentQuantity")),
        ("totalTaxSet", lambda o: Decimal(0)), ("currentTotalTaxSet", lambda o: Decimal(0)),
        ("totalShippingPriceSet", lambda o: Decimal(0)), ("totalDiscountsSet", lambda o: Decimal(0))):
    _money_field("Order", _field, _compute)


@resolves("Order", "subtotalLineItemsQuantity")
def subtotal_quantity(source: Obj, info: Info) -> int:
    return sum(line["quantity"] for line in source["_lineItems"])


@resolves("Order", "currentSubtotalLineItemsQuantity")
def current_quantity(source: Obj, info: Info) -> int:
    return sum(line["currentQuantity"] for line in source["_lineItems"])


@resolves("Order", "fullyPaid")
def fully_paid(source: Obj, info: Info) -> bool:
    return bool(source["displayFinancialStatus"] == "PAID")


@resolves("Order", "fulfillable")
def fulfillable(source: Obj, info: Info) -> bool:
    return source["cancelledAt"] is None and any(line["_unfulfilled"] for line in source["_lineItems"])


@resolves("LineItem", "unfulfilledQuantity")
def unfulfilled_quantity(source: Obj, info: Info) -> int:
    return int(source["_unfulfilled"])


@resolves("LineItem", "fulfillableQuantity")
def fulfillable_quantity(source: Obj, info: Info) -> int:
    return int(source["_unfulfilled"])


@resolves("LineItem", "refundableQuantity")
def refundable_quantity(source: Obj, info: Info) -> int:
    return int(source["currentQuantity"])


@resolves("LineItem", "fulfillmentStatus")
def line_fulfillment_status(source: Obj, info: Info) -> str:
    return "fulfilled" if source["_fulfilled"] and not source["_unfulfilled"] else \
        ("partial" if source["_fulfilled"] else "unfulfilled")


@resolves("LineItem", "originalTotalSet")
def line_total(source: Obj, info: Info) -> Obj:
    currency = source["originalUnitPriceSet"]["shopMoney"]["currencyCode"]
    return money(source["_price"] * source["quantity"], currency)


@resolves("LineItem", "discountedTotalSet")
def line_discounted_total(source: Obj, info: Info, **_: Any) -> Obj:
    currency = source["originalUnitPriceSet"]["shopMoney"]["currencyCode"]
    return money(source["_price"] * source["currentQuantity"], currency)
