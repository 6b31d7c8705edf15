"""Protection for an ERP: one concurrency budget per ERP instance shared by every flow, with priority
lanes, bounded waits, bounded retries with backoff, and a circuit breaker.

The ERP is the system of record and the slowest part of the chain (Tryton confirms about one order per
second). Every call any flow makes goes through the :class:`ErpGate` of its ERP instance:

- at most ``max_concurrency`` calls run at once; waiters are served by priority (order submission
  before stock and catalog reads), first come first served within a lane. The lanes are per process;
  with a global budget (:mod:`ordersync.adapters.erp.budget`, on a PostgreSQL store) a call also holds
  one of ``max_concurrency`` slots shared by every process, so the limit holds across worker processes;
- a caller waits at most ``wait_timeout`` for a slot, then gets :class:`Unavailable` (the message is
  retried later; nothing is lost);
- a failing call is retried ``retries`` times with exponential backoff;
- after ``failure_threshold`` consecutive failures the circuit opens: calls fail fast for
  ``reset_timeout`` seconds, then one probe call decides whether it closes again. Consumers treat
  :class:`Unavailable` as "wait", not as a failed attempt, so work resumes by itself when the ERP is
  back.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ordersync.adapters.erp.budget import SlotBudget
from ordersync.domain.clock import Clock, SystemClock
from ordersync.domain.errors import IntegrationError, Unavailable
from ordersync.ports.erp import CircuitState, ErpStatus, Lane

log = logging.getLogger("ordersync.erp.guard")
T = TypeVar("T")


class CircuitOpen(Unavailable):
    """The ERP failed repeatedly; calls fail fast until the next probe."""


class CircuitBreaker:
    def __init__(self, name: str, clock: Clock, *, failure_threshold: int = 5, reset_timeout: float = 10.0) -> None:
        self.name = name
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error: str | None = None
        self.last_success: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    def before_call(self) -> None:
        with self._lock:
            if self.state is CircuitState.CLOSED:
                return
            now = self.clock.monotonic()
            if self.state is CircuitState.OPEN and self.opened_at is not None:
                if now - self.opened_at < self.reset_timeout:
                    wait = self.reset_timeout - (now - self.opened_at)
                    raise CircuitOpen(f"ERP {self.name}: circuit open ({self.last_error}); next probe in {wait:.0f}s")
                self.state = CircuitState.HALF_OPEN
            if self._probing:
                raise CircuitOpen(f"ERP {self.name}: circuit half-open, a probe call is in flight")
            self._probing = True

    def record_success(self) -> None:
        with self._lock:
            if self.state is not CircuitState.CLOSED:
                log.warning("ERP %s: circuit closed again, the ERP answers", self.name)
            self.state = CircuitState.CLOSED
            self.failures = 0
            self._probing = False
            self.last_success = self.clock.monotonic()

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self._probing = False
            if self.state is CircuitState.HALF_OPEN or self.failures >= self.failure_threshold:
                if self.state is not CircuitState.OPEN:
                    log.error("ERP %s: circuit opened after %d failures: %s", self.name, self.failures, error)
                self.state = CircuitState.OPEN
                self.opened_at = self.clock.monotonic()

    def release_probe(self) -> None:
        """A probe that ended without a verdict (e.g. a business error) frees the probe slot."""
        with self._lock:
            self._probing = False


class ErpGate:
    """The concurrency budget, retries and circuit breaker of one ERP instance."""

    def __init__(
        self,
        name: str,
        *,
        max_concurrency: int = 2,
        wait_timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        global_budget: SlotBudget | None = None,
    ) -> None:
        self.name = name
        self.global_budget = global_budget
        self.max_concurrency = max_concurrency
        self.wait_timeout = wait_timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.breaker = CircuitBreaker(name, clock or SystemClock(), failure_threshold=failure_threshold,
                                      reset_timeout=reset_timeout)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._waiters: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self.calls = 0
        self.failed_calls = 0
        #: guarded calls per lane (one port call may be several requests on the wire: see WireCounter)
        self.lane_calls: Counter[str] = Counter()

    def call(self, fn: Callable[[], T], *, lane: Lane | None = None, retryable: bool = True) -> T:
        """Run ``fn`` within the budget, retrying transient failures, guarded by the circuit."""
        lane = Lane.READS if lane is None else lane  # (ORDERS is 0: never use `or` here)
        lane_name = lane.name.lower()
        attempt = 0
        while True:
            with self._slot(lane):  # waiting too long raises Unavailable; that is not the ERP's fault
                self.breaker.before_call()
                try:
                    self.calls += 1
                    self.lane_calls[lane_name] += 1
                    with in_lane(lane_name):
                        result = fn()
                except IntegrationError as exc:
                    self.failed_calls += 1
                    self.breaker.record_failure(exc)
                    error: IntegrationError = exc
                except BaseException:
                    self.breaker.release_probe()  # a business answer says nothing about the ERP's health
                    raise
                else:
                    self.breaker.record_success()
                    return result
            attempt += 1
            if not (retryable and error.retryable) or attempt > self.retries:
                raise error
            self.sleep(self.backoff * 2 ** (attempt - 1))

    @contextlib.contextmanager
    def _slot(self, lane: Lane) -> Iterator[None]:
        ticket = (int(lane), next(self._seq))
        deadline = time.monotonic() + self.wait_timeout
        with self._cond:
            heapq.heappush(self._waiters, ticket)
            try:
                while self._in_flight >= self.max_concurrency or self._waiters[0] != ticket:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Unavailable(
                            f"ERP {self.name}: no call slot within {self.wait_timeout:.0f}s "
                            f"({self._in_flight} calls in flight, {len(self._waiters)} waiting)"
                        )
                    self._cond.wait(remaining)
            finally:
                self._waiters.remove(ticket)
                heapq.heapify(self._waiters)
                self._cond.notify_all()
            self._in_flight += 1
        try:
            if self.global_budget is None:
                yield
                return
            # the local lanes chose this caller; now it also needs one of the slots all processes share
            lease = self.global_budget.acquire(max(0.0, deadline - time.monotonic()))
            if lease is None:
                raise Unavailable(
                    f"ERP {self.name}: no global call slot within {self.wait_timeout:.0f}s "
                    f"(all {self.max_concurrency} taken by this and other processes)"
                )
            try:
                yield
            finally:
                lease.release()
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def status(self) -> ErpStatus:
        with self._cond:
            waiting: dict[str, int] = {}
            for lane, _ in self._waiters:
                key = Lane(lane).name.lower()
                waiting[key] = waiting.get(key, 0) + 1
            return ErpStatus(
                erp=self.name, circuit=self.breaker.state, consecutive_failures=self.breaker.failures,
                last_error=self.breaker.last_error, in_flight=self._in_flight, waiting=waiting,
                max_concurrency=self.max_concurrency, calls=self.calls, failures=self.failed_calls,
                lane_calls=dict(self.lane_calls),
                scope=self.global_budget.scope if self.global_budget is not None else "process",
            )

    def close(self) -> None:
        """Release what the global budget keeps open (its database connections)."""
        if self.global_budget is not None:
            self.global_budget.close()


class Coalescer:
    """Turns concurrent single calls into batch calls: callers that arrive within ``max_wait`` of each
    other (up to ``max_batch``) are served by one call of ``batch_fn``. The ERP confirms a batch of
    sales several times faster than the same sales one by one."""

    def __init__(self, batch_fn: Callable[[list[Any]], list[Any]], *, max_batch: int = 20,
                 max_wait: float = 0.05) -> None:
        self.batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, _Slot]] = []
        self._leader = False
        self._full = threading.Event()

    def submit(self, item: Any) -> Any:
        slot = _Slot()
        with self._lock:
            self._pending.append((item, slot))
            lead = not self._leader
            if lead:
                self._leader = True
                self._full.clear()
            elif len(self._pending) >= self.max_batch:
                self._full.set()
        if lead:
            self._full.wait(self.max_wait)
            self._flush()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _flush(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                if not batch:
                    self._leader = False
                    return
            try:
                results = self.batch_fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise IntegrationError(f"batch call returned {len(results)} results for {len(batch)} items")
                for (_, slot), result in zip(batch, results, strict=True):
                    slot.result = result
            except BaseException as exc:
                for _, slot in batch:
                    slot.error = exc
            for _, slot in batch:
                slot.done.set()


class _Slot:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


# -- counting what reaches the ERP ----------------------------------------------------------------------------
# The gate names the lane of the call it runs in this thread; a client counts its requests on the wire
# (JSON-RPC requests, the twin's port calls) under that name, so /metrics and the gate's status say which
# lane spends the ERP's capacity (bench/erp_cost.py reads them).

_current = threading.local()


@contextlib.contextmanager
def in_lane(lane: str) -> Iterator[None]:
    """Calls made by this thread inside the block count under ``lane``."""
    before = getattr(_current, "lane", None)
    _current.lane = lane
    try:
        yield
    finally:
        _current.lane = before


class WireCounter:
    """Requests per lane ("unguarded" for calls outside any gate: log-ins, tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, lane: str | None = None) -> None:
        """One request, in ``lane`` or else the calling thread's (see :func:`in_lane`)."""
        lane = lane or getattr(_current, "lane", None) or "unguarded"
        with self._lock:
            self._counts[lane] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
