"""``inventorySetQuantities`` as 2026-07 has it: a compare-and-set on each quantity, all or nothing,
behind a required idempotency key.

- every quantity must carry ``changeFromQuantity`` (explicit ``null`` skips the check; leaving it out is
  ``COMPARE_QUANTITY_REQUIRED``);
- one stale ``changeFromQuantity`` fails the whole call (``CHANGE_FROM_QUANTITY_STALE``), nothing applied;
- the same ``@idempotent(key:)`` with the same input answers the first result again without applying it
  twice; with a different input it is ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, get_directive_values

from .registry import Info, resolves, state, user_error
from .state import Obj, ShopState

MAX_QUANTITIES = 250
SETTABLE_NAMES = ("available", "on_hand")
#: the reasons Shopify accepts for an inventory change
REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated", "movement_received",
    "movement_canceled", "other", "promotion", "quality_control", "received", "reservation_created",
    "reservation_deleted", "reservation_updated", "restock", "safety_stock", "shrinkage",
})


def idempotency_key(info: Info) -> str | None:
    """The key of the ``@idempotent`` directive on the field being resolved, if any."""
    directive = info.schema.get_directive("idempotent")
    if directive is None:
        return None
    values = get_directive_values(directive, info.field_nodes[0], info.variable_values)
    key = values.get("key") if values else None
    return key if isinstance(key, str) else None


def check_input_size(size: int, limit: int = MAX_QUANTITIES) -> None:
    if size > limit:
        raise GraphQLError(f"The input array size of {size} is greater than the maximum allowed of {limit}.",
                           extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"})


def replay(shop: ShopState, mutation: str, key: str, arguments: Any, apply: Callable[[], Obj],
           mismatch: Callable[[Obj], Obj]) -> Obj:
    """Run ``apply()`` once per idempotency key and answer its stored result to a retry with the same
    arguments; a retry with other arguments gets ``mismatch(user_error)``."""
    fingerprint = json.dumps(arguments, sort_keys=True, default=str)
    stored = shop.idempotency.get(f"{mutation}:{key}")
    if stored is not None:
        if stored[0] != fingerprint:
            return mismatch(user_error(None, "The same idempotency key was used with different parameters.",
                                       "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"))
        return stored[1]
    result = apply()
    shop.idempotency[f"{mutation}:{key}"] = (fingerprint, result)
    return result


def required_key(info: Info) -> str:
    """The idempotency key a 2026-04+ mutation must carry, or the error Shopify answers without one."""
    key = idempotency_key(info)
    if not key or not key.strip():
        raise GraphQLError(f"An idempotency key is required for {info.field_name} since API version 2026-04: "
                           "add @idempotent(key: ...) to the mutation field.", extensions={"code": "BAD_REQUEST"})
    return key


@resolves("Mutation", "inventorySetQuantities")
def inventory_set_quantities(_: Any, info: Info, input: Obj) -> Obj:
    check_input_size(len(input["quantities"]))
    key = required_key(info)
    shop = state(info)
    return replay(shop, "inventorySetQuantities", key, input, lambda: set_quantities(shop, input),
                  lambda error: {"inventoryAdjustmentGroup": None, "userErrors": [error]})


def set_quantities(shop: ShopState, input: Obj) -> Obj:
    errors, plan = _check(shop, input)
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes = []
    for level, quantity in plan:
        delta = quantity - level["_q"][input["name"]]
        shop.change(level, input["name"], delta)
        changes.append({"name": input["name"], "delta": delta, "quantityAfterChange": quantity,
                        "item": level["item"], "location": level["location"], "ledgerDocumentUri": None})
        if input["name"] != "available":
            changes.append({"name": "available", "delta": delta, "quantityAfterChange": level["_q"]["available"],
                            "item": level["item"], "location": level["location"], "ledgerDocumentUri": None})
        shop.level_changed(level)
    group = shop.new("InventoryAdjustmentGroup", createdAt=shop.now(), reason=input["reason"],
                     referenceDocumentUri=input.get("referenceDocumentUri"), app=None, staffMember=None,
                     _changes=changes)
    return {"inventoryAdjustmentGroup": group, "userErrors": []}


def _check(shop: ShopState, input: Obj) -> tuple[list[Obj], list[tuple[Obj, int]]]:
    """Every problem of the call (none applied if any), or what to set."""
    errors: list[Obj] = []
    if input["name"] not in SETTABLE_NAMES:
        errors.append(user_error(["input", "name"], f"The quantity name must be one of {', '.join(SETTABLE_NAMES)}.",
                                 "INVALID_NAME"))
    if input["reason"] not in REASONS:
        errors.append(user_error(["input", "reason"], "The specified reason is invalid.", "INVALID_REASON"))
    plan: list[tuple[Obj, int]] = []
    seen: set[tuple[str, str]] = set()
    for index, quantity in enumerate(input["quantities"]):
        path = ["input", "quantities", str(index)]
        level, error = _level(shop, quantity, path)
        if error is None and (quantity["inventoryItemId"], quantity["locationId"]) in seen:
            error = user_error(path, "The combination of inventoryItemId and locationId must be unique.",
                               "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR")
        if error is None and "changeFromQuantity" not in quantity:
            error = user_error([*path, "changeFromQuantity"], "The changeFromQuantity field is required; pass null "
                               "explicitly to skip the compare-and-set check.", "COMPARE_QUANTITY_REQUIRED")
        if error is None and level is not None and input["name"] in SETTABLE_NAMES:
            current = level["_q"][input["name"]]
            expected = quantity["changeFromQuantity"]
            if expected is not None and expected != current:
                error = user_error([*path, "changeFromQuantity"], "The specified changeFromQuantity does not match "
                                   f"the current quantity ({current}) of the inventory level.",
                                   "CHANGE_FROM_QUANTITY_STALE")
        if error is not None:
            errors.append(error)
        elif level is not None:
            seen.add((quantity["inventoryItemId"], quantity["locationId"]))
            plan.append((level, quantity["quantity"]))
    return errors, plan


def _level(shop: ShopState, quantity: Obj, path: list[str]) -> tuple[Obj | None, Obj | None]:
    if shop.find(quantity["inventoryItemId"], "InventoryItem") is None:
        return None, user_error([*path, "inventoryItemId"], "The specified inventory item could not be found.",
                                "INVALID_INVENTORY_ITEM")
    if shop.find(quantity["locationId"], "Location") is None:
        return None, user_error([*path, "locationId"], "The specified location could not be found.",
                                "INVALID_LOCATION")
    level = shop.level(quantity["inventoryItemId"], quantity["locationId"])
    if level is None:
        return None, user_error(path, "The specified inventory item is not stocked at the location.",
                                "ITEM_NOT_STOCKED_AT_LOCATION")
    return level, None


@resolves("InventoryAdjustmentGroup", "changes")
def adjustment_changes(source: Obj, info: Info, inventoryItemIds: list[str] | None = None,
                       locationIds: list[str] | None = None, quantityNames: list[str] | None = None) -> list[Obj]:
    return [c for c in source["_changes"]
            if (inventoryItemIds is None or c["item"]["id"] in inventoryItemIds)
            and (locationIds is None or c["location"]["id"] in locationIds)
            and (quantityNames is None or c["name"] in quantityNames)]
