"""``bench/shopify.py`` at a tiny size: its pieces produce the figures it prints (no timing is asserted:
what is checked is that the runs happen, count what they should, and that ours makes fewer calls)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench import shopify as bench


def test_the_delivery_plan_mixes_creates_updates_and_second_copies() -> None:
    orders = [{"id": n, "updated_at": "2026-12-02T10:00:00+00:00"} for n in range(100)]

    plan = bench.delivery_plan(orders, 200)

    assert len(plan) == 200 and bench.orders_needed(200) >= sum(1 for d in plan if d.topic == "orders/create")
    assert {d.topic for d in plan} == {"orders/create", "orders/updated"}
    creates = [d.event_id for d in plan if d.topic == "orders/create"]
    assert len({d.body for d in plan if d.topic == "orders/create"}) == len(set(creates))  # one create per order
    assert len({d.event_id for d in plan}) < len(plan)  # some deliveries are a second copy of an event
    request = bench.delivery_request(plan[0], "127.0.0.1:1", "shop.myshopify.com", "s3cret")
    assert request.startswith(b"POST /shopify/webhooks HTTP/1.1\r\n") and request.endswith(plan[0].body)
    assert f"X-Shopify-Event-Id: {plan[0].event_id}".encode() in request


def test_the_pushes_and_the_naive_sample_count_their_calls_and_points(tmp_path: Path) -> None:
    skus, catalogs, items = 300, 3, 40

    pushes = bench.run_pushes(skus, catalogs, tmp_path)
    naive = bench.naive_sample(items)

    stock, prices = pushes["stock"], pushes["prices"]
    assert stock["result"]["changed"] == skus * 2 and stock["result"]["errors"] == []
    assert sum(a["changed"] for a in prices["result"]["accounts"].values()) == skus * catalogs
    assert pushes["mutations"]["inventorySetQuantities"] == math.ceil(skus * 2 / 250)
    assert pushes["mutations"]["priceListFixedPricesAdd"] == catalogs * math.ceil(skus / 250)
    assert prices["by_operation"]["PricesAdd"][0] == catalogs * math.ceil(skus / 250)
    for m in (stock, prices):
        assert m["calls"] == m["double_calls"] > 0 and m["points"] == m["client_points"] > 0
        assert m["available"] == bench.BUCKET and m["seconds"] > 0
        assert sum(calls for calls, _ in m["by_operation"].values()) == m["calls"]
        assert sum(points for _, points in m["by_operation"].values()) == m["points"]
        figures = bench.budget(m)
        assert figures["bound"] is False and figures["min_s"] == 0  # a tiny push fits the bucket
        assert 0 < figures["share"] <= 100 and figures["steady_s"] == m["points"] / bench.RESTORE
    assert naive["stock"]["calls"] == items * 2 and naive["prices"]["calls"] == items
    for m in (naive["stock"], naive["prices"]):
        assert m["points_per_call"] >= 10 and m["per_call_s"] > 0  # a mutation costs 10 points and more
    naive_stock = bench.projected(naive["stock"], skus * 2)
    naive_prices = bench.projected(naive["prices"], skus * catalogs)
    assert stock["calls"] < naive_stock["calls"] and prices["calls"] < naive_prices["calls"]
    assert stock["points"] < naive_stock["points"] and prices["points"] < naive_prices["points"]
    assert naive_prices["budget_s"] == naive_prices["points"] / bench.RESTORE


@pytest.mark.slow
def test_the_webhook_runs_answer_every_delivery_and_work_every_event(tmp_path: Path) -> None:
    result = bench.webhook_latency(1.0, 20.0, tmp_path, drain_timeout=60)

    assert result["n"] == 20 and result["events"] + result["duplicates"] == 20
    for run in (result["hub"], result["naive"]):
        assert run["sent"] == 20 and run["errors"] == 0 and run["statuses"] == {200: 20}
        assert 0 < run["p50"] <= run["p90"] <= run["p99"] <= run["max"]
        assert run["states"] == {"processed": result["events"]}  # every event worked, each once
    assert not math.isnan(result["hub"]["drain_s"])
    # the hub and the naive handler each read every event's order once (the sweep at start finds none)
    hub_reads = result["hub"]["double"]["calls"]
    assert result["events"] <= hub_reads <= result["events"] + 1
    assert result["naive"]["double"]["calls"] - hub_reads >= result["events"]
