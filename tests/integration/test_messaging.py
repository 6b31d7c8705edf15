"""Outbox -> relay -> idempotent consumer, retries, dead letters and replay, on SQLite and PostgreSQL.

No test sleeps: a fake clock decides when a retry is due, and ``drain()`` runs the worker until idle.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select, update

from ordersync.canonical.envelope import Envelope
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import ValidationFailed
from ordersync.flows.services.intake import receive_order
from ordersync.messaging.deadletters import DeadLetterFilter
from ordersync.messaging.gaps import GapRepair, unprocessed
from ordersync.store.schema import bus_consumers, deliveries, inbox, outbox
from ordersync.store.uow import UnitOfWork
from tests.support.messages import Flaky, Ping, counters, ping_registry
from tests.support.orders import make_order


def emit_pings(hub: Any, *ns: int, key: str = "k") -> None:
    with hub.uow() as uow:
        for n in ns:
            uow.emit(Ping(n=n, key=key), correlation_id=f"order-{key}")


def inbox_count(hub: Any) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def inject_raw(hub: Any, body: str, consumer: str = "test.pings") -> None:
    with hub.db.write() as conn:
        hub.transport.redeliver(conn, consumer, body, None, None, None, hub.clock.now())


def test_events_flow_through_relay_to_the_consumer_once(make_hub: Any, store_url: str) -> None:
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    emit_pings(hub, *range(50))
    hub.worker.drain()
    c = counters(hub.db)
    assert c["ping"] == 50 and all(c[f"ping:{n}"] == 1 for n in range(50))
    assert hub.transport.pending() == 0 and hub.relay.backlog() == 0


def test_order_events_update_the_counters_projection(make_hub: Any, store_url: str) -> None:
    hub = make_hub(store_url)
    for i in range(5):
        with hub.uow() as uow:
            receive_order(uow, make_order(f"PO-{i}"))
    with hub.uow() as uow:  # a duplicate changes no counter
        receive_order(uow, make_order("PO-0"))
    hub.worker.drain()
    c = counters(hub.db)
    assert c["state:received"] == 5 and c["transitions"] == 5


def test_a_republished_outbox_is_absorbed_by_the_inbox(make_hub: Any, store_url: str) -> None:
    """A relay that died after publishing but before marking rows published publishes them again."""
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    emit_pings(hub, 1, 2, 3)
    hub.worker.drain()
    with hub.db.write() as conn:
        conn.execute(update(outbox).values(published_at=None))
    hub.worker.drain()
    assert counters(hub.db)["ping"] == 3
    assert sorted(handler.calls) == [1, 2, 3]
    assert inbox_count(hub) == 3 and hub.transport.pending() == 0


def test_duplicate_deliveries_in_one_batch_apply_once(make_hub: Any, store_url: str) -> None:
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    body = Envelope(type=Ping.TYPE, occurred_at=hub.clock.now(), payload={"n": 7}).to_json()
    for _ in range(3):
        inject_raw(hub, body)
    hub.worker.drain()
    assert counters(hub.db)["ping:7"] == 1 and hub.transport.pending() == 0


def test_a_delivery_claimed_by_a_crashed_worker_comes_back_after_its_lease(
    make_hub: Any, store_url: str, clock: FakeClock
) -> None:
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    emit_pings(hub, 1)
    hub.relay.pump()
    claimed = hub.transport.fetch("test.pings", 10, clock.now())  # ... and the worker dies here
    assert len(claimed) == 1
    assert hub.worker.drain() == 0, "a leased delivery stays hidden"
    clock.advance(hub.settings.worker.lease_seconds + 1)
    hub.worker.drain()
    assert counters(hub.db)["ping:1"] == 1 and hub.transport.pending() == 0


def test_failures_are_retried_with_backoff_then_succeed(make_hub: Any, store_url: str, clock: FakeClock) -> None:
    handler = Flaky(failures={2: 2})
    # batch_size=1: a failed batch is re-run one by one at once, which would give an extra early call
    hub = make_hub(store_url, ping_registry(handler, batch_size=1))
    emit_pings(hub, 1, 2, 3)
    hub.worker.drain()
    c = counters(hub.db)
    assert c.get("ping:1") == 1 and c.get("ping:3") == 1 and "ping:2" not in c  # failed attempt rolled back
    assert hub.worker.drain() == 0, "the retry is not due before its backoff"
    clock.advance(10)  # first backoff is at most 10 s
    hub.worker.drain()
    assert "ping:2" not in counters(hub.db)
    clock.advance(20)
    hub.worker.drain()
    assert counters(hub.db)["ping:2"] == 1
    assert handler.calls.count(2) == 3
    assert hub.dead_letters.count() == 0


def test_a_message_that_keeps_failing_is_dead_lettered_with_its_history(
    make_hub: Any, store_url: str, clock: FakeClock
) -> None:
    handler = Flaky(always={5})
    hub = make_hub(store_url, ping_registry(handler, max_attempts=4, batch_size=1))
    emit_pings(hub, 4, 5, 6, key="A-17")
    for _ in range(6):
        hub.worker.drain()
        clock.advance(600)
    assert handler.calls.count(5) == 4
    [letter] = hub.dead_letters.list()
    assert letter.reason == "exhausted" and letter.attempts == 4
    assert letter.type == Ping.TYPE and letter.correlation_id == "order-A-17"
    assert "ERP timeout on ping 5" in letter.error
    assert [h["attempt"] for h in letter.history] == [1, 2, 3, 4]
    assert json.loads(letter.body)["payload"] == {"n": 5, "key": "A-17"}
    assert counters(hub.db)["ping"] == 2 and hub.transport.pending() == 0


def test_a_business_rule_failure_is_dead_lettered_at_once(make_hub: Any, store_url: str) -> None:
    handler = Flaky(always={9}, error=lambda n: ValidationFailed([f"ping {n} is not allowed"]))
    hub = make_hub(store_url, ping_registry(handler))
    emit_pings(hub, 9)
    hub.worker.drain()
    [letter] = hub.dead_letters.list()
    assert letter.reason == "rejected" and letter.attempts == 1


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ("{not json", "malformed", "not JSON"),
        ('["a", "list"]', "malformed", "envelope does not fit"),
        (json.dumps({"type": "test.ping", "payload": {"n": 1}}), "malformed", "occurred_at"),
        (json.dumps({"type": "no.such.type", "occurred_at": "2026-01-01T00:00:00Z", "payload": {}}),
         "unknown_type", "no.such.type"),
        (json.dumps({"type": "test.ping", "occurred_at": "2026-01-01T00:00:00Z", "payload": {"n": "seven"}}),
         "schema_violation", "n:"),
        (json.dumps({"type": "test.ping", "schema_version": 9, "occurred_at": "2026-01-01T00:00:00Z",
                     "payload": {"n": 1}}), "schema_violation", "newer"),
    ],
)
def test_malformed_messages_are_dead_lettered_with_a_reason_and_never_stop_the_worker(
    make_hub: Any, store_url: str, body: str, reason: str, detail: str
) -> None:
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    inject_raw(hub, body)
    emit_pings(hub, 1)
    hub.worker.drain()
    [letter] = hub.dead_letters.list()
    assert letter.reason == reason and detail in letter.error
    assert letter.body == body, "the message is kept verbatim"
    assert counters(hub.db)["ping:1"] == 1


def test_replay_dry_run_changes_nothing_then_replay_processes_once(
    make_hub: Any, store_url: str, clock: FakeClock
) -> None:
    handler = Flaky(always={1, 2, 3})
    hub = make_hub(store_url, ping_registry(handler, max_attempts=1))
    emit_pings(hub, 1, 2, 3)
    inject_raw(hub, "{broken")
    hub.worker.drain()
    assert hub.dead_letters.count() == 4

    preview = hub.dead_letters.replay(DeadLetterFilter(type=Ping.TYPE), dry_run=True)
    assert preview.count == 3 and {i.outlook for i in preview.items} == {"will run"}
    assert hub.dead_letters.count() == 4 and hub.transport.pending() == 0
    broken = hub.dead_letters.replay(DeadLetterFilter(reason="malformed"), dry_run=True)
    assert broken.items[0].outlook.startswith("would fail again")

    handler.always.clear()  # the cause is fixed
    [first] = [x for x in hub.dead_letters.list() if x.type and json.loads(x.body)["payload"]["n"] == 1]
    hub.dead_letters.replay(DeadLetterFilter(ids=(first.id,)), dry_run=False)
    hub.worker.drain()
    assert counters(hub.db).get("ping:1") == 1 and hub.dead_letters.count() == 3
    assert hub.dead_letters.get(first.id).status == "replayed"

    report = hub.dead_letters.replay(DeadLetterFilter(type=Ping.TYPE, error="ERP timeout"), dry_run=False)
    assert report.count == 2
    hub.worker.drain()
    c = counters(hub.db)
    assert c["ping:2"] == 1 and c["ping:3"] == 1
    assert hub.dead_letters.count() == 1  # only the malformed one is left


def test_replay_filters_by_time(make_hub: Any, store_url: str, clock: FakeClock) -> None:
    handler = Flaky(always={1, 2})
    hub = make_hub(store_url, ping_registry(handler, max_attempts=1))
    emit_pings(hub, 1)
    hub.worker.drain()
    cutoff = clock.now()
    clock.advance(3600)
    emit_pings(hub, 2)
    hub.worker.drain()
    report = hub.dead_letters.replay(DeadLetterFilter(since=cutoff.replace(microsecond=1)), dry_run=True)
    assert report.count == 1
    [item] = report.items
    assert json.loads(hub.dead_letters.get(item.id).body)["payload"]["n"] == 2
    assert hub.dead_letters.replay(DeadLetterFilter(until=cutoff.replace(microsecond=1)), dry_run=True).count == 1


def test_io_handlers_commit_effects_with_the_inbox(make_hub: Any, store_url: str) -> None:
    seen: list[int] = []

    def io_handler(msg: Ping, ctx: Any) -> None:
        seen.append(msg.n)  # a remote call would happen here, outside any transaction
        with ctx.transaction() as uow:
            Flaky()(msg, uow)

    hub = make_hub(store_url, ping_registry(io_handler, mode="io"))  # type: ignore[arg-type]
    emit_pings(hub, 1, 2)
    hub.worker.drain()
    with hub.db.write() as conn:
        conn.execute(update(outbox).values(published_at=None))
    hub.worker.drain()
    assert counters(hub.db)["ping"] == 2 and seen == [1, 2], "the inbox stops the second remote call too"
    with hub.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 0


def test_an_unavailable_remote_system_makes_messages_wait_without_using_up_attempts(
    make_hub: Any, store_url: str, clock: FakeClock
) -> None:
    from ordersync.domain.errors import Unavailable

    handler = Flaky(failures={1: 40}, error=lambda n: Unavailable("ERP circuit open"))
    hub = make_hub(store_url, ping_registry(handler, max_attempts=3, batch_size=1))
    emit_pings(hub, 1)
    for _ in range(45):  # far more rounds than max_attempts: an outage is not a failure of the message
        hub.worker.drain()
        clock.advance(31)
    assert counters(hub.db)["ping:1"] == 1
    assert hub.dead_letters.count() == 0


def test_a_slow_io_consumer_does_not_hold_up_the_transactional_ones(tmp_path: Any) -> None:
    """While an I/O handler waits on a slow remote system, the running worker keeps relaying and
    projecting: each I/O consumer has a lane (thread) of its own."""
    import threading
    import time

    from ordersync.bootstrap import build_hub
    from ordersync.config import Settings
    from ordersync.messaging.registry import Registry, Subscription

    release = threading.Event()
    started = threading.Event()

    def slow(msg: Ping, ctx: Any) -> None:
        started.set()
        release.wait(20)

    fast = Flaky()
    registry = Registry()
    registry.add(Subscription("test.slow", frozenset({Ping.TYPE}), slow, "io"))
    registry.add(Subscription("test.fast", frozenset({Ping.TYPE}), fast, "tx"))
    hub = build_hub(Settings(data_dir=tmp_path), registry=registry)
    stop = threading.Event()
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,))
    worker.start()
    try:
        emit_pings(hub, 0)
        assert started.wait(10)  # the slow handler now blocks its lane
        emit_pings(hub, *range(1, 21), key="k2")
        deadline = time.monotonic() + 10
        while counters(hub.db).get("ping", 0) < 21 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert counters(hub.db).get("ping", 0) == 21  # all projected while the slow one still waits
        assert not release.is_set()
    finally:
        release.set()
        stop.set()
        worker.join(30)
        hub.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_gap_repair_never_moves_its_mark_past_an_event_still_committing(
        make_hub: Any, store_url: str, clock: FakeClock) -> None:
    """On PostgreSQL outbox sequences are drawn at insert and commit in any order: an event that commits
    after a later one was processed must stay within gap repair's sight (the low-water mark waits)."""
    handler = Flaky()
    hub = make_hub(store_url, ping_registry(handler))
    repair = GapRepair(hub.db, hub.transport, hub.registry, clock, grace_seconds=1, horizon_seconds=60)
    emit_pings(hub, 0, 1)
    hub.worker.drain()
    with hub.db.engine.connect() as slow:  # a transaction that draws its sequence now and commits later
        tx = slow.begin()
        uow = UnitOfWork(slow, clock)
        uow.emit(Ping(n=2, key="k"), correlation_id="order-k")
        uow.flush()
        # ... and whose event the broker then loses: marked published, never delivered
        slow.execute(update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=clock.now()))
        late_seq = slow.execute(select(func.max(outbox.c.seq))).scalar_one()
        emit_pings(hub, 3)  # a later sequence, committed, published and processed meanwhile
        hub.worker.drain()
        for _ in range(3):
            repair.run()
            clock.advance(2)
        assert low_seq(hub, "test.pings") <= late_seq  # it saw everything visible processed, and waited
        tx.commit()
    assert unprocessed(hub.db, hub.registry) == {"test.pings": [late_seq]}
    assert repair.run() == 1  # seen, and republished to its consumer
    hub.worker.drain()
    c = counters(hub.db)
    assert c["ping"] == 4 and c["ping:2"] == 1
    assert unprocessed(hub.db, hub.registry) == {}
    repair.run()
    clock.advance(61)
    repair.run()
    assert low_seq(hub, "test.pings") == late_seq + 2  # once nothing that old can still be open


def low_seq(hub: Any, consumer: str) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(bus_consumers.c.low_seq).where(bus_consumers.c.consumer == consumer))
                   .scalar_one())


def test_a_publish_wakes_only_the_consumers_it_is_for(tmp_path: Any) -> None:
    """A lane sleeps through publishes meant for other consumers (each round it ran for nothing took the
    GIL from the API), and the consumer a publish is for runs at once, after the relay's commit."""
    import threading
    import time

    from ordersync.bootstrap import build_hub
    from ordersync.config import Settings
    from ordersync.messaging.registry import Registry, Subscription

    seen: list[int] = []
    registry = Registry()
    registry.add(Subscription("test.wanted", frozenset({Ping.TYPE}), lambda msg, ctx: seen.append(msg.n), "io"))
    registry.add(Subscription("test.other", frozenset({"test.never"}), lambda msg, ctx: None, "io"))
    hub = build_hub(Settings(data_dir=tmp_path), registry=registry)
    rounds: dict[str, int] = {"test.wanted": 0, "test.other": 0}
    run_once = hub.runner.run_once

    def counting(consumer: str) -> int:
        if consumer in rounds:
            rounds[consumer] += 1
        return run_once(consumer)

    hub.runner.run_once = counting  # type: ignore[method-assign]
    stop = threading.Event()
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,))
    worker.start()
    try:
        time.sleep(1.0)  # both lanes idle: their sleep has grown to the worker's max_idle (0.5 s)
        rounds.update({"test.wanted": 0, "test.other": 0})
        for n in range(20):  # 20 separate publishes
            emit_pings(hub, n, key=f"k{n}")
            time.sleep(0.03)
        deadline = time.monotonic() + 10
        while len(seen) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        other = rounds["test.other"]
    finally:
        stop.set()
        worker.join(30)
        hub.close()
    assert sorted(seen) == list(range(20))
    assert rounds["test.wanted"] >= 2  # woken by the publishes, not only by its idle poll
    assert other <= 4, f"the lane of a consumer nothing was published for ran {other} rounds in ~0.7 s"
