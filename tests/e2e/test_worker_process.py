"""The API and the worker in processes of their own on one SQLite store: the API's commits wake the
worker at once, and a second worker waits for the first instead of running beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ordersync.devkit.tryton.server import free_port
from tests.e2e.test_subscriber_outage import cli, stop, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CONFIG = """
[[erp]]
name = "main"
kind = "memory"

[worker]
max_idle_seconds = 30
"""


def test_the_api_wakes_a_worker_running_in_a_process_of_its_own(tmp_path: Path) -> None:
    """``serve --no-worker`` and ``ordersync worker`` on one SQLite store: the API's commits wake the
    idle worker at once (it would sleep for seconds otherwise), and their writes wait for each other
    on the store's process write lock instead of failing."""
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text(CONFIG)
    token = cli(data_dir, "apikey", "create", "e2e", "--client", "storefront", "--scope", "orders:write",
                "--scope", "orders:read").split()[-1]
    port, log = free_port(), tmp_path / "serve.log"
    auth = {"Authorization": f"Bearer {token}"}

    def place_and_time(number: str) -> float:
        """Seconds from placing an order until the worker has accepted it."""
        body = {"external_order_number": number, "account_id": "C-1001",
                "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "4"}]}
        start = time.monotonic()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/orders", json=body, headers=auth, timeout=10)
        assert r.status_code == 202, r.text
        url = f"http://127.0.0.1:{port}/v1/orders/{r.json()['order_id']}"
        until(lambda: httpx.get(url, headers=auth, timeout=10).json()["state"] == "accepted", 60,
              lambda: log.read_text()[-3000:] + (tmp_path / "worker.log").read_text()[-3000:])
        return time.monotonic() - start

    hub = subprocess.Popen([sys.executable, "-m", "ordersync.cli", "serve", "--no-worker", "--data-dir",
                            str(data_dir), "--port", str(port)], stderr=log.open("w"),
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    worker = subprocess.Popen([sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(data_dir)],
                              stderr=(tmp_path / "worker.log").open("w"), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        until(lambda: "running on" in (tmp_path / "worker.log").read_text(), 30)
        until(lambda: "serving" in log.read_text(), 30, log.read_text)
        time.sleep(1)
        place_and_time("WP-0")
        # an idle worker sleeps twice as long each round, up to max_idle_seconds (30 s here): after 7 s
        # idle its sleep is 6.4 s, and only the API's wake-up gets an order through at once
        time.sleep(7)
        assert place_and_time("WP-1") < 3
        numbers = [f"WP-B-{i}" for i in range(40)]
        for number in numbers:  # the API writes while the worker does: both get through
            body = {"external_order_number": number, "account_id": "C-1002",
                    "lines": [{"line_no": 1, "sku": "SEN-PX-M12-NPN", "quantity": "1"}]}
            r = httpx.post(f"http://127.0.0.1:{port}/v1/orders", json=body, headers=auth, timeout=10)
            assert r.status_code == 202, r.text
        assert place_and_time("WP-2") < 20
    finally:
        stop(hub)
        stop(worker)
    assert "database is locked" not in log.read_text() + (tmp_path / "worker.log").read_text()


def test_a_second_worker_on_the_same_sqlite_store_waits_for_the_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text(CONFIG)
    cli(data_dir, "apikey", "list")  # creates the store
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(data_dir)]
    first = subprocess.Popen(argv, stderr=(tmp_path / "first.log").open("w"), env=env)
    try:
        until(lambda: "running on" in (tmp_path / "first.log").read_text(), 30)
        second = subprocess.Popen(argv, stderr=(tmp_path / "second.log").open("w"), env=env)
        try:
            until(lambda: "waiting until it stops" in (tmp_path / "second.log").read_text(), 30)
            assert "running on" not in (tmp_path / "second.log").read_text()
            stop(first)
            until(lambda: "running on" in (tmp_path / "second.log").read_text(), 30)
        finally:
            stop(second)
    finally:
        stop(first)


def test_serve_with_two_api_processes_takes_orders_in_both_and_wakes_its_worker(tmp_path: Path) -> None:
    """``serve --workers 2``: two API processes on one port, the worker in the supervising process. Orders
    placed through either are accepted promptly (their commits wake the worker), duplicates are still
    answered as duplicates whichever process gets them, and stopping the supervisor stops them all."""
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text(CONFIG)
    token = cli(data_dir, "apikey", "create", "e2e", "--client", "storefront", "--scope", "orders:write",
                "--scope", "orders:read", "--rate", "6000").split()[-1]
    port, log = free_port(), tmp_path / "serve.log"
    auth = {"Authorization": f"Bearer {token}"}
    hub = subprocess.Popen([sys.executable, "-m", "ordersync.cli", "serve", "--workers", "2", "--data-dir",
                            str(data_dir), "--port", str(port)], stderr=log.open("w"),
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        until(lambda: "in 2 API processes" in log.read_text(), 30, log.read_text)
        until(lambda: _answers(port), 30, log.read_text)
        time.sleep(7)  # the worker idles into long sleeps: only wake-ups from the API processes get through
        ids = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as http:
            for i in range(12):  # one connection each: the kernel spreads them over both processes
                body = {"external_order_number": f"WN-{i % 6}", "account_id": "C-1001",
                        "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "2"}]}
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as fresh:
                    r = fresh.post("/v1/orders", json=body, headers={"Idempotency-Key": f"k-{i % 6}"})
                assert r.status_code in (200, 202), r.text
                ids.append(r.json()["order_id"])
            assert len(set(ids)) == 6  # each re-send under the same key found the first, in either process
            start = time.monotonic()
            until(lambda: all(http.get(f"/v1/orders/{o}").json()["state"] == "accepted" for o in set(ids)), 30,
                  log.read_text)
            assert time.monotonic() - start < 5
    finally:
        stop(hub)
    procs = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
    assert procs == []  # the API processes ended with the supervisor
    assert "Traceback" not in log.read_text()
    # SIGTERM shuts it down cleanly: the worker and the hub are closed after the API (exit 0, "stopped")
    assert hub.returncode == 0 and log.read_text().rstrip().endswith("stopped"), log.read_text()[-2000:]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
