"""Retention (``messaging/retention.py``): what is old and done goes; what a consumer, a pending
delivery or gap repair may still need stays. On SQLite and PostgreSQL, with a fake clock."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner

from ordersync.bootstrap import build_hub
from ordersync.cli import app
from ordersync.config import Settings
from ordersync.domain.clock import FakeClock
from ordersync.messaging.retention import Pruned, Retention
from ordersync.store.schema import bus_consumers, deliveries, idempotency_keys, inbox, outbox
from tests.support.messages import Flaky, Ping, counters, ping_registry

DAY = 86_400


@pytest.fixture
def hub_with(tmp_path: Path, store_url: str, clock: FakeClock) -> Any:
    """A hub on ``store_url`` whose own retention job is off unless ``keep_days`` is given."""
    hubs: list[Any] = []

    def make(registry: Any, keep_days: float = 0) -> Any:
        hub = build_hub(Settings(data_dir=tmp_path / "data", store=store_url, retention={"keep_days": keep_days}),
                        clock=clock, registry=registry)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def emit(hub: Any, *ns: int) -> list[int]:
    """Emit pings and return their outbox sequences."""
    with hub.uow() as uow:
        for n in ns:
            uow.emit(Ping(n=n), correlation_id=f"order-{n}")
    with hub.db.read() as conn:
        return list(conn.execute(select(outbox.c.seq).order_by(outbox.c.seq.desc()).limit(len(ns))).scalars())[::-1]


def add_key(hub: Any, key: str) -> None:
    with hub.db.write() as conn:
        conn.execute(insert(idempotency_keys).values(scope="key:k1", key=key, request_hash="h", order_id="o",
                                                     created_at=hub.clock.now()))


def rows(hub: Any) -> dict[str, int]:
    with hub.db.read() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (outbox, inbox, idempotency_keys, deliveries)}


def seqs_left(hub: Any) -> list[int]:
    with hub.db.read() as conn:
        return list(conn.execute(select(outbox.c.seq).order_by(outbox.c.seq)).scalars())


def test_old_processed_events_records_and_keys_go_and_pending_or_recent_ones_stay(
        hub_with: Any, clock: FakeClock) -> None:
    handler = Flaky(always={6})  # ping 6 keeps failing: its delivery stays pending, with retries
    hub = hub_with(ping_registry(handler, max_attempts=100))
    old = emit(hub, 0, 1, 2, 3, 4, 6)
    add_key(hub, "old")
    hub.worker.drain()
    clock.advance(31 * DAY)
    recent = emit(hub, 5)
    add_key(hub, "new")
    hub.worker.drain()
    assert rows(hub) == {"outbox": 7, "inbox": 6, "idempotency_keys": 2, "deliveries": 1}
    retention = Retention(hub.db, clock, hub.registry, keep_days=30, gap_tracked=False, batch=2)

    assert retention.run(dry_run=True) == Pruned(outbox=5, inbox=5, idempotency_keys=1)
    assert rows(hub)["outbox"] == 7  # a dry run changes nothing
    assert retention.run() == Pruned(outbox=5, inbox=5, idempotency_keys=1)  # in batches of two
    assert seqs_left(hub) == [old[5], recent[0]]  # the pending one and the recent one
    assert rows(hub) == {"outbox": 2, "inbox": 1, "idempotency_keys": 1, "deliveries": 1}
    assert retention.run() == Pruned()

    handler.always.clear()  # the failing consumer recovers: its event is processed once, and then goes too
    clock.advance(DAY)
    hub.worker.drain()
    assert counters(hub.db)["ping:6"] == 1
    clock.advance(31 * DAY)
    assert retention.run() == Pruned(outbox=2, inbox=2, idempotency_keys=1)


def test_with_gap_repair_nothing_at_or_above_the_lowest_mark_goes_whatever_its_age(
        hub_with: Any, clock: FakeClock) -> None:
    hub = hub_with(ping_registry(Flaky()))
    seqs = emit(hub, *range(5))
    hub.worker.drain()
    with hub.db.write() as conn:  # gap repair has seen the consumer done below the third event only
        conn.execute(update(bus_consumers).values(low_seq=seqs[2]))
        # a consumer the code no longer has holds nothing back
        conn.execute(insert(bus_consumers).values(consumer="removed.consumer", since_seq=1, low_seq=1,
                                                  registered_at=clock.now()))
    clock.advance(40 * DAY)
    retention = Retention(hub.db, clock, hub.registry, keep_days=30, gap_tracked=True)
    assert retention.run() == Pruned(outbox=2, inbox=2)
    assert seqs_left(hub) == seqs[2:]
    with hub.db.read() as conn:
        assert sorted(conn.execute(select(inbox.c.seq)).scalars()) == seqs[2:]


def test_keep_days_zero_keeps_everything(hub_with: Any, clock: FakeClock) -> None:
    hub = hub_with(ping_registry(Flaky()))
    emit(hub, 1, 2)
    hub.worker.drain()
    clock.advance(400 * DAY)
    hub.worker.drain()
    assert Retention(hub.db, clock, hub.registry, keep_days=0, gap_tracked=False).run() == Pruned()
    assert rows(hub)["outbox"] == 2


def test_the_workers_prune_by_themselves(hub_with: Any, clock: FakeClock) -> None:
    hub = hub_with(ping_registry(Flaky()), keep_days=30)
    emit(hub, 1, 2)
    hub.worker.drain()
    clock.advance(29 * DAY)
    hub.worker.drain()
    assert rows(hub)["outbox"] == 2
    clock.advance(2 * DAY)
    hub.worker.drain()
    assert rows(hub) == {"outbox": 0, "inbox": 0, "idempotency_keys": 0, "deliveries": 0}


def test_a_nats_bus_needs_retention_longer_than_the_streams_keep_messages() -> None:
    with pytest.raises(ValueError, match=r"keep_days \(7\) must exceed nats.max_age_days \(7\)"):
        Settings(bus="nats://127.0.0.1:4222", retention={"keep_days": 7})
    assert Settings(bus="nats://127.0.0.1:4222", retention={"keep_days": 0}).retention.keep_days == 0
    assert Settings(bus="nats://127.0.0.1:4222").retention.keep_days == 30


def test_the_prune_command_reports_and_deletes(tmp_path: Path) -> None:
    hub = build_hub(Settings(data_dir=tmp_path, retention={"keep_days": 0}))
    with hub.uow() as uow:
        uow.emit(Ping(n=1), correlation_id="order-1")
    hub.worker.drain()
    before = rows(hub)
    hub.close()
    assert before["outbox"] == 1
    time.sleep(0.2)
    (tmp_path / "ordersync.toml").write_text("[retention]\nkeep_days = 0.000001\n")  # about 0.09 s
    cli = CliRunner()
    dry = cli.invoke(app, ["prune", "--data-dir", str(tmp_path), "--dry-run", "--json"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == {"dry_run": True, "keep_days": 0.000001, "outbox": 1,
                                      "inbox": before["inbox"], "idempotency_keys": 0}
    real = cli.invoke(app, ["prune", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert real.exit_code == 0 and "deleted 1 outbox event(s)" in real.output, real.output
    (tmp_path / "ordersync.toml").write_text("[retention]\nkeep_days = 0\n")
    off = cli.invoke(app, ["prune", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert off.exit_code == 0 and "retention is off" in off.output, off.output
