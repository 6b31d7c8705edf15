"""``ordersync demo --once --json``: the main job, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.tryton.server import free_port

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_places_its_scenario_and_every_order_reaches_tryton_exactly_once(tryton_ready: Any,
                                                                                   tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "demo", "--once", "--json", "--orders", "24",
         "--data-dir", str(data_dir), "--port", str(free_port())],
        capture_output=True, text=True, timeout=800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["settled"] is True
    assert sum(summary["final_states"].values()) == summary["unique_orders"]
    assert summary["final_states"]["accepted"] >= summary["unique_orders"] // 2
    assert summary["final_states"]["rejected"] >= 1 and summary["final_states"]["on_hold"] >= 2
    assert summary["intake"]["replayed"] + summary["intake"]["duplicate"] == summary["duplicates_sent"]
    assert summary["erp_orders_created"] == summary["erp_orders_expected"] > 0
    assert summary["erp_orders_missing"] == summary["erp_orders_unexpected"] == 0
    assert summary["erp_duplicate_references"] == 0 and summary["erp_line_mismatches"] == 0
    assert set(summary["erp_order_states"]) <= {"confirmed", "processing"}, "no draft or quotation is left"
    assert summary["dead_letters"] == 0
    assert (data_dir / "erp" / "main.sqlite").exists(), "the ERP database stays for inspection"
