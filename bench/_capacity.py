"""The capacity phase of ``bench/intake.py``: how many orders per second each server takes with
``connections`` clients sending back to back (closed loop), the ERP twin behind the hub so that no ERP
limits it, next to two baselines started the same way in the same run (see ``bench/_baselines.py``).

Each server runs alone (one after the other) as its own process on the same two cores as this load
generator; each is warmed up for a second before ``seconds`` of measurement.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import percentile
from bench._hub import start_server, stop_hub
from bench._load import closed_loop, request_bytes
from ordersync.api.keys import KeyService
from ordersync.devkit.tryton.server import free_port
from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database, sqlite_url

#: goals of the issue that asked for this phase (issue 14): intake alone against the bare web stack and
#: against naive durable intake, and with the worker in the same process against the bare stack
GOALS = {"intake_vs_bare": 0.7, "intake_vs_naive": 1.5, "with_worker_vs_bare": 0.5}


def _measure(port: int, requests: list[bytes], connections: int, seconds: float) -> dict[str, float]:
    # warm-up, on orders not measured; never twice the same order (a faster server than the warm-up set
    # allows would send duplicates, which take another path, and broke the naive baseline's SQLite)
    closed_loop("127.0.0.1", port, requests[-2000:], connections, 1.0, wrap=False)
    result = closed_loop("127.0.0.1", port, requests[:-2000], connections, seconds, wrap=False)
    bad = [s for s in result.statuses if s != 202]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(result.statuses)} requests failed, e.g. HTTP {bad[0]}")
    return {"rate": len(result.latencies) / result.elapsed, "p50": percentile(result.latencies, 50),
            "p99": percentile(result.latencies, 99)}


def run_capacity(make_orders: Callable[[int, int], list[dict[str, Any]]], root: Path, *, seconds: float,
                 connections: int = 32, progress: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Requests/s and latency of: ``bare``, ``naive``, ``intake`` (``ordersync serve --no-worker``) and
    ``with_worker`` (``ordersync serve``), each fed unique orders (no duplicate takes a cheaper path)."""
    root.mkdir(parents=True, exist_ok=True)
    count = int(seconds * 6000) + 2000  # more than any of them takes on two cores: no order is sent twice
    orders = make_orders(count, 29)
    results: dict[str, dict[str, float]] = {}
    python = sys.executable

    for name, factory, env in (("bare", "bare_app", {}),
                               ("naive", "naive_app", {"BENCH_NAIVE_DB": str(root / "naive.db")})):
        port = free_port()
        requests = [request_bytes("POST", "/v1/orders", f"127.0.0.1:{port}", {}, body) for body in orders]
        proc = start_server([python, "-m", "uvicorn", "--factory", f"bench._baselines:{factory}", "--port", str(port),
                       "--log-level", "warning", "--no-access-log"], port, root / f"{name}.log", env)
        try:
            results[name] = _measure(port, requests, connections, seconds)
        finally:
            stop_hub(proc)
        progress(f"  capacity {name}: {results[name]['rate']:,.0f} req/s")
    for name, flags in (("intake", ["--no-worker"]), ("with_worker", []),
                        ("intake_2p", ["--no-worker", "--workers", "2"]), ("with_worker_2p", ["--workers", "2"])):
        data_dir = root / f"hub-{name}"
        data_dir.mkdir()
        (data_dir / "ordersync.toml").write_text('[[erp]]\nname = "main"\nkind = "memory"\n')
        db = Database(sqlite_url(data_dir))
        db.migrate()
        token, _ = KeyService(db, SystemClock()).create("bench capacity", "storefront",
                                                        ["orders:write", "orders:read"], rate_per_minute=100_000_000)
        db.dispose()
        port = free_port()
        host = f"127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        requests = [request_bytes("POST", "/v1/orders", host, {**auth, "Idempotency-Key": f"c-{i}"}, body)
                    for i, body in enumerate(orders)]
        proc = start_server([python, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir), "--port", str(port),
                       *flags], port, root / f"hub-{name}.log")
        try:
            results[name] = _measure(port, requests, connections, seconds)
        finally:
            stop_hub(proc)
        progress(f"  capacity {name}: {results[name]['rate']:,.0f} req/s")
    return results


def capacity_table(r: dict[str, dict[str, float]]) -> list[tuple[str, float, float, str]]:
    """(what, ratio, goal, met/MISSED) for the capacity goals."""
    rows = [("intake alone / bare FastAPI", r["intake"]["rate"] / r["bare"]["rate"], GOALS["intake_vs_bare"]),
            ("intake alone / naive durable", r["intake"]["rate"] / r["naive"]["rate"], GOALS["intake_vs_naive"]),
            ("intake + worker / bare FastAPI", r["with_worker"]["rate"] / r["bare"]["rate"],
             GOALS["with_worker_vs_bare"])]
    if "intake_2p" in r:  # the same with the API in two processes (serve --workers 2): the same goals
        rows += [("intake, 2 API processes / bare FastAPI", r["intake_2p"]["rate"] / r["bare"]["rate"],
                  GOALS["intake_vs_bare"]),
                 ("intake, 2 API processes / naive durable", r["intake_2p"]["rate"] / r["naive"]["rate"],
                  GOALS["intake_vs_naive"]),
                 ("intake + worker, 2 API processes / bare FastAPI", r["with_worker_2p"]["rate"] / r["bare"]["rate"],
                  GOALS["with_worker_vs_bare"])]
    return [(what, ratio, goal, "met" if ratio >= goal else "MISSED") for what, ratio, goal in rows]
