"""The ERP gate: budget, priority lanes, bounded waits, retries, circuit breaker, coalescing."""

from __future__ import annotations

import threading
import time

import pytest

from ordersync.adapters.erp.guard import CircuitOpen, Coalescer, ErpGate
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import Unavailable, ValidationFailed
from ordersync.ports.erp import CircuitState, Lane


def gate(**kwargs: object) -> ErpGate:
    defaults: dict[str, object] = {"clock": FakeClock(), "sleep": lambda _s: None, "retries": 0}
    defaults.update(kwargs)
    return ErpGate("erp-a", **defaults)  # type: ignore[arg-type]


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_no_more_calls_run_at_once_than_the_budget_allows() -> None:
    g = gate(max_concurrency=2)
    running, peak, lock = [0], [0], threading.Lock()

    def call() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    threads = [threading.Thread(target=lambda: g.call(call)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and g.calls == 8


def test_order_submission_is_served_before_waiting_catalog_reads() -> None:
    g = gate(max_concurrency=1)
    release = threading.Event()
    order: list[str] = []
    holder = threading.Thread(target=lambda: g.call(release.wait))
    holder.start()
    wait_until(lambda: g.status().in_flight == 1)
    reads = [threading.Thread(target=lambda i=i: g.call(lambda: order.append(f"read{i}"), lane=Lane.READS))
             for i in range(3)]
    for t in reads:
        t.start()
    wait_until(lambda: g.status().waiting.get("reads") == 3)

    def submit() -> None:
        g.call(lambda: order.append("order"), lane=Lane.ORDERS)

    submitter = threading.Thread(target=submit)
    submitter.start()
    wait_until(lambda: g.status().waiting.get("orders") == 1)
    release.set()
    for t in [holder, submitter, *reads]:
        t.join()
    assert order[0] == "order" and sorted(order[1:]) == ["read0", "read1", "read2"]


def test_a_caller_waits_a_bounded_time_for_a_slot() -> None:
    g = gate(max_concurrency=1, wait_timeout=0.05)
    release = threading.Event()
    holder = threading.Thread(target=lambda: g.call(release.wait))
    holder.start()
    wait_until(lambda: g.status().in_flight == 1)
    with pytest.raises(Unavailable, match="no call slot"):
        g.call(lambda: None)
    release.set()
    holder.join()
    assert g.breaker.state is CircuitState.CLOSED, "a full budget is not the ERP's failure"


def test_transient_failures_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    g = gate(retries=2, backoff=0.5, sleep=sleeps.append)
    outcomes = iter([Unavailable("timeout"), Unavailable("timeout"), "ok"])

    def flaky() -> str:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert g.call(flaky) == "ok"
    assert sleeps == [0.5, 1.0]


def test_the_circuit_opens_fails_fast_probes_and_closes() -> None:
    clock = FakeClock()
    g = gate(clock=clock, failure_threshold=3, reset_timeout=10)
    calls = [0]

    def down() -> None:
        calls[0] += 1
        raise Unavailable("connection refused")

    for _ in range(3):
        with pytest.raises(Unavailable):
            g.call(down)
    assert g.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen, match="connection refused"):
        g.call(down)
    assert calls[0] == 3, "an open circuit does not call the ERP"
    clock.advance(10)
    with pytest.raises(Unavailable):
        g.call(down)  # the probe fails: open again
    assert g.breaker.state is CircuitState.OPEN and calls[0] == 4
    clock.advance(10)
    assert g.call(lambda: "back") == "back"
    assert g.breaker.state is CircuitState.CLOSED and g.status().consecutive_failures == 0


def test_business_errors_do_not_count_against_the_erp() -> None:
    g = gate(failure_threshold=1)
    with pytest.raises(ValidationFailed):
        g.call(lambda: (_ for _ in ()).throw(ValidationFailed(["unknown SKU"])))
    assert g.breaker.state is CircuitState.CLOSED


def test_concurrent_single_submissions_become_one_batch() -> None:
    batches: list[list[int]] = []

    def batch_fn(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    co = Coalescer(batch_fn, max_batch=20, max_wait=0.2)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, co.submit(i))) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 10 for i in range(6)}
    assert sum(len(b) for b in batches) == 6 and len(batches) < 6


def test_a_failed_batch_fails_every_caller_in_it() -> None:
    def batch_fn(items: list[int]) -> list[int]:
        raise Unavailable("ERP down")

    co = Coalescer(batch_fn, max_wait=0.01)
    with pytest.raises(Unavailable):
        co.submit(1)
