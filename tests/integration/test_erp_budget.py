"""The ERP concurrency budget across worker processes: PostgreSQL advisory-lock slots shared by every
process on one store (real PostgreSQL and real OS processes, started with "spawn")."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ordersync.adapters.erp.budget import LocalBudget, PgSlotBudget, budget_for, slot_key
from ordersync.adapters.erp.guard import ErpGate
from ordersync.domain.errors import Unavailable
from ordersync.ports.erp import CircuitState
from ordersync.store.db import Database
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require

SPAWN = multiprocessing.get_context("spawn")
CALL_SECONDS = 0.05


@pytest.fixture(scope="module")
def budget_db() -> Iterator[str]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = create_pg_database("ordersync_budget")
    yield url
    drop_pg_database(url)


def erp_name() -> str:
    return f"erp-{uuid.uuid4().hex[:8]}"  # every test its own slots


# ---- what the child processes run (module level: "spawn" imports them by name) ----


def _hammer(url: str, erp: str, slots: int, use_budget: bool, threads: int, calls: int, start: Barrier,
            results: Any) -> None:
    """One worker process: ``threads`` threads making ``calls`` ERP calls each through its own gate; every
    call records when it ran (CLOCK_MONOTONIC is system-wide on Linux, so the processes' times compare)."""
    db = Database(url)
    gate = ErpGate(erp, max_concurrency=slots, wait_timeout=20, retries=0,
                   global_budget=budget_for(db, erp, slots) if use_budget else None)
    intervals: list[tuple[float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def fake_erp_call() -> None:
        began = time.monotonic()
        time.sleep(CALL_SECONDS)
        ended = time.monotonic()
        with lock:
            intervals.append((began, ended))

    def run() -> None:
        for _ in range(calls):
            try:
                gate.call(fake_erp_call)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    start.wait(timeout=60)  # all processes start calling together
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    results.put((os.getpid(), intervals, errors))
    db.dispose()


def _hold(url: str, erp: str, slots: int, holding: Any) -> None:
    """Take every slot of ``erp`` with calls that never end (until the process is killed)."""
    db = Database(url)
    gate = ErpGate(erp, max_concurrency=slots, wait_timeout=20, retries=0, global_budget=budget_for(db, erp, slots))
    forever = threading.Event()

    def stuck_call() -> None:
        holding.put(os.getpid())
        forever.wait()

    for _ in range(slots):
        threading.Thread(target=lambda: gate.call(stuck_call), daemon=True).start()
    forever.wait()


# ---- helpers ----


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at the same instant as a start comes first)."""
    events = sorted([(began, 1) for began, _ in intervals] + [(ended, -1) for _, ended in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def run_processes(url: str, erp: str, *, use_budget: bool, processes: int = 4, threads: int = 2,
                  calls: int = 5) -> tuple[list[tuple[float, float]], list[str]]:
    start = SPAWN.Barrier(processes)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=_hammer, args=(url, erp, 2, use_budget, threads, calls, start, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        collected = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    intervals = [i for _, found, _ in collected for i in found]
    errors = [e for _, _, found in collected for e in found]
    return intervals, errors


def budget_sessions(url: str, erp: str) -> int:
    db = Database(url)
    try:
        with db.read() as conn:
            return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                                    {"name": f"ordersync-erp-budget:{erp}"}).scalar_one())
    finally:
        db.dispose()


# ---- tests ----


@pytest.mark.postgres
def test_the_budget_holds_across_processes(budget_db: str) -> None:
    intervals, errors = run_processes(budget_db, erp_name(), use_budget=True)
    assert errors == []
    assert len(intervals) == 4 * 2 * 5, "every call completed"
    assert peak_overlap(intervals) == 2, "never more than the budget, and both slots are used"


@pytest.mark.postgres
def test_without_the_global_budget_the_processes_exceed_it(budget_db: str) -> None:
    """The control: the same load with only the per-process lanes overlaps more than 2 (the test above
    can see a violation)."""
    intervals, errors = run_processes(budget_db, erp_name(), use_budget=False)
    assert errors == [] and len(intervals) == 4 * 2 * 5
    assert peak_overlap(intervals) > 2


@pytest.mark.postgres
def test_the_slots_of_a_killed_process_free_themselves(budget_db: str) -> None:
    erp = erp_name()
    holding = SPAWN.Queue()
    holder = SPAWN.Process(target=_hold, args=(budget_db, erp, 2, holding))
    holder.start()
    try:
        for _ in range(2):
            holding.get(timeout=30)  # both slots taken by calls in the other process
        db = Database(budget_db)
        gate = ErpGate(erp, max_concurrency=2, wait_timeout=0.3, retries=0, global_budget=budget_for(db, erp, 2))
        with pytest.raises(Unavailable, match="no global call slot"):
            gate.call(lambda: None)
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join(timeout=10)
        gate.wait_timeout = 10
        started = time.monotonic()
        assert gate.call(lambda: "free again") == "free again"
        assert time.monotonic() - started < 5
        budget = PgSlotBudget(db.engine.url, erp, 2)
        leases = [budget.acquire(5) for _ in range(2)]
        assert all(lease is not None for lease in leases), "both slots came free"
        for lease in leases:
            assert lease is not None
            lease.release()
        budget.close()
        db.dispose()
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


@pytest.mark.postgres
def test_waiting_longer_than_wait_timeout_is_unavailable_not_a_hang(budget_db: str) -> None:
    erp = erp_name()
    other = PgSlotBudget(Database(budget_db).engine.url, erp, 1)  # another session: as another process would
    lease = other.acquire(5)
    assert lease is not None
    db = Database(budget_db)
    gate = ErpGate(erp, max_concurrency=1, wait_timeout=0.4, retries=0, global_budget=budget_for(db, erp, 1))
    started = time.monotonic()
    with pytest.raises(Unavailable, match="no global call slot within"):
        gate.call(lambda: None)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 2
    assert gate.breaker.state is CircuitState.CLOSED, "a full budget is not the ERP's failure"
    assert gate.status().in_flight == 0, "the local slot was given back"
    lease.release()
    assert gate.call(lambda: "ok") == "ok"
    other.close()
    db.dispose()


@pytest.mark.postgres
def test_slots_are_released_when_the_call_raises(budget_db: str) -> None:
    erp = erp_name()
    db = Database(budget_db)
    gate = ErpGate(erp, max_concurrency=1, wait_timeout=2, retries=0, global_budget=budget_for(db, erp, 1))

    def broken() -> None:
        raise KeyError("bug in the adapter")

    for _ in range(3):
        with pytest.raises(KeyError):
            gate.call(broken)
    other = PgSlotBudget(db.engine.url, erp, 1)
    lease = other.acquire(0)
    assert lease is not None, "the slot is free after calls that raised"
    lease.release()
    other.close()
    db.dispose()


def test_an_unreachable_store_makes_the_call_unavailable_not_a_crash() -> None:
    budget = PgSlotBudget("postgresql+psycopg://postgres@127.0.0.1:1/test", "erp-x", 2, connect_timeout=2)
    gate = ErpGate("erp-x", max_concurrency=2, wait_timeout=5, retries=0, global_budget=budget)
    called: list[int] = []
    with pytest.raises(Unavailable, match="budget in the store is unreachable"):
        gate.call(lambda: called.append(1))
    assert called == [] and gate.status().in_flight == 0
    assert gate.breaker.state is CircuitState.CLOSED
    budget.close()


@pytest.mark.postgres
def test_the_hub_gives_each_erp_a_global_budget_on_postgresql_only(budget_db: str, tmp_path: Path) -> None:
    from ordersync.adapters.erp.factory import make_erp
    from ordersync.bootstrap import _router
    from ordersync.config import ErpSettings, Settings
    from ordersync.domain.clock import FakeClock

    erp = erp_name()
    conf = ErpSettings(name=erp, kind="memory", max_concurrency=3)
    for url, scope in [(budget_db, "global"), (f"sqlite:///{tmp_path / 'ordersync.db'}", "process")]:
        db = Database(url)
        router = _router(Settings(data_dir=tmp_path, store=url, erp=[conf]), {erp: make_erp(conf)}, db, FakeClock())
        gate = router.erp(erp).gate
        assert gate.status().scope == scope and gate.max_concurrency == 3
        if scope == "global":
            assert gate.call(lambda: "ok") == "ok"
            assert budget_sessions(budget_db, erp) == 1  # the budget's pooled connection
        db.dispose()  # (Hub.close) the budget's pool goes with the store's
        if scope == "global":
            deadline = time.monotonic() + 5
            while budget_sessions(budget_db, erp) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert budget_sessions(budget_db, erp) == 0


def test_sqlite_keeps_the_local_budget_and_slot_keys_are_distinct(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ordersync.db'}")
    assert isinstance(budget_for(db, "erp-a", 2), LocalBudget)
    db.dispose()
    keys = {slot_key(name, i) for name in ("erp-a", "erp-b") for i in range(64)}
    assert len(keys) == 128 and all(-(2**31) <= k < 2**31 for k in keys)
