"""Two real worker processes on PostgreSQL + a three-node NATS JetStream cluster (R3 streams,
``sync_interval: always``): workers are SIGKILLed again and again while orders stream in, and one NATS
node is killed and restarted; afterwards every event was processed exactly once by every consumer and
no gap is left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ordersync.bootstrap import build_registry
from ordersync.messaging.gaps import unprocessed
from ordersync.store.db import Database
from ordersync.store.schema import inbox, outbox
from tests.e2e.test_worker_crash import assert_every_effect_applied_once, produce, scalar
from tests.support.nats import NatsCluster, nats_cluster  # noqa: F401  (fixture)
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require

ORDERS = 600
KILLS = 6


def start_worker(data_dir: Path, store_url: str, bus: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(data_dir), "--store", store_url],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ORDERSYNC_BUS": bus},
    )


@pytest.mark.slow
def test_two_workers_on_nats_killed_again_and_again_process_every_event_once(
        nats_cluster: NatsCluster, tmp_path: Path) -> None:  # noqa: F811
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = create_pg_database()
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    prefix = f"crash{random.randrange(10**6)}"
    (data_dir / "ordersync.toml").write_text(
        f'[nats]\nreplicas = 3\nprefix = "{prefix}"\ngap_grace_seconds = 3\ngap_check_seconds = 1\n'
        "[worker]\nlease_seconds = 3\n")
    db = Database(url)
    db.migrate()
    registry = build_registry(None, None)
    rng = random.Random(8)
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    workers = [start_worker(data_dir, url, nats_cluster.url, log) for log in logs]
    producer = threading.Thread(target=produce, args=(db, ORDERS))
    kills = 0
    started = time.monotonic()
    try:
        producer.start()
        deadline = time.monotonic() + 240
        node_killed = False
        while kills < KILLS and time.monotonic() < deadline:
            # kill mid-stream: once this incarnation visibly processes, or after two seconds at most (a
            # fast machine may have processed everything already; a kill then tests the restart)
            before, since = scalar(db, select(func.count()).select_from(inbox)), time.monotonic()
            while (scalar(db, select(func.count()).select_from(inbox)) < before + 60
                   and time.monotonic() - since < 2.0):
                for w, log in zip(workers, logs, strict=True):
                    assert w.poll() is None, log.read_text()[-3000:]
                time.sleep(0.02)
            victim = rng.randrange(2)
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            if kills == 2 and not node_killed:  # and a broker node, while the workers go on
                nats_cluster.kill(1)
                node_killed = True
            if kills == 4 and node_killed:
                nats_cluster.restart(1)
            workers[victim] = start_worker(data_dir, url, nats_cluster.url, logs[victim])
        print(f"kills done after {time.monotonic() - started:.1f}s", flush=True)
        producer.join()
        print(f"producer done after {time.monotonic() - started:.1f}s", flush=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            published = scalar(db, select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) == 0
            if published and not unprocessed(db, registry):
                break
            time.sleep(0.25)
        print(f"settled after {time.monotonic() - started:.1f}s", flush=True)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        if not nats_cluster.alive(1):
            nats_cluster.restart(1)

    try:
        assert kills == KILLS
        assert unprocessed(db, registry) == {}
        assert_every_effect_applied_once(db, ORDERS)
        assert all(w.returncode is not None for w in workers)
    finally:
        db.dispose()
        drop_pg_database(url)
