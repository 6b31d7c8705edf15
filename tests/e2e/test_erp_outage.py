"""The ERP goes down, slows to a halt, or answers garbage: calls are retried with backoff, the circuit
opens, nothing is lost or dead-lettered, health says why, and work resumes by itself."""

from __future__ import annotations

import http.server
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ordersync.bootstrap import build_hub
from ordersync.config import ErpSettings, Settings
from ordersync.ports.erp import CircuitState
from tests.support.hub import order, place, state
from tests.support.tryton import erp_settings, sales_by_reference

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run_worker(hub: Any) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_orders_wait_while_tryton_is_stopped_and_go_through_once_it_is_back(start_tryton: Any, tmp_path: Path) -> None:
    tryton = start_tryton({"main": "main"})
    hub = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1,
                                                                          failure_threshold=2, call_timeout=5)]))
    stop, thread = run_worker(hub)
    first = place(hub, order("C-1001", ("SEN-PX-M12-NPN", 6), external="OUT-1"))
    wait(lambda: state(hub, first.order_id) == "accepted", 120, "the first order")

    tryton.stop()
    during = [place(hub, order("C-1002", ("BRG-6204-2RS", 5), external=f"OUT-{i}")) for i in range(2, 6)]
    gate = hub.erps.erp("main")
    wait(lambda: gate.status().circuit is CircuitState.OPEN, 60, "the circuit to open")
    health = gate.health()
    assert not health.ok and "circuit open" in health.detail
    assert "Unavailable" in (gate.status().last_error or "")
    time.sleep(3)
    assert all(state(hub, r.order_id) == "received" for r in during)
    assert hub.dead_letters.count() == 0

    tryton.start()  # same port: the hub finds it by itself
    wait(lambda: all(state(hub, r.order_id) == "accepted" for r in during), 180, "orders after the outage")
    assert gate.status().circuit is CircuitState.CLOSED and gate.health().ok
    sales = sales_by_reference(tryton, "OS-")
    for r in [first, *during]:
        refs = [ref for ref in sales if ref.startswith(f"OS-{r.order_id}-")]
        assert refs and all(len(sales[ref]) == 1 for ref in refs)
    stop.set()
    thread.join()
    hub.close()


def test_a_frozen_erp_times_out_opens_the_circuit_and_recovers(start_tryton: Any, tmp_path: Path) -> None:
    tryton = start_tryton({"main": "main"})
    hub = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=0, reset_timeout=1,
                                                                          failure_threshold=2, call_timeout=2)]))
    stop, thread = run_worker(hub)
    assert tryton.pid is not None
    import os

    os.kill(tryton.pid, signal.SIGSTOP)  # slow as slow gets: the process answers nothing
    try:
        slow = place(hub, order("C-1003", ("SEN-PX-M12-NPN", 10), external="SLOW-1"))
        gate = hub.erps.erp("main")
        wait(lambda: gate.status().circuit is CircuitState.OPEN, 60, "the circuit to open on timeouts")
        assert state(hub, slow.order_id) == "received" and hub.dead_letters.count() == 0
    finally:
        os.kill(tryton.pid, signal.SIGCONT)
    wait(lambda: state(hub, slow.order_id) == "accepted", 180, "the order after the ERP woke up")
    assert len(sales_by_reference(tryton, f"OS-{slow.order_id}")) == 1
    stop.set()
    thread.join()
    hub.close()


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>Maintenance</html>")

    def log_message(self, *_args: Any) -> None:
        pass


def test_an_erp_answering_garbage_trips_the_circuit_and_health_says_why(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = ErpSettings(name="main", kind="tryton", url=url, database="main", password="x", retries=0,
                           failure_threshold=2, reset_timeout=60)
    hub = build_hub(Settings(data_dir=tmp_path / "hub", erp=[settings]))
    try:
        receipt = place(hub, order("C-1001", ("SEN-PX-M12-NPN", 6), external="GARBAGE-1"))
        for _ in range(4):
            hub.worker.drain()
        gate = hub.erps.erp("main")
        assert gate.status().circuit is CircuitState.OPEN
        assert "ProtocolError" in (gate.status().last_error or "")
        health = gate.health()
        assert not health.ok and "circuit open" in health.detail
        assert state(hub, receipt.order_id) == "received" and hub.dead_letters.count() == 0
    finally:
        server.shutdown()
        hub.close()
