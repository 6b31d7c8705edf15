"""Heartbeats, ``/ready`` and ``/metrics`` on the embedded bus (SQLite, ERP twin, in-process ASGI): what
a worker's health port serves, a running worker's heartbeat and its clean stop, and order-state gauges
that count the orders rather than the events the bus has delivered so far."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.api.health import create_health_app
from ordersync.bootstrap import Hub
from ordersync.config import HealthSettings
from ordersync.messaging.heartbeat import heartbeats
from ordersync.server import create_app
from ordersync.store.schema import worker_heartbeats
from tests.support.hub import erp_hub, order, place, settle


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")},
                health=HealthSettings(heartbeat_seconds=0.2, worker_stale_seconds=2))
    yield h
    h.close()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


def test_an_order_in_received_counts_before_any_worker_has_run(hub: Hub) -> None:
    """The gauge read 0 with an order in ``received``: it summed the counters projection, which only
    moves when the bus delivers the order's events (not at all during a NATS quorum loss)."""
    client = TestClient(create_app(hub))
    place(hub, order("C-1001", ("BRG-6204-2RS", 2), external="PO-R1"))
    orders = samples(client.get("/metrics").text, "ordersync_orders")
    assert orders[(("state", "received"),)] == 1.0 and orders[(("state", "accepted"),)] == 0.0
    settle(hub)
    orders = samples(client.get("/metrics").text, "ordersync_orders")
    assert orders[(("state", "received"),)] == 0.0 and orders[(("state", "accepted"),)] == 1.0


def test_a_running_worker_beats_and_a_clean_stop_removes_its_heartbeat(hub: Hub) -> None:
    client = TestClient(create_health_app(hub))
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["reasons"] == ["no live worker: none has run since the store was "
                                                            "set up"]
    stop = threading.Event()
    thread = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        body = client.get("/ready").json()
        assert body["status"] == "ready", body
        (live,) = body["workers"]["live"]
        assert live["id"] == hub.heartbeat.id and live["consumers"] == len(hub.worker.consumers)
        with hub.db.read() as conn:
            first = heartbeats(conn)[0].beat_at
        time.sleep(0.6)
        with hub.db.read() as conn:
            assert heartbeats(conn)[0].beat_at > first  # it keeps beating
        ages = samples(client.get("/metrics").text, "ordersync_worker_heartbeat_age_seconds")
        assert list(ages) == [(("host", hub.heartbeat.host), ("worker", hub.heartbeat.id))]
        assert 0 <= next(iter(ages.values())) < 2
        assert client.get("/health").json() == {"status": "ok"}
    finally:
        stop.set()
        thread.join(timeout=30)
    with hub.db.read() as conn:
        assert conn.execute(select(worker_heartbeats.c.id)).all() == []  # gone, not missing


def test_a_failing_broker_is_one_warning_line_per_outage_not_a_traceback_each_round(
        hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    from ordersync.domain.errors import Unavailable

    calls = {"n": 0}
    real = hub.relay.pump

    def down_then_up() -> int:
        calls["n"] += 1
        if calls["n"] <= 2:  # the loop waits 1 s after each failure
            raise Unavailable("NATS: publishing 3 messages timed out after 10.0s (TimeoutError)")
        return real()

    hub.relay.pump = down_then_up  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    with caplog.at_level("DEBUG", logger="ordersync.worker"):
        thread.start()
        deadline = time.monotonic() + 20
        while calls["n"] <= 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        thread.join(timeout=30)
    mine = [r for r in caplog.records if r.name == "ordersync.worker" and "worker round" in r.getMessage()]
    shown = [r for r in mine if r.levelname != "DEBUG"]
    assert [r.levelname for r in shown] == ["WARNING", "WARNING"], [r.getMessage() for r in mine]
    assert "timed out" in shown[0].getMessage() and "retrying every 1s" in shown[0].getMessage()
    assert "working again" in shown[1].getMessage() and "2 failed attempt(s)" in shown[1].getMessage()
    assert all(r.exc_info is None for r in shown)


def test_streams_that_differ_found_later_stop_the_worker_instead_of_retrying(hub: Hub) -> None:
    """A worker that started while NATS was down checks the streams when it connects: a difference then
    ends the loop with the refusal (the command exits with it), not a retry every second."""
    from ordersync.messaging.streams import StreamMismatch

    def refused() -> int:
        raise StreamMismatch(["ORDERSYNC_ORDER: num_replicas is 3, the configuration asks for 1"], "w.toml")

    hub.relay.pump = refused  # type: ignore[method-assign]
    with pytest.raises(StreamMismatch, match="num_replicas is 3"):
        hub.worker.run_forever(threading.Event())
    with hub.db.read() as conn:
        assert heartbeats(conn) == []  # a stop like any other: its heartbeat is gone


def test_a_worker_whose_health_port_is_taken_refuses_to_start(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(tmp_path / "hub"),
                               "--health-port", str(port)], capture_output=True, text=True, timeout=60)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot serve the worker's health port on 127.0.0.1:{port}" in said and "Traceback" not in said
