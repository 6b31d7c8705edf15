"""What tracing costs, measured in the same run as the figures it is compared with: the hub exports every
span through a batch span processor and the real OTLP/HTTP exporter, as in production, to a local OTLP
sink that runs as a process of its own (``python -m tests.support.otlp``; decoding what it receives is a
collector's work, not the hub's)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ordersync.devkit.tryton.server import free_port
from ordersync.telemetry import tracing

#: the issue's bound on what tracing may cost (intake p99, bus throughput)
GOAL_PERCENT = 10.0


class Sink:
    def __init__(self, url: str) -> None:
        self.url = url

    def spans(self) -> int:
        """How many spans the sink has received so far."""
        return int(httpx.get(self.url.removesuffix("/v1/traces") + "/", timeout=5).json()["spans"])


@contextlib.contextmanager
def otlp_sink() -> Iterator[Sink]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.otlp", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sink = Sink(f"http://127.0.0.1:{port}/v1/traces")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sink.spans()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the OTLP sink did not start") from None
                time.sleep(0.1)
        yield sink
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def traced(sink: Sink | None) -> Iterator[None]:
    """Tracing on in this process (exporting to ``sink``) for the block; ``None``: off."""
    if sink is None:
        yield
        return
    tracing.configure(tracing.TelemetryConfig(enabled=True, endpoint=sink.url, service_name="ordersync-bench"))
    try:
        yield
    finally:
        tracing.shutdown()  # exports what is buffered


def telemetry_toml(sink: Sink | None) -> str:
    """The ``[telemetry]`` section of a hub process's config (empty: off)."""
    if sink is None:
        return ""
    return f'\n[telemetry]\nenabled = true\nendpoint = "{sink.url}"\nservice_name = "ordersync-bench"\n'


def cost_percent(off: float, on: float, higher_is_better: bool) -> float:
    """How much worse ``on`` is than ``off``, in percent (negative: better, i.e. noise)."""
    return (off / on - 1) * 100 if higher_is_better else (on / off - 1) * 100


def verdict(cost: float) -> str:
    return "met" if cost <= GOAL_PERCENT else "MISSED"


def intake_p99(make_orders: Callable[[int, int], list[dict[str, Any]]], root: Path, *, orders: int, rate: float,
               rounds: int, progress: Callable[[str], None] = print) -> dict[str, float]:
    """Intake latency (p99, open loop at ``rate``) of ``ordersync serve`` (API + worker, SQLite, the ERP twin
    behind it) with tracing off and on, ``rounds`` times each, alternating, fresh hub and orders each time;
    medians of the rounds' p99 and p50, and the spans the sink received in the last traced round."""
    from bench._common import median, percentile
    from bench._hub import start_server, stop_hub
    from bench._load import open_loop, request_bytes
    from ordersync.api.keys import KeyService
    from ordersync.domain.clock import SystemClock
    from ordersync.store.db import Database, sqlite_url

    p99: dict[str, list[float]] = {"off": [], "on": []}
    p50: dict[str, list[float]] = {"off": [], "on": []}
    spans = 0
    root.mkdir(parents=True, exist_ok=True)
    with otlp_sink() as sink:
        for r in range(max(1, rounds)):
            for mode, exporting in (("off", None), ("on", sink)):
                data_dir = root / f"hub-{mode}-{r}"
                data_dir.mkdir()
                (data_dir / "ordersync.toml").write_text('[[erp]]\nname = "main"\nkind = "memory"\n'
                                                          + telemetry_toml(exporting))
                db = Database(sqlite_url(data_dir))
                db.migrate()
                token, _ = KeyService(db, SystemClock()).create("bench tracing", "storefront", ["orders:write"],
                                                                rate_per_minute=100_000_000)
                db.dispose()
                port = free_port()
                auth = {"Authorization": f"Bearer {token}"}
                bodies = make_orders(orders, 100 + r)
                host = f"127.0.0.1:{port}"
                requests = [request_bytes("POST", "/v1/orders", host, {**auth, "Idempotency-Key": f"t-{i}"}, body)
                            for i, body in enumerate(bodies)]
                before = sink.spans()
                proc = start_server([sys.executable, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir),
                                     "--port", str(port)], port, root / f"hub-{mode}-{r}.log")
                try:
                    result = open_loop("127.0.0.1", port, requests, rate)
                finally:
                    stop_hub(proc)  # exports what it buffered on the way out
                bad = [s for s in result.statuses if s != 202]
                if bad:
                    raise SystemExit(f"tracing {mode}: {len(bad)} requests failed, e.g. HTTP {bad[0]}")
                p99[mode].append(percentile(result.latencies, 99))
                p50[mode].append(percentile(result.latencies, 50))
                if exporting is not None:
                    time.sleep(0.3)
                    spans = sink.spans() - before
                progress(f"  tracing {mode}, round {r + 1}: p50 {p50[mode][-1] * 1000:.1f} ms, "
                         f"p99 {p99[mode][-1] * 1000:.1f} ms")
    off, on = median(p99["off"]), median(p99["on"])
    return {"off_p99": off, "on_p99": on, "off_p50": median(p50["off"]), "on_p50": median(p50["on"]),
            "spans": spans, "cost": cost_percent(off, on, higher_is_better=False)}
