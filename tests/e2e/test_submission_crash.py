"""SIGKILL of a real worker process while it submits orders to a real Tryton, again and again: after
restarts every hub order has exactly one ERP sale per plant, and no draft or quotation is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.store.schema import orders
from tests.support.hub import order, place
from tests.support.tryton import erp_settings, sales_by_reference, write_hub_config

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]

ORDERS = 24
KILLS = 4
SKUS = [("SEN-PX-M12-NPN", 6), ("BRG-6204-2RS", 5), ("FIT-PTC-8MM", 50), ("VLV-BV-DN25-SS", 2),
        ("SEN-TT-PT100", 3), ("BRG-UCP205", 4)]


def start_worker(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(data_dir)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def states(hub: Any) -> dict[str, int]:
    with hub.db.read() as conn:
        return {s: int(n) for s, n in conn.execute(select(orders.c.state, func.count()).group_by(orders.c.state))}


def test_sigkill_during_erp_submission_leaves_exactly_one_sale_per_order_and_plant(
    start_tryton: Any, tmp_path: Path
) -> None:
    tryton = start_tryton({"main": "main"})
    data_dir = tmp_path / "hub"
    settings = erp_settings(tryton, retries=1, reset_timeout=1)
    write_hub_config(data_dir, [settings])
    hub = build_hub(Settings(data_dir=data_dir, erp=[settings]))
    ids = []
    for i in range(ORDERS):
        customer = ("C-1001", "C-1002", "C-1003")[i % 3]
        sku, qty = SKUS[i % len(SKUS)]
        ids.append(place(hub, order(customer, (sku, qty), external=f"CRASH-{i}")).order_id)
    log = tmp_path / "worker.log"
    worker = start_worker(data_dir, log)
    kills = 0
    try:
        deadline = time.monotonic() + 600
        while kills < KILLS and time.monotonic() < deadline:
            # wait until this incarnation is inside an ERP submission, then kill it
            while states(hub).get("submitted_to_erp", 0) == 0:
                assert worker.poll() is None, log.read_text()[-3000:]
                if time.monotonic() > deadline or states(hub).get("accepted", 0) == ORDERS:
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # let it get into Tryton's create/quote/confirm
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = start_worker(data_dir, log)
        while states(hub).get("accepted", 0) < ORDERS:
            assert time.monotonic() < deadline, (states(hub), log.read_text()[-3000:])
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert kills >= 2, f"the worker was killed only {kills} times"
    sales = sales_by_reference(tryton, "OS-")
    for order_id in ids:
        mine = {ref: st for ref, st in sales.items() if ref.startswith(f"OS-{order_id}-")}
        assert mine, f"order {order_id} has no ERP sale"
        for ref, sale_states in mine.items():
            assert len(sale_states) == 1, f"{ref} exists {len(sale_states)} times: {sale_states}"
            assert sale_states[0] in ("confirmed", "processing"), f"{ref} was left {sale_states[0]}"
    assert hub.dead_letters.count() == 0
    hub.close()
