"""A real worker process is killed with SIGKILL again and again in the middle of a stream of messages;
after restarts every message's effect is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ordersync.canonical.v1 import OrderState
from ordersync.domain.clock import SystemClock
from ordersync.flows.handlers.counters import COUNTERS
from ordersync.flows.services.intake import move_order, receive_order
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, deliveries, inbox, order_transitions, orders, outbox
from ordersync.store.uow import unit_of_work
from tests.support.messages import counters
from tests.support.orders import make_order

ORDERS = 1500
KILLS = 6


def start_worker(store_url: str, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "worker", "--data-dir", str(data_dir), "--store", store_url],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def scalar(db: Database, query) -> int:  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def produce(db: Database, stop_after: int) -> None:
    clock = SystemClock()
    for i in range(stop_after):
        with unit_of_work(db, clock) as uow:
            record, _ = receive_order(uow, make_order(f"PO-{i}"))
            if i % 2 == 0:
                move_order(uow, record.id, OrderState.VALIDATED, "ok")
        if i % 3 == 0:
            with unit_of_work(db, clock) as uow:
                move_order(uow, record.id, OrderState.REJECTED, "unknown SKU")


@pytest.mark.slow
def test_sigkill_during_a_stream_applies_every_effect_exactly_once(store_url: str, tmp_path: Path) -> None:
    db = Database(store_url)
    db.migrate()
    log = tmp_path / "worker.log"
    producer = threading.Thread(target=produce, args=(db, ORDERS))
    producer.start()
    worker = start_worker(store_url, tmp_path, log)
    kills = 0
    processed_at_kill: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while kills < KILLS and time.monotonic() < deadline:
            before = scalar(db, select(func.count()).select_from(inbox))
            # wait until this worker incarnation is visibly processing, then kill it mid-stream
            while scalar(db, select(func.count()).select_from(inbox)) < before + 150:
                assert worker.poll() is None, log.read_text()[-2000:]
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            processed_at_kill.append(scalar(db, select(func.count()).select_from(inbox)))
            worker = start_worker(store_url, tmp_path, log)
        producer.join()
        # let the last incarnation finish everything
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (
                scalar(db, select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) == 0
                and scalar(db, select(func.count()).select_from(deliveries)) == 0
            ):
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()

    assert kills == KILLS, f"only {kills} kills happened: {processed_at_kill}"
    assert_every_effect_applied_once(db, ORDERS)
    db.dispose()


def assert_every_effect_applied_once(db: Database, orders_placed: int) -> None:
    """Every state change counted once by the (non-idempotent) counters projection, nothing parked."""
    transitions = scalar(db, select(func.count()).select_from(order_transitions))
    state_events = scalar(db, select(func.count()).select_from(outbox).where(outbox.c.type == "order.state_changed"))
    processed = scalar(db, select(func.count()).select_from(inbox).where(inbox.c.consumer == COUNTERS))
    c = counters(db)
    assert transitions == state_events == processed == c["transitions"]
    with db.read() as conn:
        by_state = dict(conn.execute(select(orders.c.state, func.count()).group_by(orders.c.state)).all())
    assert by_state == {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("state:") and v}
    assert scalar(db, select(func.count()).select_from(dead_letters)) == 0
    assert scalar(db, select(func.count()).select_from(orders)) == orders_placed
