"""Benchmark: the hub's intake under a storefront load, with a real Tryton draining behind it, next to
the same orders sent point to point into Tryton, measured in the same run.

    .venv/bin/python -m bench.intake [--orders 2000] [--rate 200] [--naive-orders 100]

1. The hub runs as ONE process on the embedded default (`ordersync serve`: API + worker, SQLite,
   in-process bus) in front of a fresh copy of the demo Tryton database.
2. The load generator (this process) offers ``--orders`` orders at ``--rate`` per second (open loop:
   each order is sent at its scheduled time by a pool of client threads) to ``POST /v1/orders`` and
   records each request's latency. Then it waits until every order has settled (accepted, rejected or
   held) and reports how long the ERP took to drain them.
3. Baseline, point to point: ``--naive-orders`` of the same orders go straight into Tryton (a fresh
   copy), one call chain per order as a naive connector does inside the storefront's webhook (look up
   customer and products, read contract prices, create, quote, confirm), with 8 such handlers at once,
   orders arriving at the same rate. Its latency is arrival to confirmation; its service time is the
   chain alone.
4. Fan-out check (same run as 1-2): the time from the last order offered until every transactional
   consumer (projections, counters, outbound fan-out) has nothing left to do, while the ERP is still
   saturated: what the I/O lanes are for (no projection waits behind an ERP call).
5. Capacity (``--capacity-seconds``, see ``bench/_capacity.py``): orders/s with 32 clients sending back
   to back, the ERP twin behind the hub, for ``ordersync serve --no-worker`` (intake alone) and
   ``ordersync serve`` (with its worker), next to a bare FastAPI endpoint validating the same body and
   storing nothing, and one committing each order to SQLite on its own (naive durable intake).

6. Tracing (``--tracing-orders``, 0 skips it): ``ordersync serve`` (API + worker, SQLite, the ERP twin
   behind it) with tracing off and on, alternating ``--tracing-rounds`` times each, fresh orders offered at
   ``--rate``; on, every process exports its spans through the batch span processor and the OTLP/HTTP
   exporter to a local OTLP sink (``bench/_tracing.py``). Printed: p50 and p99 off and on, and the cost
   of tracing on the p99 (goal <= 10%).

``--short`` (600 orders, 8 point-to-point orders, 20 s of drain, 4 s per capacity server, 1,000 orders
per tracing round, one round each) is the form ``python -m bench.all --short`` runs.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import _tryton
from bench._capacity import GOALS, capacity_table, run_capacity
from bench._common import Figure, emit, median, percentile
from bench._hub import start_hub, stop_hub
from bench._load import open_loop, request_bytes
from bench._tracing import GOAL_PERCENT as TRACING_GOAL
from bench._tracing import intake_p99
from bench._tracing import verdict as tracing_verdict
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUnavailable, TrytonUserWarning
from ordersync.api.keys import KeyService
from ordersync.bootstrap import build_registry
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.domain.clock import SystemClock
from ordersync.store.schema import deliveries
from ordersync.store.schema import orders as orders_table

SETTLED = ("accepted", "rejected", "on_hold", "cancelled")
PROFILE = demo_data.profile("main")
#: the hub's transactional consumers (projections, counters, fan-out): they must keep up while the ERP
#: is saturated
_REGISTRY = build_registry()
TX_CONSUMERS = sorted(name for name in _REGISTRY.names() if _REGISTRY[name].mode == "tx")
GOAL_P99_MS = 20.0
GOAL_FANOUT_S = 2.0


def make_orders(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Small orders of well-stocked items, mostly from the customers with room on their credit."""
    rng = random.Random(seed)
    stocked = [p for p in PROFILE["products"] if min(p["stock"].values(), default=0) >= 100
               and len(p["stock"]) == 2 and Decimal(p["list_price"]) < 60]
    customers = ["C-1003", "C-1003", "C-1003", "C-1001", "C-1001", "C-1002"]
    out = []
    for i in range(n):
        customer = rng.choice(customers)
        lines = []
        for no, product in enumerate(rng.sample(stocked, rng.randint(1, 3)), start=1):
            pack = int(demo_data.pack_multiple(PROFILE, product["sku"]))
            minimum = int(demo_data.minimum_quantity(PROFILE, product["sku"]))
            qty = max(minimum, pack * rng.randint(1, 2))
            lines.append({"line_no": no, "sku": product["sku"], "quantity": str(qty)})
        address = demo_data.customer(PROFILE, customer)["addresses"][0]["key"]
        out.append({"external_order_number": f"BENCH-{seed}-{i:05d}", "account_id": customer,
                    "ship_to_id": address, "currency": "EUR", "lines": lines})
    return out


def start_tryton(root: Path, home: TrytonHome, erp_db: str = "sqlite") -> TrytonServer:
    return _tryton.start_tryton(root, home, erp_db)


def offer(n: int, rate: float, send: Any, threads: int) -> list[float]:
    """Call ``send(i)`` for i in range(n) at ``rate`` per second; returns each call's latency (s)."""
    latencies: list[float] = [0.0] * n
    start = time.perf_counter() + 0.2

    def one(i: int) -> None:
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        send(i)
        latencies[i] = time.perf_counter() - t0

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return latencies


def run_hub(orders: list[dict[str, Any]], rate: float, home: TrytonHome, root: Path, drain_timeout: float,
            erp_db: str = "sqlite") -> dict[str, float]:
    server = start_tryton(root / "erp", home, erp_db)
    hub, port, db = start_hub(server, root)
    try:
        token, _ = KeyService(db, SystemClock()).create("bench storefront", "storefront",
                                                        ["orders:write", "orders:read"], rate_per_minute=1_000_000)
        host = f"127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        requests = [request_bytes("POST", "/v1/orders", host, {**auth, "Idempotency-Key": f"k-{i}"}, body)
                    for i, body in enumerate(orders)]
        t0 = time.perf_counter()
        result = open_loop("127.0.0.1", port, requests, rate)
        offered_seconds = result.elapsed
        latencies = result.latencies
        failures = [s for s in result.statuses if s != 202]
        assert not failures, f"{len(failures)} requests failed: {failures[:5]}"
        offered_at = time.perf_counter()
        fanout_s = float("nan")
        settled_states: dict[str, int] = {}
        settled = 0
        next_report = time.monotonic() + 30
        while True:
            with db.read() as conn:
                settled_states = {s: int(n) for s, n in conn.execute(
                    select(orders_table.c.state, func.count()).group_by(orders_table.c.state))}
                if fanout_s != fanout_s:  # not caught up yet (NaN)
                    left = conn.execute(select(func.count()).select_from(deliveries)
                                        .where(deliveries.c.consumer.in_(TX_CONSUMERS))).scalar_one()
                    if not left:
                        fanout_s = time.perf_counter() - offered_at
            settled = sum(n for s, n in settled_states.items() if s in SETTLED)
            if settled >= len(orders) or time.perf_counter() - t0 > drain_timeout:
                break
            if time.monotonic() >= next_report:
                print(f"  ... {settled}/{len(orders)} orders settled after {time.perf_counter() - t0:.0f} s",
                      flush=True)
                next_report += 30
            time.sleep(0.5 if fanout_s == fanout_s else 0.05)
        drain = time.perf_counter() - t0
    finally:
        stop_hub(hub)
        server.stop()
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies),
            "offered_s": offered_seconds, "drain_s": drain, "settled": settled, "fanout_s": fanout_s,
            "states": settled_states}  # type: ignore[dict-item]


class NaiveConnector:
    """What a point-to-point connector does for each order, inside the storefront's request."""

    def __init__(self, server: TrytonServer) -> None:
        user = demo_data.INTEGRATION_USER
        self.local = threading.local()
        self.url, self.login, self.password = server.url, user["login"], user["password"]
        self.database = server.databases[0]

    def client(self) -> TrytonClient:
        if not hasattr(self.local, "client"):
            self.local.client = TrytonClient(self.url, self.database, self.login, self.password)
        client: TrytonClient = self.local.client
        return client

    def place(self, body: dict[str, Any]) -> None:
        c = self.client()
        ref = f"NAIVE-{body['external_order_number']}"
        if c.call("sale.sale", "search", [("reference", "=", ref)], 0, 1, None):
            return
        [party] = c.call("party.party", "search_read", [("code", "=", body["account_id"])], 0, 1, None,
                         ["sale_price_list", "customer_payment_term", "addresses"])
        [address] = c.call("party.address", "search", [("building_name", "=", body["ship_to_id"])], 0, 1, None)
        [wh] = c.call("stock.location", "search", [("code", "=", "PLANT-N")], 0, 1, None)
        lines = []
        for line in body["lines"]:
            [product] = c.call("product.product", "search_read", [("code", "=", line["sku"])], 0, 1, None,
                               ["default_uom"])
            ctx = {"customer": party["id"], "price_list": party["sale_price_list"], "quantity": float(line["quantity"])}
            [price] = c.call("product.product", "read", [product["id"]], ["sale_price_uom"], context=ctx)
            lines.append({"type": "line", "product": product["id"], "quantity": float(line["quantity"]),
                          "unit": product["default_uom"], "unit_price": price["sale_price_uom"]})
        [sale] = c.call("sale.sale", "create", [{
            "party": party["id"], "reference": ref, "warehouse": wh, "shipment_address": address,
            "invoice_address": address, "price_list": party["sale_price_list"],
            "payment_term": party["customer_payment_term"], "lines": [["create", lines]]}])
        for button in ("quote", "confirm"):
            for attempt in range(1, 31):
                try:
                    c.call("sale.sale", button, [sale])
                    break
                except TrytonUserWarning as warning:  # a naive connector just clicks "yes"
                    c.skip_warning(warning.name)
                except TrytonUnavailable:  # 503: on PostgreSQL a concurrent confirm holds the lock it needs
                    time.sleep(0.1 * attempt)
            else:
                raise RuntimeError(f"{ref}: {button} still refused after 30 attempts")


def run_naive(orders: list[dict[str, Any]], rate: float, home: TrytonHome, root: Path, erp_db: str = "sqlite"
              ) -> dict[str, float]:
    server = start_tryton(root / "naive-erp", home, erp_db)
    connector = NaiveConnector(server)
    service: list[float] = []
    lock = threading.Lock()
    # arrival -> confirmation: orders queue for one of 8 handlers, as webhooks do at a real connector
    arrivals = [i / rate for i in range(len(orders))]
    done = [0.0] * len(orders)
    start = time.perf_counter()

    def handle(i: int) -> None:
        t0 = time.perf_counter()
        connector.place(orders[i])
        t1 = time.perf_counter()
        with lock:
            service.append(t1 - t0)
        done[i] = t1 - start

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(len(orders)):
                delay = start + arrivals[i] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(handle, i))
            for future in futures:
                future.result()  # a failing chain is a failed benchmark, not a silent gap
        elapsed = time.perf_counter() - start
    finally:
        server.stop()
    latencies = [done[i] - arrivals[i] for i in range(len(orders))]
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "service_p50": median(service), "service_p99": percentile(service, 99),
            "rate": len(orders) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs")
    parser.add_argument("--orders", type=int, help="orders offered to the hub (default 2000; --short: 600)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--naive-orders", type=int, help="orders sent point to point (default 100; --short: 8)")
    parser.add_argument("--drain-timeout", type=float,
                        help="stop waiting for the ERP after this many seconds and report the partial drain rate "
                             "(default 3600; --short: 20)")
    parser.add_argument("--capacity-seconds", type=float,
                        help="closed-loop seconds per server in the capacity phase, 0 skips it (default 10; "
                             "--short: 4)")
    parser.add_argument("--tracing-orders", type=int,
                        help="orders per tracing on/off round, 0 skips the phase (default 4000; --short: 1000)")
    parser.add_argument("--tracing-rounds", type=int, help="tracing off/on rounds (default 3; --short: 1)")
    _tryton.add_erp_db_argument(parser)
    args = parser.parse_args()
    short = args.short
    n_orders = args.orders or (600 if short else 2000)
    naive_orders = args.naive_orders or (8 if short else 100)
    drain_timeout = args.drain_timeout or (20.0 if short else 3600.0)
    capacity_seconds = args.capacity_seconds if args.capacity_seconds is not None else (4.0 if short else 10.0)
    tracing_orders = args.tracing_orders if args.tracing_orders is not None else (1000 if short else 4000)
    tracing_rounds = args.tracing_rounds or (1 if short else 3)
    home = TrytonHome().ensure()
    _tryton.ensure_erp_template(home, args.erp_db)
    orders = make_orders(n_orders)
    figures: list[Figure] = []
    bench_name = "intake" if args.erp_db == "sqlite" else f"intake ({args.erp_db})"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"intake benchmark: {n_orders} orders offered at {args.rate:.0f}/s to the hub "
              f"(one process: API + worker, SQLite) with Tryton on {args.erp_db} behind it", flush=True)
        hub = run_hub(orders, args.rate, home, root, drain_timeout, args.erp_db)
        print(f"hub intake latency   p50 {hub['p50'] * 1000:8.1f} ms   p99 {hub['p99'] * 1000:8.1f} ms   "
              f"max {hub['max'] * 1000:8.1f} ms   goal p99 <= {GOAL_P99_MS:.0f} ms: "
              f"{'met' if hub['p99'] * 1000 <= GOAL_P99_MS else 'MISSED'}")
        fanout = hub["fanout_s"]
        print(f"fan-out and projections ({len(TX_CONSUMERS)} transactional consumers) caught up "
              + (f"{fanout:.2f} s after the last order was offered" if fanout == fanout else
                 "NOT within the run") + f", the ERP still saturated; goal <= {GOAL_FANOUT_S:.0f} s: "
              + ("met" if fanout <= GOAL_FANOUT_S else "MISSED"))
        what = "all orders" if hub["settled"] >= n_orders else (
            f"only {hub['settled']:.0f} of {n_orders} orders (stopped waiting at --drain-timeout)")
        drain_rate = hub["settled"] / hub["drain_s"]
        print(f"offered in {hub['offered_s']:.1f} s; the ERP drained {what} {hub['drain_s']:.1f} s after the "
              f"first ({drain_rate:.2f} orders/s); final states {hub['states']}", flush=True)
        naive = run_naive(orders[:naive_orders], args.rate, home, root, args.erp_db)
        print(f"point to point ({naive_orders} orders, 8 handlers)   latency p50 {naive['p50']:8.2f} s   "
              f"p99 {naive['p99']:8.2f} s   service time p50 {naive['service_p50']:.2f} s "
              f"p99 {naive['service_p99']:.2f} s   {naive['rate']:.2f} orders/s")
        print(f"ratio naive/hub intake latency: p50 {naive['p50'] / hub['p50']:,.0f}x   "
              f"p99 {naive['p99'] / hub['p99']:,.0f}x   (naive service time alone vs hub p99: "
              f"{naive['service_p99'] / hub['p99']:,.0f}x)", flush=True)
        figures += [
            Figure(bench_name, "intake latency p50 at 200/s, Tryton behind", hub["p50"] * 1000, "ms",
                   naive["service_p50"] * 1000, "point-to-point chain"),
            Figure(bench_name, "intake latency p99 at 200/s, Tryton behind", hub["p99"] * 1000, "ms",
                   naive["service_p99"] * 1000, "point-to-point chain", goal=GOAL_P99_MS),
            Figure(bench_name, "fan-out caught up after the last order", fanout, "s", goal=GOAL_FANOUT_S),
            Figure(bench_name, "ERP drain behind the hub", drain_rate, "orders/s", naive["rate"], "point to point"),
        ]
        if capacity_seconds > 0:
            print(f"capacity: 32 clients back to back, {capacity_seconds:.0f} s per server, ERP twin behind the hub",
                  flush=True)
            cap = run_capacity(make_orders, root / "capacity", seconds=capacity_seconds)
            for name, label in (("bare", "bare FastAPI (validates, stores nothing)"),
                                ("naive", "naive durable (one SQLite commit per order)"),
                                ("intake", "ordersync serve --no-worker (intake alone)"),
                                ("with_worker", "ordersync serve (intake + worker)")):
                r = cap[name]
                print(f"  {label:48s} {r['rate']:8,.0f} orders/s   p50 {r['p50'] * 1000:6.1f} ms   "
                      f"p99 {r['p99'] * 1000:6.1f} ms")
            for what, ratio, goal, verdict in capacity_table(cap):
                print(f"  {what:34s} {ratio:5.2f}x   goal >= {goal}x: {verdict}")
            figures += [
                Figure(bench_name, "capacity: intake alone / bare FastAPI", cap["intake"]["rate"] / cap["bare"]["rate"],
                       "x", cap["bare"]["rate"], "bare FastAPI req/s", GOALS["intake_vs_bare"], higher=True),
                Figure(bench_name, "capacity: intake alone / naive durable",
                       cap["intake"]["rate"] / cap["naive"]["rate"], "x", cap["naive"]["rate"],
                       "naive durable req/s", GOALS["intake_vs_naive"], higher=True),
                Figure(bench_name, "capacity: intake + worker / bare FastAPI",
                       cap["with_worker"]["rate"] / cap["bare"]["rate"], "x", cap["bare"]["rate"],
                       "bare FastAPI req/s", GOALS["with_worker_vs_bare"], higher=True),
            ]
        if tracing_orders > 0:
            figures.append(tracing_phase(root, tracing_orders, args.rate, tracing_rounds, bench_name))
    emit(figures)


def tracing_phase(root: Path, orders: int, rate: float, rounds: int, bench_name: str) -> Figure:
    print(f"tracing: ordersync serve (API + worker, SQLite, ERP twin behind it), {orders} orders at {rate:.0f}/s "
          f"per run, off and on alternating, {rounds} run(s) each; batch span processor + OTLP/HTTP exporter to "
          "a local sink", flush=True)
    t = intake_p99(make_orders, root / "tracing", orders=orders, rate=rate, rounds=rounds)
    print(f"  tracing off   p50 {t['off_p50'] * 1000:8.1f} ms   p99 {t['off_p99'] * 1000:8.1f} ms")
    print(f"  tracing on    p50 {t['on_p50'] * 1000:8.1f} ms   p99 {t['on_p99'] * 1000:8.1f} ms   "
          f"({t['spans']:,.0f} spans received by the sink in the last run)")
    verdict = tracing_verdict(t["cost"])
    print(f"  cost of tracing on intake p99: {t['cost']:+.1f}%   goal <= {TRACING_GOAL:.0f}%: {verdict}", flush=True)
    return Figure(bench_name, "cost of tracing on intake p99", t["cost"], "%", t["off_p99"] * 1000,
                  "ms p99, tracing off", TRACING_GOAL)


if __name__ == "__main__":
    main()
