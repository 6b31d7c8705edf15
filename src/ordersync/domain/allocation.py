"""Allocation across plants: which plant ships how much of each line, and when.

Rule: the plant whose region matches the ship-to region is preferred; if it lacks stock, plants with
stock follow (most available first); what no plant can ship now is backordered at the preferred plant
with a promised date ``backorder_days`` out. Splitting respects the product's pack multiple. Lines of
one order draw on the same pool, so two lines of one SKU never promise the same stock twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ordersync.canonical.v1 import Allocation


@dataclass(frozen=True)
class LineDemand:
    line_no: int
    sku: str
    quantity: Decimal
    pack_multiple: Decimal = Decimal(1)
    requested_date: dt.date | None = None


@dataclass(frozen=True)
class PlantInfo:
    code: str
    region: str = ""


@dataclass(frozen=True)
class AllocationPolicy:
    allow_split: bool = True
    ship_days: int = 2
    backorder_days: int = 14


def preferred_plant(plants: Sequence[PlantInfo], ship_to_region: str | None) -> PlantInfo:
    for plant in plants:
        if ship_to_region and plant.region == ship_to_region:
            return plant
    return plants[0]


def allocate(
    order_id: str,
    lines: Sequence[LineDemand],
    atp: dict[tuple[str, str], Decimal],
    plants: Sequence[PlantInfo],
    ship_to_region: str | None,
    today: dt.date,
    policy: AllocationPolicy = AllocationPolicy(),
) -> list[Allocation]:
    """Allocate every line; quantities of the result add up to each line's quantity."""
    if not plants:
        raise ValueError("no plants to allocate from")
    pool = {key: max(Decimal(0), qty) for key, qty in atp.items()}
    home = preferred_plant(plants, ship_to_region)
    out: list[Allocation] = []
    for line in lines:
        remaining = line.quantity
        ship_date = max(today + dt.timedelta(days=policy.ship_days), line.requested_date or today)
        others = sorted((p for p in plants if p.code != home.code),
                        key=lambda p: pool.get((line.sku, p.code), Decimal(0)), reverse=True)
        order = [home, *others]
        if not policy.allow_split:
            whole = next((p for p in order if pool.get((line.sku, p.code), Decimal(0)) >= remaining), None)
            order = [whole] if whole else []
        for plant in order:
            if remaining <= 0:
                break
            free = pool.get((line.sku, plant.code), Decimal(0))
            take = min(remaining, _whole_packs(free, line.pack_multiple) if free < remaining else remaining)
            if take <= 0:
                continue
            pool[(line.sku, plant.code)] = free - take
            remaining -= take
            out.append(Allocation(order_id=order_id, line_no=line.line_no, sku=line.sku, plant=plant.code,
                                  quantity=take, promised_date=ship_date))
        if remaining > 0:
            out.append(Allocation(order_id=order_id, line_no=line.line_no, sku=line.sku, plant=home.code,
                                  quantity=remaining, backorder=True,
                                  promised_date=max(ship_date, today + dt.timedelta(days=policy.backorder_days))))
    return out


def _whole_packs(quantity: Decimal, pack: Decimal) -> Decimal:
    if pack <= 0:
        return quantity
    return (quantity // pack) * pack


def is_backordered(allocations: Sequence[Allocation]) -> bool:
    return any(a.backorder for a in allocations)
