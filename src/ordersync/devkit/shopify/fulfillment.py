"""After the order: shipping it (``fulfillmentCreate`` against its fulfillment orders) and refunding it
(``refundCreate``), with the stock and status changes Shopify makes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .inventory import replay, required_key
from .orders import emit, release, touch
from .pricing import amount
from .registry import Info, resolves, state, user_error
from .state import Obj, ShopState, money

Plan = list[tuple[Obj, Obj, int]]  # (fulfillment order, its line, quantity)


@resolves("Mutation", "fulfillmentCreate")
def fulfillment_create(_: Any, info: Info, fulfillment: Obj, message: str | None = None) -> Obj:
    shop = state(info)
    plan, errors = _plan(shop, fulfillment["lineItemsByFulfillmentOrder"])
    if errors:
        return {"fulfillment": None, "userErrors": errors}
    return {"fulfillment": fulfil(shop, plan, fulfillment.get("trackingInfo")), "userErrors": []}


def _plan(shop: ShopState, groups: list[Obj]) -> tuple[Plan, list[Obj]]:
    plan: Plan = []
    errors: list[Obj] = []
    orders: set[str] = set()
    for index, group in enumerate(groups):
        path = ["fulfillment", "lineItemsByFulfillmentOrder", str(index)]
        fulfillment_order = shop.find(group["fulfillmentOrderId"], "FulfillmentOrder")
        if fulfillment_order is None:
            errors.append(user_error([*path, "fulfillmentOrderId"], "Fulfillment order does not exist."))
            continue
        orders.add(fulfillment_order["orderId"])
        if fulfillment_order["status"] in ("CLOSED", "CANCELLED") or fulfillment_order["order"]["cancelledAt"]:
            errors.append(user_error([*path, "fulfillmentOrderId"], f"Fulfillment order {fulfillment_order['id']} "
                                     f"has an unfulfillable status= {fulfillment_order['status'].lower()}."))
            continue
        plan += _lines(fulfillment_order, group.get("fulfillmentOrderLineItems"), path, errors)
    if len(orders) > 1:
        errors.append(user_error(["fulfillment"], "All fulfillment orders must belong to the same order."))
    if not errors and not plan:
        errors.append(user_error(["fulfillment"], "Nothing to fulfill: every line item is already fulfilled."))
    return plan, errors


def _lines(fulfillment_order: Obj, wanted: list[Obj] | None, path: list[str], errors: list[Obj]) -> Plan:
    lines = {line["id"]: line for line in fulfillment_order["_lineItems"]}
    if wanted is None:  # all that remains
        return [(fulfillment_order, line, line["remainingQuantity"]) for line in lines.values()
                if line["remainingQuantity"] > 0]
    plan: Plan = []
    for index, spec in enumerate(wanted):
        line = lines.get(spec["id"])
        where = [*path, "fulfillmentOrderLineItems", str(index)]
        if line is None:
            errors.append(user_error([*where, "id"], "Fulfillment order line item does not exist."))
        elif not 0 < spec["quantity"] <= line["remainingQuantity"]:
            errors.append(user_error([*where, "quantity"], "Invalid fulfillment order line item quantity requested: "
                                     f"{spec['quantity']}, {line['remainingQuantity']} remaining."))
        else:
            plan.append((fulfillment_order, line, spec["quantity"]))
    return plan


def fulfil(shop: ShopState, plan: Plan, tracking: Obj | None) -> Obj:
    """Ship the planned quantities: remaining goes down, committed stock leaves the building."""
    order = plan[0][0]["order"]
    now = shop.now()
    fulfillment = shop.new(
        "Fulfillment", status="SUCCESS", displayStatus="FULFILLED",
        name=f"{order['name']}-F{len(order['_fulfillments']) + 1}",
        createdAt=now, updatedAt=now, order=order, location=plan[0][0]["assignedLocation"]["location"],
        requiresShipping=True, totalQuantity=sum(q for _, _, q in plan), deliveredAt=None, inTransitAt=None,
        estimatedDeliveryAt=None, _tracking=_tracking(tracking), _lineItems=[])
    for fulfillment_order, line, quantity in plan:
        line["remainingQuantity"] -= quantity
        order_line = line["lineItem"]
        order_line["_fulfilled"] += quantity
        order_line["_unfulfilled"] -= quantity
        location = fulfillment_order["assignedLocation"]["location"]
        release(shop, line["inventoryItemId"], location["id"], quantity, restock=False)
        fulfillment["_lineItems"].append(shop.new(
            "FulfillmentLineItem", lineItem=order_line, quantity=quantity,
            originalTotalSet=money(order_line["_price"] * quantity, order["currencyCode"]),
            discountedTotalSet=money(order_line["_price"] * quantity, order["currencyCode"])))
    for fulfillment_order in {id(p[0]): p[0] for p in plan}.values():
        remaining = any(line["remainingQuantity"] for line in fulfillment_order["_lineItems"])
        fulfillment_order["status"] = "IN_PROGRESS" if remaining else "CLOSED"
        fulfillment_order["updatedAt"] = now
    order["_fulfillments"].append(fulfillment)
    done = not any(line["_unfulfilled"] for line in order["_lineItems"])
    order["displayFulfillmentStatus"] = "FULFILLED" if done else "PARTIALLY_FULFILLED"
    touch(shop, order)
    emit(shop, order, "orders/fulfilled" if done else "orders/partially_fulfilled", "orders/updated")
    return fulfillment


def _tracking(tracking: Obj | None) -> list[Obj]:
    if not tracking:
        return []
    numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else [])
    urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
    count = max(len(numbers), len(urls), 1)
    return [{"company": tracking.get("company"), "number": numbers[i] if i < len(numbers) else None,
             "url": urls[i] if i < len(urls) else None} for i in range(count)]


@resolves("Mutation", "refundCreate")
def refund_create(_: Any, info: Info, input: Obj) -> Obj:
    key = required_key(info)
    shop = state(info)
    return replay(shop, "refundCreate", key, input, lambda: _refund(shop, input),
                  lambda error: {"refund": None, "order": None,
                                 "userErrors": [{"field": error["field"], "message": error["message"]}]})


def _refund(shop: ShopState, input: Obj) -> Obj:
    order = shop.find(input["orderId"], "Order")
    if order is None:
        return {"refund": None, "order": None, "userErrors": [user_error(["orderId"], "Order does not exist")]}
    lines, errors = _refund_lines(shop, order, input.get("refundLineItems") or [])
    if errors:
        return {"refund": None, "order": None, "userErrors": [{"field": e["field"], "message": e["message"]}
                                                              for e in errors]}
    refund = refund_order(shop, order, lines, input)
    return {"refund": refund, "order": order, "userErrors": []}


def _refund_lines(shop: ShopState, order: Obj, specs: list[Obj]) -> tuple[list[tuple[Obj, Obj]], list[Obj]]:
    lines, errors = [], []
    for index, spec in enumerate(specs):
        path = ["refundLineItems", str(index)]
        line = shop.find(spec["lineItemId"], "LineItem")
        if line is None or line not in order["_lineItems"]:
            errors.append(user_error([*path, "lineItemId"], "Line item does not belong to the order"))
        elif not 0 < spec["quantity"] <= line["currentQuantity"]:
            errors.append(user_error([*path, "quantity"], "Quantity cannot refund more items than were purchased"))
        else:
            lines.append((line, spec))
    return lines, errors


def refund_order(shop: ShopState, order: Obj, lines: list[tuple[Obj, Obj]], input: Obj) -> Obj:
    """Record a refund: quantities leave the order, restocked ones go back to available."""
    currency = order["currencyCode"]
    now = shop.now()
    refund_lines = [_refund_line(shop, order, line, spec) for line, spec in lines]
    total = sum((line["_price"] * spec["quantity"] for line, spec in lines), Decimal(0))
    if input.get("transactions"):
        total = sum((amount(t["amount"]) for t in input["transactions"]), Decimal(0))
    if (input.get("shipping") or {}).get("amount") is not None:
        total += amount(input["shipping"]["amount"])
    refund = shop.new("Refund", createdAt=now, updatedAt=now, processedAt=now, note=input.get("note"), order=order,
                      totalRefundedSet=money(total, currency),
                      totalRefunded={"amount": total, "currencyCode": currency},
                      _lineItems=refund_lines)
    order["_refunds"].append(refund)
    refunded = sum((r["totalRefundedSet"]["shopMoney"]["amount"] for r in order["_refunds"]), Decimal(0))
    ordered = sum((line["_price"] * line["quantity"] for line in order["_lineItems"]), Decimal(0))
    if refunded > 0:
        order["displayFinancialStatus"] = "REFUNDED" if refunded >= ordered else "PARTIALLY_REFUNDED"
    touch(shop, order)
    shop.emit("refunds/create", {"id": refund["legacyResourceId"], "admin_graphql_api_id": refund["id"],
                                 "order_id": order["legacyResourceId"], "note": refund["note"]}, now)
    emit(shop, order, "orders/updated")
    return refund


def _refund_line(shop: ShopState, order: Obj, line: Obj, spec: Obj) -> Obj:
    quantity = spec["quantity"]
    restock_type = spec.get("restockType") or "NO_RESTOCK"
    restock = restock_type in ("RETURN", "CANCEL", "LEGACY_RESTOCK")
    unfulfilled = min(quantity, line["_unfulfilled"])
    fulfillment_order = order["_fulfillmentOrders"][0]
    location_gid = spec.get("locationId") or fulfillment_order["assignedLocation"]["location"]["id"]
    if unfulfilled:
        release(shop, line["variant"]["inventoryItem"]["id"], location_gid, unfulfilled, restock)
        line["_unfulfilled"] -= unfulfilled
        for fo_line in fulfillment_order["_lineItems"]:
            if fo_line["lineItem"] is line:
                fo_line["remainingQuantity"] -= unfulfilled
    level = shop.level(line["variant"]["inventoryItem"]["id"], location_gid)
    if restock and quantity > unfulfilled and level is not None:
        shop.change(level, "available", quantity - unfulfilled)
        shop.level_changed(level)
    line["currentQuantity"] -= quantity
    price = line["_price"]
    return shop.new("RefundLineItem", lineItem=line, quantity=quantity, restockType=restock_type, restocked=restock,
                    location=shop.find(location_gid, "Location"), price=price,
                    priceSet=money(price, order["currencyCode"]),
                    subtotalSet=money(price * quantity, order["currencyCode"]),
                    totalTaxSet=money(Decimal(0), order["currencyCode"]))
