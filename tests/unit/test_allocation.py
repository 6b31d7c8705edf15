from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.domain.allocation import AllocationPolicy, LineDemand, PlantInfo, allocate

TODAY = dt.date(2026, 3, 2)
PLANTS = [PlantInfo("PLANT-N", "north"), PlantInfo("PLANT-S", "south")]
D = Decimal


def plan(lines: list[LineDemand], atp: dict[tuple[str, str], int], region: str = "north",
         policy: AllocationPolicy = AllocationPolicy()) -> list[tuple[int, str, Decimal, bool]]:
    result = allocate("o1", lines, {k: D(v) for k, v in atp.items()}, PLANTS, region, TODAY, policy)
    for line in lines:
        assert sum(a.quantity for a in result if a.line_no == line.line_no) == line.quantity
    return [(a.line_no, a.plant, a.quantity, a.backorder) for a in result]


def test_the_plant_of_the_ship_to_region_is_preferred() -> None:
    assert plan([LineDemand(1, "A", D(5))], {("A", "PLANT-N"): 10, ("A", "PLANT-S"): 50}, region="north") == [
        (1, "PLANT-N", D(5), False)]
    assert plan([LineDemand(1, "A", D(5))], {("A", "PLANT-N"): 10, ("A", "PLANT-S"): 50}, region="south") == [
        (1, "PLANT-S", D(5), False)]


def test_a_plant_with_stock_ships_when_the_preferred_one_has_none() -> None:
    assert plan([LineDemand(1, "A", D(5))], {("A", "PLANT-S"): 9}) == [(1, "PLANT-S", D(5), False)]


def test_a_line_is_split_across_plants_and_the_rest_backordered() -> None:
    result = plan([LineDemand(1, "A", D(30))], {("A", "PLANT-N"): 10, ("A", "PLANT-S"): 15})
    assert result == [(1, "PLANT-N", D(10), False), (1, "PLANT-S", D(15), False), (1, "PLANT-N", D(5), True)]


def test_backorders_get_a_later_promised_date() -> None:
    result = allocate("o1", [LineDemand(1, "A", D(3))], {}, PLANTS, "north", TODAY,
                      AllocationPolicy(ship_days=2, backorder_days=14))
    assert result[0].backorder and result[0].promised_date == TODAY + dt.timedelta(days=14)


def test_lines_of_one_order_never_promise_the_same_stock_twice() -> None:
    result = plan([LineDemand(1, "A", D(8)), LineDemand(2, "A", D(8))], {("A", "PLANT-N"): 10})
    assert result == [(1, "PLANT-N", D(8), False), (2, "PLANT-N", D(2), False), (2, "PLANT-N", D(6), True)]


def test_splitting_keeps_whole_packs() -> None:
    result = plan([LineDemand(1, "F", D(30), pack_multiple=D(10))], {("F", "PLANT-N"): 25, ("F", "PLANT-S"): 100})
    assert result == [(1, "PLANT-N", D(20), False), (1, "PLANT-S", D(10), False)]


def test_without_splitting_one_plant_ships_the_whole_line_or_it_waits() -> None:
    no_split = AllocationPolicy(allow_split=False)
    assert plan([LineDemand(1, "A", D(12))], {("A", "PLANT-N"): 10, ("A", "PLANT-S"): 15}, policy=no_split) == [
        (1, "PLANT-S", D(12), False)]
    assert plan([LineDemand(1, "A", D(20))], {("A", "PLANT-N"): 10, ("A", "PLANT-S"): 15}, policy=no_split) == [
        (1, "PLANT-N", D(20), True)]


def test_a_requested_date_later_than_the_lead_time_is_kept() -> None:
    later = TODAY + dt.timedelta(days=30)
    result = allocate("o1", [LineDemand(1, "A", D(1), requested_date=later)], {("A", "PLANT-N"): D(5)}, PLANTS,
                      "north", TODAY)
    assert result[0].promised_date == later
