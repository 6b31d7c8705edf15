"""Benchmark: sales orders per second into Tryton, the adapter's path next to two baselines of the same run.

    .venv/bin/python -m bench.erp [--orders 100] [--chunks 20] [--batch 0] [--repeat 1] [--short]

On fresh copies of the seeded ``main`` database (one per run, so no run eats another's stock or credit),
served by a trytond of its own, the same N orders (3 lines each, customers, plants and SKUs varied,
always within stock and credit) are submitted three ways:

(a) naive point-to-point: per order, search the reference, create, quote, confirm, one order after the
    other (four round trips per order, each a Tryton transaction);
(b) Tryton's best batched rate, raw RPC: one ``create`` of all N sales, one ``quote``, one ``confirm``;
(c) the adapter: ``TrytonErp.submit_orders`` with all N orders (``--batch`` > 0: in calls of that many),
    reference search, duplicate check and outcome bookkeeping included, master data cached beforehand as
    in a running hub. It creates all missing sales in one call, then quotes and confirms them in chunks
    (``--chunks 10,20,40`` measures several chunk sizes, each on its own database).

Why chunks: Tryton's stock check (on quote and on confirm) walks the lines of every other sale in
quotation state, and a confirm runs it four times (the credit check locks three tables, and trytond
restarts the transaction for each lock it did not hold), so one confirm of N quotations costs O(N^2);
20 at a time measured best for 100 orders here.

It prints orders/s of each (medians over ``--repeat`` runs) and the ratios of the best adapter chunk size
to best batched (goal >= 0.9) and to naive (goal >= 3). Building the Tryton environment and templates the
first time takes ~2.5 min (cached in ~/.cache/ordersync afterwards).

``--short`` (the form ``python -m bench.all --short`` runs): 40 orders (two adapter chunks of 20), one
run; explicit options override it. With fewer orders the O(N^2) confirm weighs less, so the ratio to
best batched reads lower than with 100.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import _tryton
from bench._common import Figure, emit, median
from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.adapters.erp.tryton.submit import DEFAULT_CHUNK
from ordersync.adapters.erp.tryton.submit_plan import Job, create_values, prepare
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.ports.erp import SalesOrderLine, SalesOrderRequest, SubmitOutcome, order_reference

PROFILE = demo_data.profile("main")
CUSTOMERS = ["C-1001", "C-1002", "C-1003"]  # C-1004 sits at its credit limit on purpose; C-1005 is inactive
GOAL_VS_BATCHED = 0.9  # adapter orders/s over Tryton's best batched rate
GOAL_VS_NAIVE = 3.0  # adapter orders/s over naive point-to-point


def make_orders(n: int, run: str) -> list[SalesOrderRequest]:
    """N orders of 3 lines, round-robin over customers, plants and well-stocked SKUs without packs."""
    plants = [w["code"] for w in PROFILE["warehouses"]]
    per_plant = {
        plant: [
            p["sku"]
            for p in PROFILE["products"]
            if demo_data.forecast(PROFILE, p["sku"], plant) >= 60
            and "pack_multiple" not in p
            and "minimum_quantity" not in p
            and Decimal(p["list_price"]) < 300
        ]
        for plant in plants
    }
    cycles = {plant: itertools.cycle(skus) for plant, skus in per_plant.items()}
    orders = []
    for i in range(n):
        customer, plant = CUSTOMERS[i % len(CUSTOMERS)], plants[(i // len(CUSTOMERS)) % len(plants)]
        skus: list[str] = []
        while len(skus) < 3:  # three different SKUs
            sku = next(cycles[plant])
            if sku not in skus:
                skus.append(sku)
        order_id = f"bench{run}{i:05d}"
        lines = tuple(
            SalesOrderLine(
                line_no=k,
                sku=sku,
                quantity=Decimal(1 + (i + k) % 3),
                unit_price=demo_data.contract_price(PROFILE, customer, sku, 1 + (i + k) % 3),
            )
            for k, sku in enumerate(skus, 1)
        )
        orders.append(
            SalesOrderRequest(
                reference=order_reference(order_id, plant),
                order_id=order_id,
                account_id=customer,
                plant=plant,
                currency="EUR",
                lines=lines,
            )
        )
    return orders


def sale_values(directory: Directory, orders: list[SalesOrderRequest]) -> list[dict[str, Any]]:
    """The raw ``create`` values of the orders (ids resolved beforehand, as every variant gets them)."""
    values = []
    for request in orders:
        job = Job(0, request)
        prepare(job, directory, dt.date.today())
        assert job.result is None, job.result
        values.append(create_values(job))
    return values


def naive(client: TrytonClient, orders: list[SalesOrderRequest], values: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for request, vals in zip(orders, values, strict=True):
        found = client.call("sale.sale", "search", [("reference", "=", request.reference)], 0, None, None)
        assert not found
        (sale_id,) = client.call("sale.sale", "create", [vals])
        client.call("sale.sale", "quote", [sale_id])
        client.call("sale.sale", "confirm", [sale_id])
    return time.perf_counter() - started


def batched(client: TrytonClient, values: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    ids = client.call("sale.sale", "create", values)
    client.call("sale.sale", "quote", ids)
    client.call("sale.sale", "confirm", ids)
    return time.perf_counter() - started


def adapter(erp: TrytonErp, orders: list[SalesOrderRequest], batch: int) -> float:
    erp.directory.snapshot()  # a running hub has its master data cached
    started = time.perf_counter()
    batch = batch or len(orders)
    for i in range(0, len(orders), batch):
        results = erp.submit_orders(orders[i : i + batch])
        refused = [r for r in results if r.outcome is not SubmitOutcome.ACCEPTED]
        assert not refused, refused[:3]
    return time.perf_counter() - started


def confirmed(client: TrytonClient, prefix: str) -> int:
    return int(
        client.call(
            "sale.sale",
            "search_count",
            [("reference", "like", f"OS-{prefix}%"), ("state", "in", ["processing", "done"])],
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs (see above)")
    parser.add_argument("--orders", type=int, help="orders per variant (default 100; --short: 40)")
    parser.add_argument("--chunks", default=str(DEFAULT_CHUNK), help="adapter chunk sizes to measure, e.g. 10,20,40")
    parser.add_argument("--batch", type=int, default=0, help="orders per submit_orders call (0: all at once)")
    parser.add_argument("--repeat", type=int, help="runs per variant, the median is printed (default 1; --short: 1)")
    _tryton.add_erp_db_argument(parser)
    args = parser.parse_args(argv)
    args.orders = args.orders if args.orders is not None else (40 if args.short else 100)
    args.repeat = args.repeat if args.repeat is not None else 1
    user = demo_data.INTEGRATION_USER
    chunks = [int(c) for c in args.chunks.split(",")]

    home = TrytonHome().ensure()
    _tryton.ensure_erp_template(home, args.erp_db)
    runs = [f"r{r}" for r in range(args.repeat)]
    variants = ["naive", "batched", *(f"adapter{c}" for c in chunks)]
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="ordersync-bench-erp-") as tmp:
        data_dir = Path(tmp)
        names = [f"{v}_{r}" for r in runs for v in variants]
        server, databases = _tryton.serve_copies(data_dir, home, names, args.erp_db)
        with server:
            for run in runs:
                for v in variants:
                    client = TrytonClient(server.url, databases[f"{v}_{run}"], user["login"], user["password"],
                                          timeout=900)
                    tag = f"{v[0]}{v[7:]}{run}"
                    orders = make_orders(args.orders, tag)
                    if v == "naive":
                        seconds[v].append(naive(client, orders, sale_values(Directory(client), orders)))
                    elif v == "batched":
                        seconds[v].append(batched(client, sale_values(Directory(client), orders)))
                    else:
                        erp = TrytonErp(client, chunk=int(v.removeprefix("adapter")),
                                        regions=demo_data.subdivision_regions())
                        seconds[v].append(adapter(erp, orders, args.batch))
                    done = confirmed(client, f"bench{tag}")
                    assert done == args.orders, f"{v}: {done} of {args.orders} confirmed"
                    client.close()
                    print(f"run {run}: {v} {seconds[v][-1]:.1f} s", flush=True)
    rate = {v: args.orders / median(seconds[v]) for v in variants}
    best = max(chunks, key=lambda c: rate[f"adapter{c}"])
    print(f"\n{args.orders} orders x 3 lines, trytond 8.2 on {args.erp_db}, median of {args.repeat} run(s)")
    print(f"  (a) naive point-to-point (search, create, quote, confirm per order): {rate['naive']:6.2f} orders/s")
    print(f"  (b) best batched raw RPC (one create, one quote, one confirm):       {rate['batched']:6.2f} orders/s")
    for c in chunks:
        calls = "all orders in one call" if not args.batch else f"calls of {args.batch}"
        print(f"  (c) TrytonErp.submit_orders, {calls}, chunk {c:>3}:    {rate[f'adapter{c}']:6.2f} orders/s")
    top = rate[f"adapter{best}"]
    print(f"  chunk {best}: adapter / best batched = {top / rate['batched']:.2f}  (goal >= {GOAL_VS_BATCHED})")
    print(f"  chunk {best}: adapter / naive        = {top / rate['naive']:.2f}  (goal >= {GOAL_VS_NAIVE:.0f})")
    bench_name = "erp" if args.erp_db == "sqlite" else f"erp ({args.erp_db})"
    emit([
        Figure(bench_name, f"adapter orders/s (chunk {best})", top, "orders/s", rate["batched"],
               "best batched raw RPC"),
        Figure(bench_name, f"adapter / best batched (chunk {best})", top / rate["batched"], "x", rate["batched"],
               "best batched orders/s", GOAL_VS_BATCHED, higher=True),
        Figure(bench_name, f"adapter / naive (chunk {best})", top / rate["naive"], "x", rate["naive"],
               "naive point-to-point orders/s", GOAL_VS_NAIVE, higher=True),
    ])


if __name__ == "__main__":
    main()
