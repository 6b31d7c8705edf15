"""What tracing costs, measured in the same run as the figures it is compared with: the hub exports every
span through a batch span processor and the real OTLP/HTTP exporter, as in production, to a local OTLP
sink that runs as a process of its own (``python -m tests.support.otlp``; decoding what it receives is a
collector's work, not the hub's)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

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
