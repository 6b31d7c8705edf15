"""Benchmark: the experience API's read path (contract prices and plant availability for 20-SKU
baskets) against the same lookups made straight against Tryton, in one run; and how long an ERP stock
change takes to become visible through the API.

    .venv/bin/python -m bench.read_path [--seconds 20] [--connections 8] [--baskets 60] [--changes 20]
                                        [--repeats 3] [--short]

Phases run in this order: direct, hub capacity, hub at 100x the direct throughput, visibility.

1. A real trytond serves a fresh copy of the demo database; ONE hub process (`ordersync serve`: API and
   worker, SQLite, in-process bus) runs in front of it with the default settings.
2. Hub: each basket is two requests, ``GET /v1/prices?sku=..x20&qty=..x20`` and
   ``GET /v1/availability?sku=..x20``, with an API key bound to the basket's customer. Every request is
   sent once to warm the read model (misses go to Tryton once), then ``--connections`` clients send them
   back to back for ``--seconds`` (closed loop): requests/s and latency p50/p99.
3. Hub at 100x: the same requests offered open loop at 100 times the direct path's throughput (the
   goal's load): latency p50/p99 from each request's due time (no coordinated omission), ``--repeats``
   runs, median quoted (two cores shared by the hub, the load generator and Tryton make single runs
   noisy).
4. Direct: the same lookups straight against Tryton through ordersync's own Tryton adapter (its best
   case: master data cached, one ``read`` of prices per quantity and one quantity ``read`` per
   warehouse, as a careful connector would do), ``--direct-clients`` at once, for ``--seconds``.
5. Visibility: ``--changes`` times, count a new on-hand quantity of one SKU at one plant in Tryton (an
   inventory, as a warehouse would), then poll ``/v1/availability`` every 20 ms until it shows: the
   time from the inventory being confirmed in Tryton to the hub answering with it.

``--short`` (the form ``python -m bench.all --short`` runs): 4 s per load phase, three 100x runs of 4 s,
5 stock changes; explicit options override it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import _tryton
from bench._common import Figure, emit, median, percentile
from bench._hub import start_hub, stop_hub
from bench._load import closed_loop, open_loop, request_bytes
from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserWarning
from ordersync.api.keys import KeyService
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database

PROFILE = demo_data.profile("main")
CUSTOMERS = ["C-1001", "C-1002", "C-1003"]
BASKET = 20
GOAL_RATIO = 100.0  # hub capacity over the direct path's throughput
GOAL_P99_MS = 10.0  # hub latency p99 at 100x the direct throughput
GOAL_VISIBLE_P95_S = 2.0  # a stock change in Tryton visible through the API


def make_baskets(n: int, seed: int = 5) -> list[tuple[str, list[tuple[str, Decimal]]]]:
    rng = random.Random(seed)
    skus = [p["sku"] for p in PROFILE["products"]]
    assert len(skus) >= BASKET, f"the demo catalog has only {len(skus)} products"
    return [(CUSTOMERS[i % len(CUSTOMERS)],
             [(sku, Decimal(rng.choice([1, 2, 5, 10, 20, 50]))) for sku in rng.sample(skus, BASKET)])
            for i in range(n)]


def paths(basket: list[tuple[str, Decimal]]) -> tuple[str, str]:
    skus = [("sku", s) for s, _ in basket]
    prices = "/v1/prices?" + urlencode(skus + [("qty", str(q)) for _, q in basket])
    return prices, "/v1/availability?" + urlencode(skus)


def hub_requests(port: int, db: Database, baskets: list[Any]) -> list[bytes]:
    """The hub's requests, each sent once to warm the read model (misses go to Tryton once)."""
    keys = KeyService(db, SystemClock())
    tokens = {c: keys.create(f"bench {c}", "portal", ["catalog:read"], account_id=c, rate_per_minute=10**9)[0]
              for c in CUSTOMERS}
    host = f"127.0.0.1:{port}"
    requests = []
    with httpx.Client(base_url=f"http://{host}", timeout=120) as http:
        for customer, basket in baskets:
            for path in paths(basket):
                headers = {"Authorization": f"Bearer {tokens[customer]}"}
                r = http.get(path, headers=headers)  # warm-up: the read model's misses go to Tryton once
                assert r.status_code == 200, (path, r.status_code, r.text[:500])
                requests.append(request_bytes("GET", path, host, headers))
    random.Random(1).shuffle(requests)
    return requests


def run_hub(port: int, requests: list[bytes], connections: int, seconds: float, rate: float | None = None
            ) -> dict[str, float]:
    """Closed loop (capacity) when ``rate`` is None, else open loop at ``rate`` requests/s."""
    if rate is None:
        result = closed_loop("127.0.0.1", port, requests, connections, seconds)
    else:
        n = int(rate * seconds)
        result = open_loop("127.0.0.1", port, [requests[i % len(requests)] for i in range(n)], rate,
                           connections=64)
    bad = [s for s in result.statuses if s != 200]
    assert not bad, f"{len(bad)} requests failed, e.g. {bad[:5]}"
    return {"rps": len(result.latencies) / result.elapsed, "p50": percentile(result.latencies, 50),
            "p99": percentile(result.latencies, 99), "n": len(result.latencies)}


def run_direct(server: TrytonServer, baskets: list[Any], clients: int, seconds: float) -> dict[str, float]:
    user = demo_data.INTEGRATION_USER
    erps = [TrytonErp.connect(url=server.url, database=server.databases[0], login=user["login"],
                              password=user["password"], regions=demo_data.subdivision_regions())
            for _ in range(clients)]
    for erp in erps:  # master data cached: the direct path's best case
        erp.directory.snapshot()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    def client(erp: TrytonErp) -> None:
        while time.monotonic() < deadline:
            customer, basket = baskets[next(counter) % len(baskets)]
            t0 = time.perf_counter()
            erp.prices(customer, basket, dt.date.today())
            t1 = time.perf_counter()
            erp.availability([s for s, _ in basket])
            t2 = time.perf_counter()
            with lock:
                latencies.extend([t1 - t0, t2 - t1])

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(erp,)) for erp in erps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {"rps": len(latencies) / elapsed, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "n": len(latencies)}


def set_stock(admin: TrytonClient, directory: Directory, sku: str, plant: str, on_hand: Decimal) -> None:
    """Count ``on_hand`` of ``sku`` at ``plant``: an inventory, confirmed (warnings acknowledged)."""
    warehouse = directory.warehouse(plant)
    (row,) = admin.call("stock.location", "read", [warehouse.id], ["storage_location"])
    inventory = {"location": row["storage_location"], "date": dt.date.today(), "company": directory.company,
                 "lines": [["create", [{"product": directory.product(sku).id, "quantity": float(on_hand)}]]]}
    (inventory_id,) = admin.call("stock.inventory", "create", [inventory])
    for _ in range(20):
        try:
            admin.call("stock.inventory", "confirm", [inventory_id])
            return
        except TrytonUserWarning as warning:
            admin.skip_warning(warning.name)
    raise RuntimeError("inventory confirmation keeps warning")


def run_visibility(server: TrytonServer, port: int, db: Database, baskets: list[Any], changes: int) -> list[float]:
    admin = TrytonClient(server.url, server.databases[0], demo_data.ADMIN["login"], demo_data.ADMIN["password"])
    directory = Directory(admin)
    token = KeyService(db, SystemClock()).create("bench visibility", "portal", ["catalog:read"],
                                                 account_id="C-1001", rate_per_minute=10**9)[0]
    plants = [w["code"] for w in PROFILE["warehouses"]]
    skus = sorted({s for _, b in baskets for s, _ in b})
    rng = random.Random(3)
    delays = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as http:
        for _ in range(changes):
            sku, plant = rng.choice(skus), rng.choice(plants)
            on_hand = Decimal(rng.randint(500, 900))
            time.sleep(rng.uniform(0, 1.0))  # changes arrive at random points of the hub's poll cycle
            set_stock(admin, directory, sku, plant, on_hand)
            t0 = time.perf_counter()
            while True:
                body = http.get("/v1/availability", params={"sku": sku}).json()
                shown = {p["plant"]: Decimal(p["on_hand"]) for p in body["items"][0]["plants"]}
                if shown.get(plant) == on_hand:
                    break
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"stock change of {sku} at {plant} not visible after 60 s: {shown}")
                time.sleep(0.02)
            delays.append(time.perf_counter() - t0)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs (see above)")
    parser.add_argument("--seconds", type=float, help="duration of each load phase (default 20; --short: 4)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (capacity phase)")
    parser.add_argument("--direct-clients", type=int, default=4, help="concurrent clients straight into Tryton")
    parser.add_argument("--baskets", type=int, default=60)
    parser.add_argument("--changes", type=int, help="stock changes timed for visibility (default 20; --short: 5)")
    parser.add_argument("--repeats", type=int, help="runs of the 100x phase, the median is quoted (default 3)")
    parser.add_argument("--api-processes", type=int, default=1,
                        help="API processes of the hub (ordersync serve --workers N; the worker then runs in the "
                             "supervising process beside them)")
    _tryton.add_erp_db_argument(parser)
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else (4.0 if args.short else 20.0)
    args.changes = args.changes if args.changes is not None else (5 if args.short else 20)
    args.repeats = args.repeats if args.repeats is not None else 3
    home = TrytonHome().ensure()
    _tryton.ensure_erp_template(home, args.erp_db)
    baskets = make_baskets(args.baskets)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = _tryton.start_tryton(root / "erp", home, args.erp_db)
        processes = args.api_processes
        hub, port, db = start_hub(server, root, serve_args=("--workers", str(processes)))
        try:
            layout = ("1 server process (API + worker" if processes == 1 else
                      f"{processes} API processes and the worker in the supervising process (")
            print(f"read path: {args.baskets} baskets of {BASKET} SKUs (prices + availability = 2 requests each); "
                  f"hub = {layout}, SQLite) in front of Tryton; {os.cpu_count()} cores", flush=True)
            d = run_direct(server, baskets, args.direct_clients, args.seconds)
            print(f"direct          {d['rps']:9.1f} requests/s   p50 {d['p50'] * 1000:8.2f} ms   "
                  f"p99 {d['p99'] * 1000:8.2f} ms   ({d['n']:.0f} lookups, {args.direct_clients} clients straight "
                  f"into Tryton)", flush=True)
            requests = hub_requests(port, db, baskets)
            h = run_hub(port, requests, args.connections, args.seconds)
            print(f"hub capacity    {h['rps']:9.1f} requests/s   p50 {h['p50'] * 1000:8.2f} ms   "
                  f"p99 {h['p99'] * 1000:8.2f} ms   ({h['n']:.0f} requests, {args.connections} connections, "
                  f"closed loop)", flush=True)
            target = 100 * d["rps"]
            runs = [run_hub(port, requests, args.connections, args.seconds, rate=target) for _ in range(args.repeats)]
            for k, r in enumerate(runs, 1):
                print(f"hub at 100x #{k}  {r['rps']:9.1f} requests/s   p50 {r['p50'] * 1000:8.2f} ms   "
                      f"p99 {r['p99'] * 1000:8.2f} ms   ({r['n']:.0f} requests offered at {target:.0f}/s, open loop)",
                      flush=True)
            t = {key: median([r[key] for r in runs]) for key in ("rps", "p50", "p99", "n")}
            ratio = h["rps"] / d["rps"]
            print(f"ratio hub capacity/direct {ratio:,.0f}x (goal >= 100x: "
                  f"{'met' if ratio >= GOAL_RATIO else 'MISSED'}); "
                  f"at 100x the direct throughput, median of {args.repeats} runs: p50 {t['p50'] * 1000:.2f} ms, "
                  f"p99 {t['p99'] * 1000:.2f} ms (goal <= 10 ms: "
                  f"{'met' if t['p99'] * 1000 <= GOAL_P99_MS else 'MISSED'})", flush=True)
            delays = run_visibility(server, port, db, baskets, args.changes)
            p95 = percentile(delays, 95)
            print(f"stock change visible through the API after   p50 {median(delays):.2f} s   p95 {p95:.2f} s   "
                  f"max {max(delays):.2f} s   ({len(delays)} changes; goal p95 <= 2 s: "
                  f"{'met' if p95 <= GOAL_VISIBLE_P95_S else 'MISSED'})", flush=True)
            print(json.dumps({"hub": h, "hub_at_100x": t, "direct": d, "ratio": ratio, "visibility_p50": median(delays),
                              "visibility_p95": p95}))
            direct = "direct into Tryton"
            bench_name = "read_path" if args.erp_db == "sqlite" else f"read_path ({args.erp_db})"
            if processes > 1:
                bench_name += f" ({processes} API processes)"
            emit([
                Figure(bench_name, "hub capacity requests/s", h["rps"], "/s", d["rps"], direct),
                Figure(bench_name, "hub capacity / direct", ratio, "x", d["rps"], f"{direct} req/s", GOAL_RATIO,
                       higher=True),
                Figure(bench_name, "p50 at 100x direct", t["p50"] * 1000, "ms", d["p50"] * 1000, direct),
                Figure(bench_name, "p99 at 100x direct", t["p99"] * 1000, "ms", d["p99"] * 1000, direct, GOAL_P99_MS),
                Figure(bench_name, "stock change visible p95", p95, "s", goal=GOAL_VISIBLE_P95_S),
            ])
        finally:
            stop_hub(hub)
            server.stop()


if __name__ == "__main__":
    main()
