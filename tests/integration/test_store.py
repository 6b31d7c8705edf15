"""The store on SQLite and PostgreSQL: migrations, transactional outbox, business-key ledger."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from ordersync.canonical.v1 import OrderState
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import Conflict, IllegalTransition
from ordersync.flows.services.intake import Receipt, Submission, move_order, receive_order
from ordersync.runtime.intake_writer import IntakeWriter, _Job
from ordersync.store.db import Database
from ordersync.store.schema import metadata, order_transitions, orders, outbox
from ordersync.store.uow import unit_of_work
from tests.support.orders import make_order


def _count(db: Database, table) -> int:  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    db = Database(store_url)
    db.migrate()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    db.dispose()
    assert diff == []


def test_migrating_twice_is_harmless(store_url: str) -> None:
    db = Database(store_url)
    first = db.migrate()
    assert db.migrate() == first
    db.dispose()


def test_sqlite_store_uses_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


def test_state_and_events_commit_together(store_url: str, clock: FakeClock) -> None:
    db = Database(store_url)
    db.migrate()
    with unit_of_work(db, clock) as uow:
        _, created = receive_order(uow, make_order("PO-1"))
    assert created
    with db.read() as conn:
        types = sorted(conn.execute(select(outbox.c.type)).scalars())
        state = conn.execute(select(orders.c.state)).scalar_one()
    assert types == ["order.received", "order.state_changed"]
    assert state == "received"
    db.dispose()


def test_a_failure_after_the_state_change_leaves_neither_state_nor_events(store_url: str, clock: FakeClock) -> None:
    db = Database(store_url)
    db.migrate()
    with pytest.raises(RuntimeError), unit_of_work(db, clock) as uow:
        receive_order(uow, make_order("PO-2"))
        raise RuntimeError("crash between the state change and the commit")
    assert _count(db, orders) == 0 and _count(db, outbox) == 0 and _count(db, order_transitions) == 0

    with unit_of_work(db, clock) as uow:
        record, _ = receive_order(uow, make_order("PO-3"))
    before = _count(db, outbox)
    with pytest.raises(RuntimeError), unit_of_work(db, clock) as uow:
        move_order(uow, record.id, OrderState.VALIDATED, "checked")
        raise RuntimeError("crash")
    with db.read() as conn:
        assert conn.execute(select(orders.c.state)).scalar_one() == "received"
    assert _count(db, outbox) == before
    db.dispose()


def test_an_illegal_transition_changes_nothing(store_url: str, clock: FakeClock) -> None:
    db = Database(store_url)
    db.migrate()
    with unit_of_work(db, clock) as uow:
        record, _ = receive_order(uow, make_order("PO-4"))
    before = (_count(db, outbox), _count(db, order_transitions))
    with pytest.raises(IllegalTransition), unit_of_work(db, clock) as uow:
        move_order(uow, record.id, OrderState.SHIPPED, "skip ahead")
    with db.read() as conn:
        assert conn.execute(select(orders.c.state, orders.c.version)).one() == ("received", 1)
    assert (_count(db, outbox), _count(db, order_transitions)) == before
    db.dispose()


def test_transitions_are_recorded_with_time_and_cause(store_url: str, clock: FakeClock) -> None:
    db = Database(store_url)
    db.migrate()
    with unit_of_work(db, clock) as uow:
        record, _ = receive_order(uow, make_order("PO-5"))
    clock.advance(90)
    with unit_of_work(db, clock) as uow:
        move_order(uow, record.id, OrderState.VALIDATED, "all lines resolve")
    with db.read() as conn:
        from ordersync.store.orders import OrderRepository

        history = OrderRepository(conn).transitions(record.id)
    assert [(t.from_state, t.to_state, t.cause) for t in history] == [
        (None, OrderState.RECEIVED, "received from channel portal"),
        (OrderState.RECEIVED, OrderState.VALIDATED, "all lines resolve"),
    ]
    assert (history[1].at - history[0].at).total_seconds() == 90
    db.dispose()


def test_a_stale_write_is_a_conflict(store_url: str, clock: FakeClock) -> None:
    db = Database(store_url)
    db.migrate()
    with unit_of_work(db, clock) as uow:
        record, _ = receive_order(uow, make_order("PO-6"))
    with unit_of_work(db, clock) as uow:
        stale = uow.orders.get(record.id)
    with unit_of_work(db, clock) as uow:
        move_order(uow, record.id, OrderState.VALIDATED, "first writer")
    stale.move_to(OrderState.REJECTED, clock.now(), "second writer")
    with pytest.raises(Conflict), unit_of_work(db, clock) as uow:
        uow.save_order(stale)
    db.dispose()


@pytest.mark.parametrize("arrivals", [16])
def test_concurrent_arrivals_of_one_order_collapse_into_one(store_url: str, arrivals: int) -> None:
    """Threads with their own connections race to insert the same business key at the same moment."""
    db = Database(store_url, pool_size=arrivals)
    db.migrate()
    clock = FakeClock()
    barrier = threading.Barrier(arrivals)

    def arrive(i: int) -> tuple[str, bool]:
        order = make_order("PO-RACE", channel="shopify")
        barrier.wait()
        with unit_of_work(db, clock) as uow:
            record, created = receive_order(uow, order, delivery_id=f"delivery-{i}")
        return record.id, created

    with ThreadPoolExecutor(arrivals) as pool:
        results = list(pool.map(arrive, range(arrivals)))
    assert sum(created for _, created in results) == 1
    assert len({order_id for order_id, _ in results}) == 1, "every arrival must see the one order"
    assert _count(db, orders) == 1
    with db.read() as conn:
        types = list(conn.execute(select(outbox.c.type)).scalars())
    assert types.count("order.received") == 1
    assert types.count("order.duplicate_received") == arrivals - 1
    db.dispose()


def test_exclusive_lets_one_process_at_a_time_run_a_job(pg_url: str) -> None:
    """Two engines stand for two worker processes: while one holds the job, the other is told to skip;
    once released, the other gets it."""
    a, b = Database(pg_url), Database(pg_url)
    try:
        with a.exclusive("periodic:erp change poll") as first:
            assert first is True
            with b.exclusive("periodic:erp change poll") as second:
                assert second is False
            with b.exclusive("periodic:read model refresh") as other_job:
                assert other_job is True
        with b.exclusive("periodic:erp change poll") as after:
            assert after is True
    finally:
        a.dispose()
        b.dispose()


def test_exclusive_is_always_granted_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.exclusive("job") as one, db.exclusive("job") as two:
        assert one and two
    db.dispose()


def test_after_commit_callbacks_run_once_committed_and_never_after_a_rollback(store_url: str) -> None:
    db = Database(store_url)
    db.migrate()
    seen: list[int] = []

    def count_orders() -> None:  # runs after the commit: another connection sees the row
        with db.read() as conn:
            seen.append(int(conn.execute(select(func.count()).select_from(orders)).scalar_one()))

    clock = FakeClock()
    with unit_of_work(db, clock) as uow:
        receive_order(uow, make_order("PO-AC-1"))
        Database.after_commit(uow.conn, count_orders)
        assert seen == []
    assert seen == [1]
    with pytest.raises(RuntimeError), unit_of_work(db, clock) as uow:
        receive_order(uow, make_order("PO-AC-2"))
        Database.after_commit(uow.conn, count_orders)
        raise RuntimeError("rolled back")
    with unit_of_work(db, clock):  # the rolled-back callback is gone, not left for the next transaction
        pass
    assert seen == [1]
    db.dispose()


def _write_batch(writer: IntakeWriter, batch: list[Submission]) -> list[Receipt | BaseException]:
    """Hand ``batch`` to the intake writer as one batch (as its thread would when requests pile up)."""
    jobs = [_Job(submission, Future()) for submission in batch]
    writer._write(jobs)
    return [job.future.exception() or job.future.result() for job in jobs]


def test_intake_writes_a_batch_of_new_orders_at_once_and_a_mixed_batch_one_order_at_a_time(store_url: str) -> None:
    """The writer's fast path (every order and key new) and its fallback (a re-send, a retried request,
    a key reused for another body, the same order twice in one batch) answer as one order at a time
    would."""
    db = Database(store_url)
    db.migrate()
    writer = IntakeWriter(db, FakeClock())
    new = [make_order(f"PO-B-{i}", channel="shopify") for i in range(5)]
    receipts = _write_batch(writer, [Submission(o, "key:a", f"key-{i}", f"hash-{i}") for i, o in enumerate(new)])
    assert receipts == [Receipt(o.id, OrderState.RECEIVED, duplicate=False, replayed=False) for o in new]
    assert _count(db, orders) == 5 and _count(db, order_transitions) == 5
    with db.read() as conn:
        assert sorted(conn.execute(select(outbox.c.correlation_id).where(outbox.c.type == "order.received"))
                      .scalars()) == sorted(o.id for o in new)

    fresh, twice = make_order("PO-B-10", channel="shopify"), make_order("PO-B-11", channel="shopify")
    again = make_order("PO-B-11", channel="shopify")
    mixed = _write_batch(writer, [
        Submission(fresh, "key:a", "key-10", "hash-10"),
        Submission(make_order("PO-B-1", channel="shopify"), "key:a", "key-resent", "hash-r"),  # re-sent order
        Submission(make_order("PO-B-2", channel="shopify"), "key:a", "key-2", "hash-2"),  # retried request
        Submission(make_order("PO-B-3", channel="shopify"), "key:a", "key-3", "another body"),
        Submission(twice, "key:a", "key-11", "hash-11"),
        Submission(again, "key:a", "key-12", "hash-12"),
    ])
    assert mixed[0] == Receipt(fresh.id, OrderState.RECEIVED, duplicate=False, replayed=False)
    assert mixed[1] == Receipt(new[1].id, OrderState.RECEIVED, duplicate=True, replayed=False)
    assert mixed[2] == Receipt(new[2].id, OrderState.RECEIVED, duplicate=False, replayed=True)
    assert isinstance(mixed[3], Conflict)
    assert mixed[4] == Receipt(twice.id, OrderState.RECEIVED, duplicate=False, replayed=False)
    assert mixed[5] == Receipt(twice.id, OrderState.RECEIVED, duplicate=True, replayed=False)
    assert _count(db, orders) == 7
    writer.close()
    db.dispose()
