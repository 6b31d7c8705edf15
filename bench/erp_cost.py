"""Benchmark: what the hub costs an idle ERP, and how soon an ERP change still shows in the API.

    .venv/bin/python -m bench.erp_cost [--idle-seconds 60] [--samples 12]

Against a real Tryton (a fresh copy of the demo database, SQLite or PostgreSQL) and the hub as ONE process
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

**Per order, end to end** (``--orders``, on fresh copies of the database): the hub takes a burst of
orders (intake -> accepted, credit, contract prices and stock checked, submitted in waves) and the
benchmark counts the ERP requests and the Tryton CPU-seconds until the last has settled, divided by the
orders; next to naive point-to-point (``bench.intake``'s connector: per order, customer, address, products
and contract prices looked up, then create, quote, confirm; 8 at once) and to the adapter's own submit
path alone (``bench.erp``: master data cached, nothing checked, all orders in one call). Drain rates:
orders per second from the first order to the last settled.

**Saturation** (``--saturation-orders``): orders offered open loop at twice the drain rate measured
above; each order's latency from intake to accepted (``order_transitions``), p50/p95/max, against the
time the ERP took to drain the whole backlog: an order that waits much longer than the backlog's drain
was starved by later ones.

Goals (issue 14): idle <= 0.5 calls/s and <= 1% of a core of ERP CPU; a stock change shows within
2 s at p95; per order less ERP CPU than point to point; drain >= 2x point to point and >= 0.9x the
adapter's rate; under saturation max latency <= 1.2x the backlog's drain time.

``--short`` (20 s idle, 4 stock changes, 24 orders, 8 point to point, 40 at saturation) is the form
``python -m bench.all --short`` runs. ``--erp-db postgresql`` runs every phase against Tryton on the local
PostgreSQL server instead of SQLite.

**Push** (a third configuration of the idle phase, unless ``--no-push``): the hub with ``push = true`` in
front of Tryton on PostgreSQL with the ``ordersync_changes`` module (the hub long-polls Tryton's bus and
reads only when signalled, plus one probe a minute). Goal: <= 0.05 calls/s idle, the same CPU and latency
goals.
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

from bench import _tryton
from bench import erp as erp_bench
from bench._common import Figure, emit, median, percentile
from bench._hub import start_hub, stop_hub
from bench.intake import SETTLED, NaiveConnector, make_orders, offer, start_tryton
from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.api.keys import KeyService
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database
from ordersync.store.schema import order_transitions
from ordersync.store.schema import orders as orders_table

TICK = os.sysconf("SC_CLK_TCK")
SKU, PLANT = "SEL-GSK-DN50-PTFE", "PLANT-N"
BASELINE = "poll_seconds = 1\nidle_poll_seconds = 1\nsweep_seconds = 1\n"
PUSH = "push = true\n"
GOAL_CALLS, GOAL_CPU, GOAL_LATENCY, GOAL_PUSH_CALLS = 0.5, 1.0, 2.0, 0.05
GOAL_DRAIN_VS_NAIVE, GOAL_DRAIN_VS_ADAPTER, GOAL_STARVATION = 2.0, 0.9, 1.2


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class ErpCpu:
    """CPU-seconds the ERP has used: trytond's process, and on PostgreSQL also the server backends
    working for its database (the SQL work trytond hands off, which SQLite does inside trytond). A
    backend that exits between two readings loses its share (trytond keeps a pool, so few do)."""

    def __init__(self, server: TrytonServer) -> None:
        self.server = server
        self._backends: dict[int, float] = {}

    def __call__(self) -> float:
        assert self.server.pid is not None
        total = cpu_seconds(self.server.pid)
        if self.server.db_uri:
            import psycopg

            with psycopg.connect(self.server.db_uri + "postgres", autocommit=True) as conn:
                pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                                   (self.server.databases[0],))]
            for pid in pids:
                try:
                    self._backends[pid] = cpu_seconds(pid)
                except (FileNotFoundError, ProcessLookupError):
                    continue
            total += sum(self._backends.values())
        return total


def bench_client(db: Database, port: int, *scopes: str) -> httpx.Client:
    """An HTTP client of the hub on ``port`` with a fresh storefront key (orders, and ``scopes``)."""
    token, _ = KeyService(db, SystemClock()).create("bench", "storefront", ["orders:write", "orders:read", *scopes],
                                                    rate_per_minute=1_000_000)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


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
            erp_db: str = "sqlite") -> dict[str, Any]:
    server = start_tryton(root / f"erp-{label}", home, erp_db)
    hub, port, db = start_hub(server, root, erp_settings=erp_settings, name=f"hub-{label}")
    admin = TrytonSimulator.connect(server.url, server.databases[0])
    try:
        http = bench_client(db, port, "catalog:read")
        for i, body in enumerate(make_orders(6, seed=29)):
            assert http.post("/v1/orders", json=body, headers={"Idempotency-Key": f"c-{i}"}).status_code == 202
        wait_settled(db, 6, 120)
        on_hand(http)  # the read model knows the SKU
        time.sleep(15)  # what the orders set moving (shipments waiting, stock changed) is read and settles
        erp_pid, hub_pid = server.pid, hub.pid
        assert erp_pid is not None
        erp_cpu_now = ErpCpu(server)
        calls0, erp0, hub0, t0 = wire_calls(http), erp_cpu_now(), cpu_seconds(hub_pid), time.monotonic()
        time.sleep(idle_seconds)
        elapsed = time.monotonic() - t0
        calls = wire_calls(http) - calls0
        erp_cpu, hub_cpu = erp_cpu_now() - erp0, cpu_seconds(hub_pid) - hub0
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


def wait_settled(db: Database, n: int, timeout: float) -> dict[str, int]:
    """Wait until ``n`` orders have settled (accepted, rejected, held); their states."""
    deadline = time.monotonic() + timeout
    while True:
        with db.read() as conn:
            states = list(conn.execute(select(orders_table.c.state)).scalars())
        if len(states) >= n and all(s in SETTLED for s in states):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sum(s in SETTLED for s in states)} of {n} orders settled within {timeout:.0f} s")
        time.sleep(0.2)
    return {s: states.count(s) for s in set(states)}


def hub_per_order(home: TrytonHome, root: Path, n: int, erp_db: str = "sqlite") -> dict[str, Any]:
    """A burst of ``n`` orders into the hub; ERP requests and Tryton CPU until the last has settled."""
    server = start_tryton(root / "erp-orders", home, erp_db)
    hub, port, db = start_hub(server, root, name="hub-orders")
    try:
        http = bench_client(db, port)
        warm = make_orders(2, seed=31)
        for i, body in enumerate(warm):  # master data and read model warm, as in a running hub
            assert http.post("/v1/orders", json=body, headers={"Idempotency-Key": f"w-{i}"}).status_code == 202
        wait_settled(db, len(warm), 300)
        assert server.pid is not None
        erp_cpu = ErpCpu(server)
        calls0, cpu0, t0 = wire_calls(http), erp_cpu(), time.perf_counter()
        for i, body in enumerate(make_orders(n, seed=37)):
            assert http.post("/v1/orders", json=body, headers={"Idempotency-Key": f"o-{i}"}).status_code == 202
        states = wait_settled(db, n + len(warm), 60 + 30 * n)
        elapsed = time.perf_counter() - t0
        calls, cpu = wire_calls(http) - calls0, erp_cpu() - cpu0
        http.close()
    finally:
        stop_hub(hub)
        server.stop()
    return {"calls": calls / n, "cpu": cpu / n, "rate": n / elapsed, "states": states}


def naive_per_order(home: TrytonHome, root: Path, n: int, erp_db: str = "sqlite") -> dict[str, Any]:
    """The same kind of orders point to point, 8 at once; requests and Tryton CPU per order."""
    from concurrent.futures import ThreadPoolExecutor

    server = start_tryton(root / "erp-naive", home, erp_db)
    connector = NaiveConnector(server)
    clients: list[Any] = []

    def place(body: dict[str, Any]) -> None:
        client = connector.client()
        if client not in clients:
            clients.append(client)
        connector.place(body)

    try:
        assert server.pid is not None
        place(make_orders(1, seed=41)[0])  # log-in and first-call costs out of the measurement
        calls0 = sum(sum(c.wire.snapshot().values()) for c in clients)
        erp_cpu = ErpCpu(server)
        cpu0, t0 = erp_cpu(), time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(place, make_orders(n, seed=37)))
        elapsed = time.perf_counter() - t0
        calls = sum(sum(c.wire.snapshot().values()) for c in clients) - calls0
        cpu = erp_cpu() - cpu0
    finally:
        server.stop()
    return {"calls": calls / n, "cpu": cpu / n, "rate": n / elapsed}


def adapter_rate(home: TrytonHome, root: Path, n: int, erp_db: str = "sqlite") -> float:
    """``bench.erp``'s adapter path (submit_orders of all ``n``, master data cached): orders/s."""
    server = start_tryton(root / "erp-adapter", home, erp_db)
    user = demo_data.INTEGRATION_USER
    try:
        erp = TrytonErp.connect(name="main", url=server.url, database=server.databases[0], login=user["login"],
                                password=user["password"])
        return n / erp_bench.adapter(erp, erp_bench.make_orders(n, "cost"), 0)
    finally:
        server.stop()


def saturation(home: TrytonHome, root: Path, n: int, rate: float, erp_db: str = "sqlite") -> dict[str, Any]:
    """``n`` orders offered at ``rate``/s; latency intake -> accepted of each, and the backlog's drain."""
    server = start_tryton(root / "erp-saturation", home, erp_db)
    hub, port, db = start_hub(server, root, name="hub-saturation")
    try:
        orders = make_orders(n, seed=43)
        local = bench_client(db, port)

        def send(i: int) -> None:
            r = local.post("/v1/orders", json=orders[i], headers={"Idempotency-Key": f"s-{i}"})
            assert r.status_code == 202, r.text

        t0 = time.perf_counter()
        offer(n, rate, send, threads=4)
        states = wait_settled(db, n, 120 + 20 * n / rate)
        drain = time.perf_counter() - t0
        local.close()
        with db.read() as conn:
            received = dict(conn.execute(select(orders_table.c.id, orders_table.c.received_at)).all())
            accepted = dict(conn.execute(select(order_transitions.c.order_id, order_transitions.c.at)
                                         .where(order_transitions.c.to_state == "accepted")).all())
    finally:
        stop_hub(hub)
        server.stop()
    latencies = [(accepted[o] - received[o]).total_seconds() for o in accepted]
    return {"p50": median(latencies), "p95": percentile(latencies, 95), "max": max(latencies), "drain": drain,
            "accepted": len(latencies), "states": states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs")
    parser.add_argument("--phases", default="idle,orders,saturation", help="any of idle, orders, saturation")
    parser.add_argument("--idle-seconds", type=float, help="default 60; --short: 20")
    parser.add_argument("--samples", type=int, help="stock changes timed per configuration (default 12; --short: 4)")
    parser.add_argument("--orders", type=int, help="orders per end-to-end measurement (default 60; --short: 24)")
    parser.add_argument("--naive-orders", type=int, help="orders sent point to point (default 30; --short: 8)")
    parser.add_argument("--saturation-orders", type=int, help="orders offered at twice the drain rate "
                                                              "(default 400; --short: 40)")
    parser.add_argument("--no-push", action="store_true", help="skip the idle phase's push configuration (it runs "
                                                                "Tryton on the local PostgreSQL whatever --erp-db)")
    _tryton.add_erp_db_argument(parser)
    args = parser.parse_args()
    erp_db = args.erp_db
    short = args.short
    idle_seconds = args.idle_seconds or (20.0 if short else 60.0)
    samples = args.samples or (4 if short else 12)
    n_orders = args.orders or (24 if short else 60)
    naive_n = args.naive_orders or (8 if short else 30)
    saturation_n = args.saturation_orders or (40 if short else 400)
    phases = {p.strip() for p in args.phases.split(",")}
    home = TrytonHome().ensure()
    _tryton.ensure_erp_template(home, erp_db)
    figures: list[Figure] = []
    bench_name = "erp_cost" if erp_db == "sqlite" else f"erp_cost ({erp_db})"

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "idle" in phases:
            print(f"ERP cost benchmark: Tryton ({erp_db}) idle for {idle_seconds:.0f} s behind the hub (one process, "
                  f"SQLite), then {samples} stock changes timed to the API; baseline: a full read every second",
                  flush=True)
            results = {}
            configurations = [("hub", "", erp_db), ("baseline", BASELINE, erp_db)]
            if not args.no_push:  # push needs Tryton's bus, which only PostgreSQL gives
                _tryton.ensure_erp_template(home, "postgresql")
                configurations.append(("push", PUSH, "postgresql"))
            for label, settings, db in configurations:
                results[label] = r = measure(label, home, root, settings, idle_seconds, samples, db)
                print(f"{label:9} idle: {r['calls_per_s']:6.2f} ERP calls/s   ERP CPU {r['erp_cpu_pct']:5.1f}% of a "
                      f"core   hub CPU {r['hub_cpu_pct']:5.1f}%   stock change -> API p50 {r['p50']:.2f} s  "
                      f"p95 {r['p95']:.2f} s  max {r['max']:.2f} s", flush=True)
            hub, base = results["hub"], results["baseline"]
            print(f"idle ERP calls/s   {hub['calls_per_s']:.2f} (baseline {base['calls_per_s']:.2f}, "
                  f"{base['calls_per_s'] / max(hub['calls_per_s'], 1e-9):.0f}x fewer)   goal <= {GOAL_CALLS}: "
                  f"{verdict(hub['calls_per_s'] <= GOAL_CALLS)}")
            print(f"idle ERP CPU       {hub['erp_cpu_pct']:.2f}% of a core (baseline {base['erp_cpu_pct']:.2f}%)   "
                  f"goal <= {GOAL_CPU}%: {verdict(hub['erp_cpu_pct'] <= GOAL_CPU)}")
            print(f"stock change p95   {hub['p95']:.2f} s (baseline {base['p95']:.2f} s)   goal <= {GOAL_LATENCY} s: "
                  f"{verdict(hub['p95'] <= GOAL_LATENCY)}", flush=True)
            base_name = "full read every second"
            figures += [
                Figure(bench_name, "idle ERP calls/s", hub["calls_per_s"], "/s", base["calls_per_s"], base_name,
                       GOAL_CALLS),
                Figure(bench_name, "idle ERP CPU", hub["erp_cpu_pct"], "% core", base["erp_cpu_pct"], base_name,
                       GOAL_CPU),
                Figure(bench_name, "stock change -> API p95", hub["p95"], "s", base["p95"], base_name, GOAL_LATENCY),
            ]
            if "push" in results:
                push = results["push"]
                print(f"with push (Tryton on PostgreSQL, ordersync_changes): idle {push['calls_per_s']:.3f} ERP "
                      f"calls/s (poll {hub['calls_per_s']:.2f})   goal <= {GOAL_PUSH_CALLS}: "
                      f"{verdict(push['calls_per_s'] <= GOAL_PUSH_CALLS)};   ERP CPU {push['erp_cpu_pct']:.2f}% "
                      f"goal <= {GOAL_CPU}%: {verdict(push['erp_cpu_pct'] <= GOAL_CPU)};   stock change p95 "
                      f"{push['p95']:.2f} s goal <= {GOAL_LATENCY} s: {verdict(push['p95'] <= GOAL_LATENCY)}",
                      flush=True)
                poll_name = f"poll, Tryton on {erp_db}"
                figures += [
                    Figure(bench_name, "push: idle ERP calls/s", push["calls_per_s"], "/s", hub["calls_per_s"],
                           poll_name, GOAL_PUSH_CALLS),
                    Figure(bench_name, "push: idle ERP CPU", push["erp_cpu_pct"], "% core", hub["erp_cpu_pct"],
                           poll_name, GOAL_CPU),
                    Figure(bench_name, "push: stock change -> API p95", push["p95"], "s", hub["p95"], poll_name,
                           GOAL_LATENCY),
                ]
        rate = None
        if "orders" in phases:
            print(f"per order: {n_orders} orders into the hub (a burst; until the last has settled), {naive_n} "
                  f"point to point (8 at once), {n_orders} through the adapter alone", flush=True)
            hub_r = hub_per_order(home, root, n_orders, erp_db)
            naive_r = naive_per_order(home, root, naive_n, erp_db)
            adapter = adapter_rate(home, root, n_orders, erp_db)
            rate = hub_r["rate"]
            print(f"  hub             {hub_r['calls']:6.1f} ERP requests/order   {hub_r['cpu'] * 1000:7.0f} ms "
                  f"Tryton CPU/order   drain {hub_r['rate']:.2f} orders/s   states {hub_r['states']}")
            print(f"  point to point  {naive_r['calls']:6.1f} ERP requests/order   {naive_r['cpu'] * 1000:7.0f} ms "
                  f"Tryton CPU/order   drain {naive_r['rate']:.2f} orders/s")
            print(f"  adapter alone (bench.erp's path, nothing checked)   drain {adapter:.2f} orders/s")
            print(f"  Tryton CPU per order hub / point to point {hub_r['cpu'] / naive_r['cpu']:.2f}   goal <= 1: "
                  f"{verdict(hub_r['cpu'] <= naive_r['cpu'])}")
            print(f"  drain hub / point to point {hub_r['rate'] / naive_r['rate']:.2f}x   goal >= "
                  f"{GOAL_DRAIN_VS_NAIVE}x: {verdict(hub_r['rate'] >= GOAL_DRAIN_VS_NAIVE * naive_r['rate'])};   "
                  f"hub / adapter alone {hub_r['rate'] / adapter:.2f}x   goal >= {GOAL_DRAIN_VS_ADAPTER}x: "
                  f"{verdict(hub_r['rate'] >= GOAL_DRAIN_VS_ADAPTER * adapter)}", flush=True)
            figures += [
                Figure(bench_name, "ERP requests per order", hub_r["calls"], "", naive_r["calls"], "point to point"),
                Figure(bench_name, "Tryton CPU per order", hub_r["cpu"] * 1000, "ms", naive_r["cpu"] * 1000,
                       "point to point", naive_r["cpu"] * 1000),
                Figure(bench_name, "drain hub / point to point", hub_r["rate"] / naive_r["rate"], "x",
                       naive_r["rate"], "point to point orders/s", GOAL_DRAIN_VS_NAIVE, higher=True),
                Figure(bench_name, "drain hub / adapter alone", hub_r["rate"] / adapter, "x", adapter,
                       "adapter orders/s", GOAL_DRAIN_VS_ADAPTER, higher=True),
            ]
        if "saturation" in phases:
            offered = 2 * (rate or 1.0)
            print(f"saturation: {saturation_n} orders offered at {offered:.2f}/s (twice the drain rate"
                  + (" measured above" if rate else "; no drain rate measured, 1 order/s assumed") + ")", flush=True)
            sat = saturation(home, root, saturation_n, offered, erp_db)
            ratio = sat["max"] / sat["drain"]
            print(f"  intake -> accepted ({sat['accepted']:.0f} accepted)   p50 {sat['p50']:.1f} s   "
                  f"p95 {sat['p95']:.1f} s   max {sat['max']:.1f} s;   the backlog drained in {sat['drain']:.1f} s;   "
                  f"max / drain "
                  f"{ratio:.2f}   goal <= {GOAL_STARVATION}: {verdict(ratio <= GOAL_STARVATION)}", flush=True)
            figures += [
                Figure(bench_name, "saturated: max latency / backlog drain", ratio, "x", sat["drain"],
                       "backlog drain s", GOAL_STARVATION),
                Figure(bench_name, "saturated: latency p95", sat["p95"], "s", sat["drain"], "backlog drain s"),
            ]
    emit(figures)


if __name__ == "__main__":
    main()
