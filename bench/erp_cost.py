"""Benchmark: what the hub costs an idle ERP, and how soon an ERP change still shows in the API.

    .venv/bin/python -m bench.erp_cost [--idle-seconds 60] [--samples 12]

Against a real Tryton (a fresh copy of the demo database, SQLite) and the hub as ONE process
(``ordersync serve``: API + worker, SQLite), twice in the same run:

* **hub** -- change detection as shipped: one cheap question per turn (``change_probe``), a full read
  only when its answer moves, the interval doubling to ``idle_poll_seconds`` while nothing changes;
* **baseline** -- the same hub with every turn a full read every second (``poll_seconds = 1``,
  ``idle_poll_seconds = 1``, ``sweep_seconds = 1``): change detection as it was before the probe.

For each: a few orders are placed and settle (the ERP has history, the read model is warm), the ERP
is left alone for ``--idle-seconds``, and the benchmark reads the requests the hub sent
(``ordersync_erp_wire_calls_total`` on ``/metrics``) and the CPU time of the Tryton and hub processes
(``/proc/<pid>/stat``). Then ``--samples`` times, at a random moment, the stock of a SKU is counted
anew in Tryton (an inventory, as the administrator) and the benchmark asks ``GET /v1/availability``
every 20 ms until the new quantity shows: the change's latency.

Goals (issue 14): idle <= 0.5 calls/s and <= 1% of a core of ERP CPU; a stock change shows within
2 s at p95.

Not measured here yet (left for the next steps of the issue): Tryton on PostgreSQL, push change capture,
ERP calls and ERP CPU per order end to end, order latency under a saturated ERP.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bench._common import median, percentile
from bench._hub import start_hub, stop_hub
from bench.intake import SETTLED, make_orders, start_tryton
from ordersync.api.keys import KeyService
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.devkit.tryton.template import ensure_template
from ordersync.domain.clock import SystemClock
from ordersync.store.schema import orders as orders_table

TICK = os.sysconf("SC_CLK_TCK")
SKU, PLANT = "SEL-GSK-DN50-PTFE", "PLANT-N"
BASELINE = "poll_seconds = 1\nidle_poll_seconds = 1\nsweep_seconds = 1\n"
GOAL_CALLS, GOAL_CPU, GOAL_LATENCY = 0.5, 1.0, 2.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wire_calls(http: httpx.Client) -> float:
    total = 0.0
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "ordersync_erp_wire_calls_total":
                total += sample.value
    return total


def on_hand(http: httpx.Client) -> Decimal | None:
    r = http.get("/v1/availability", params={"sku": SKU})
    if r.status_code != 200:
        return None
    (item,) = r.json()["items"]
    return next((Decimal(p["on_hand"]) for p in item["plants"] if p["plant"] == PLANT), None)


def measure(label: str, home: TrytonHome, root: Path, erp_settings: str, idle_seconds: float, samples: int,
            ) -> dict[str, Any]:
    server = start_tryton(root / f"erp-{label}", home)
    hub, port, db = start_hub(server, root, erp_settings=erp_settings, name=f"hub-{label}")
    admin = TrytonSimulator.connect(server.url, "main")
    try:
        token, _ = KeyService(db, SystemClock()).create("bench", "storefront", ["orders:write", "orders:read",
                                                                                "catalog:read"],
                                                        rate_per_minute=1_000_000)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
        for i, body in enumerate(make_orders(6, seed=29)):
            assert http.post("/v1/orders", json=body, headers={"Idempotency-Key": f"c-{i}"}).status_code == 202
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.read() as conn:
                states = list(conn.execute(select(orders_table.c.state)).scalars())
            if len(states) == 6 and all(s in SETTLED for s in states):
                break
            time.sleep(0.5)
        on_hand(http)  # the read model knows the SKU
        time.sleep(15)  # what the orders set moving (shipments waiting, stock changed) is read and settles
        erp_pid, hub_pid = server.pid, hub.pid
        assert erp_pid is not None
        calls0, erp0, hub0, t0 = wire_calls(http), cpu_seconds(erp_pid), cpu_seconds(hub_pid), time.monotonic()
        time.sleep(idle_seconds)
        elapsed = time.monotonic() - t0
        calls = wire_calls(http) - calls0
        erp_cpu, hub_cpu = cpu_seconds(erp_pid) - erp0, cpu_seconds(hub_pid) - hub0
        rng = random.Random(7)
        latencies = []
        quantity = Decimal(on_hand(http) or 0)
        for _ in range(samples):
            time.sleep(rng.uniform(4.0, 8.0))  # long enough for the poller to be back at its idle pace; random phase
            quantity += 7
            admin.set_stock(SKU, PLANT, quantity)
            changed = time.perf_counter()
            while on_hand(http) != quantity:
                if time.perf_counter() - changed > 60:
                    raise SystemExit(f"{label}: the stock change did not show within 60 s")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - changed)
        http.close()
    finally:
        admin.close()
        stop_hub(hub)
        server.stop()
    return {"calls_per_s": calls / elapsed, "erp_cpu_pct": 100 * erp_cpu / elapsed,
            "hub_cpu_pct": 100 * hub_cpu / elapsed, "p50": median(latencies), "p95": percentile(latencies, 95),
            "max": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=12, help="stock changes timed per configuration")
    args = parser.parse_args()
    home = TrytonHome().ensure()
    ensure_template("main", home=home)
    print(f"ERP cost benchmark: Tryton (SQLite) idle for {args.idle_seconds:.0f} s behind the hub (one process, "
          f"SQLite), then {args.samples} stock changes timed to the API; baseline: a full read every second",
          flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, settings in (("hub", ""), ("baseline", BASELINE)):
            results[label] = r = measure(label, home, Path(tmp), settings, args.idle_seconds, args.samples)
            print(f"{label:9} idle: {r['calls_per_s']:6.2f} ERP calls/s   ERP CPU {r['erp_cpu_pct']:5.1f}% of a core"
                  f"   hub CPU {r['hub_cpu_pct']:5.1f}%   stock change -> API p50 {r['p50']:.2f} s  "
                  f"p95 {r['p95']:.2f} s  max {r['max']:.2f} s", flush=True)
    hub, base = results["hub"], results["baseline"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"idle ERP calls/s   {hub['calls_per_s']:.2f} (baseline {base['calls_per_s']:.2f}, "
          f"{base['calls_per_s'] / max(hub['calls_per_s'], 1e-9):.0f}x fewer)   goal <= {GOAL_CALLS}: "
          f"{verdict(hub['calls_per_s'] <= GOAL_CALLS)}")
    print(f"idle ERP CPU       {hub['erp_cpu_pct']:.2f}% of a core (baseline {base['erp_cpu_pct']:.2f}%)   "
          f"goal <= {GOAL_CPU}%: {verdict(hub['erp_cpu_pct'] <= GOAL_CPU)}")
    print(f"stock change p95   {hub['p95']:.2f} s (baseline {base['p95']:.2f} s)   goal <= {GOAL_LATENCY} s: "
          f"{verdict(hub['p95'] <= GOAL_LATENCY)}")


if __name__ == "__main__":
    main()
