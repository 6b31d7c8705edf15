"""``bench/order_path.py`` walks one order to acceptance and counts the files and hops it takes."""

from __future__ import annotations

from bench.order_path import STAGES, walk


def test_the_order_path_walk_reaches_acceptance_and_counts_each_stage() -> None:
    result = walk()
    assert result["state"] == "accepted" and result["outbox_rows"]["intake"] == 2
    for stage in STAGES:
        assert result[stage]["files"], stage
    assert "flows/handlers/orders.py" in result["prepare"]["files"] and "flows/handlers/orders.py" in result[
        "submit"]["files"]
    assert result["submit"]["write_transactions"] >= 2  # visible before the ERP call, then the answer
