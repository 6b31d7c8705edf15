"""The worker loop: relay the outbox, run every consumer, sleep briefly when idle.

``drain()`` runs the same steps until nothing is due, which is what tests and the demo call instead of
sleeping. With a fake clock, messages waiting for a retry are due only once the clock is advanced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ordersync.domain.clock import Clock
from ordersync.domain.errors import ConfigError, Unavailable
from ordersync.messaging.consumer import ConsumerRunner
from ordersync.messaging.registry import Registry
from ordersync.messaging.relay import Relay

log = logging.getLogger("ordersync.worker")


#: what an expected outage raises: the broker (or another remote) down, timing out, failing over
EXPECTED_OUTAGES = (Unavailable, TimeoutError, ConnectionError)


class _Outage:
    """Failures of one loop (the main loop, a lane, a periodic job). An expected outage (the broker down
    or failing over) is one WARNING line saying what is retried, and one when it works again; anything
    else is logged with its traceback, every time."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: Exception, retry_in: float) -> None:
        if not isinstance(exc, EXPECTED_OUTAGES):
            log.exception("%s failed; retrying in %.0fs", self.what, retry_in)
            return
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s: %s; retrying every %.0fs until it answers (nothing is lost)", self.what,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, retry_in)
        else:
            log.debug("%s still failing: %s", self.what, exc)

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s: working again after %.0fs (%d failed attempt(s))", self.what,
                        time.monotonic() - self.since, self.failures)
            self.since, self.failures = None, 0


@dataclass
class _Periodic:
    name: str
    seconds: float
    task: Callable[[], int]
    next_at: float
    singleton: bool = False
    outage: _Outage | None = None


class Worker:
    def __init__(
        self,
        relay: Relay,
        runner: ConsumerRunner,
        registry: Registry,
        clock: Clock,
        *,
        poll_interval: float = 0.05,
        max_idle: float = 0.5,
        consumers: list[str] | None = None,
    ) -> None:
        self.relay = relay
        self.runner = runner
        self.registry = registry
        self.clock = clock
        self.poll_interval = poll_interval
        self.max_idle = max(max_idle, poll_interval)
        self.consumers = consumers if consumers is not None else registry.names()
        self._wake = threading.Event()
        self._wake_forwards: list[Callable[[], None]] = []
        self.processed = 0
        self._count_lock = threading.Lock()
        #: consumers running in threads of their own (I/O consumers, while run_forever runs)
        self._laned: set[str] = set()
        self._lane_wakes: dict[str, threading.Event] = {}
        #: while run_forever runs: the main loop's consumers with messages announced since their last
        #: round (the others are looked at only every max_idle, see _round_consumers)
        self._announced: set[str] | None = None
        self._next_look = 0.0

        self._periodic: list[_Periodic] = []
        self._periodic_threads: list[threading.Thread] = []
        self._alongside: list[tuple[str, Callable[[threading.Event], None]]] = []
        self._on_stop: list[Callable[[], None]] = []

    def every(self, seconds: float, name: str, task: Callable[[], int], *, singleton: bool = False) -> None:
        """Run ``task`` (returning the work it did) at most every ``seconds`` from the worker loop.
        ``singleton``: in one worker process at a time across every process sharing the store (ERP
        change polls and refreshes: several workers would ask the ERP the same questions)."""
        self._periodic.append(_Periodic(name, seconds, task, next_at=self.clock.monotonic(), singleton=singleton))

    def alongside(self, name: str, target: Callable[[threading.Event], None],
                  on_stop: Callable[[], None] | None = None) -> None:
        """Run ``target(stop)`` in a thread of its own while :meth:`run_forever` runs (a subscription that
        blocks in long polls); ``on_stop`` is called on the way out to cut a wait short. The thread is not
        waited for (a long poll in progress may hold it for minutes), so it must not need the store then."""
        self._alongside.append((name, target))
        if on_stop is not None:
            self._on_stop.append(on_stop)

    def wake(self) -> None:
        """Cut the main loop's idle sleep short: new outbox rows for the relay (called after a commit
        that wrote events in this process), and tell the worker processes that asked to hear of it."""
        self._wake.set()
        for forward in self._wake_forwards:
            forward()

    def forward_wakes(self, forward: Callable[[], None]) -> None:
        """Also call ``forward`` on every :meth:`wake` (the worker runs in another process; see
        :mod:`ordersync.messaging.wake`)."""
        self._wake_forwards.append(forward)

    def wake_consumers(self, consumers: frozenset[str]) -> None:
        """Messages arrived for ``consumers``: wake the threads that run them, and only those. A lane
        that nothing was published for sleeps on; with a lane per I/O consumer, waking every lane on
        every publish cost the API's event loop a share of the GIL for rounds that found nothing."""
        lanes = self._lane_wakes
        if any(c not in lanes for c in consumers):
            with self._count_lock:
                if self._announced is not None:
                    self._announced.update(consumers)
            self._wake.set()
        for consumer in consumers:
            event = lanes.get(consumer)
            if event is not None:
                event.set()

    def recover(self, *, sole_worker: bool) -> int:
        """Start-up recovery. A sole worker (the embedded SQLite default) takes back the deliveries a
        crashed predecessor had claimed instead of waiting for their leases to run out."""
        if not sole_worker:
            return 0
        released = self.runner.transport.release_leases()
        if released:
            log.warning("took back %d deliveries claimed by a previous worker that stopped abruptly", released)
        return released

    def run_once(self) -> int:
        """One round: relay one batch, then one batch per consumer. Returns the work done."""
        done = 0 if self._periodic_threads else self._run_periodic()
        done += self.relay.pump()
        for consumer in self._round_consumers():
            n = self.runner.run_once(consumer)
            self._count(n)
            done += n
            if n and self._announced is not None:
                with self._count_lock:
                    self._announced.add(consumer)  # a full batch: more may be waiting
        return done

    def _round_consumers(self) -> list[str]:
        """The main loop's consumers to run this round. While ``run_forever`` runs, publishes announce
        which consumers received messages, and a busy round runs only those: asking every idle consumer
        "anything due?" on every round (hundreds a second while orders stream in) took the GIL from
        the API. Every ``max_idle`` a round looks at them all (retries falling due, work published by
        other processes: as soon as an idle loop would)."""
        mine = [c for c in self.consumers if c not in self._laned]
        if self._announced is None:
            return mine
        now = time.monotonic()
        with self._count_lock:
            if now >= self._next_look:
                self._next_look = now + self.max_idle
                self._announced.clear()
                return mine
            announced, self._announced = self._announced, set()
        return [c for c in mine if c in announced]

    def _count(self, n: int) -> None:
        if n:
            with self._count_lock:
                self.processed += n

    def _run_periodic(self, jobs: list[_Periodic] | None = None) -> int:
        done = 0
        now = self.clock.monotonic()
        for job in self._periodic if jobs is None else jobs:
            if now < job.next_at:
                continue
            job.next_at = now + job.seconds
            outage = job.outage = job.outage or _Outage(f"periodic task {job.name}")
            try:
                if job.singleton:
                    with self.relay.db.exclusive(f"periodic:{job.name}") as mine:
                        done += job.task() if mine else 0
                else:
                    done += job.task()
                outage.ok()
            except Exception as exc:
                outage.failed(exc, job.seconds)
        return done

    def drain(self, max_rounds: int = 1_000_000) -> int:
        """Run rounds until a round finds nothing due. Returns the total work done."""
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                return total
        raise RuntimeError(f"drain did not settle within {max_rounds} rounds")

    def _periodic_loop(self, job: _Periodic, stop: threading.Event) -> None:
        """The job's own thread: it sleeps until the job falls due (not in short polls: a dozen threads
        waking twenty times a second each would take the GIL from the API for nothing)."""
        while not stop.is_set():
            if self._run_periodic([job]):
                self.wake()
            stop.wait(min(job.seconds, 1.0, max(0.01, job.next_at - self.clock.monotonic())))

    def run_forever(self, stop: threading.Event, on_round: Callable[[int], None] | None = None) -> None:
        """Run until ``stop`` is set. Each periodic job (ERP change poll, read model refresh) runs in a
        thread of its own, so that a slow ERP call never holds up the relay, the consumers or the other
        jobs; a job never overlaps itself."""
        log.info("worker started: consumers %s", ", ".join(self.consumers) or "(none)")
        self._periodic_threads = [
            threading.Thread(target=self._periodic_loop, args=(job, stop), name=f"ordersync-{job.name}", daemon=True)
            for job in self._periodic
        ]
        # An I/O consumer's batch can take seconds (ERP calls): each runs in a lane of its own, so the
        # relay and the transactional consumers (projections, fan-out) never wait behind it.
        lanes = [c for c in self.consumers if self.registry[c].mode == "io"]
        self._laned = set(lanes)
        self._announced = set()
        for consumer in lanes:
            wake = threading.Event()
            self._lane_wakes[consumer] = wake
            self._periodic_threads.append(threading.Thread(target=self._lane_loop, args=(consumer, wake, stop),
                                                           name=f"ordersync-{consumer}", daemon=True))
        for thread in self._periodic_threads:
            thread.start()
        for name, target in self._alongside:
            threading.Thread(target=target, args=(stop,), name=f"ordersync-{name}", daemon=True).start()
        try:
            self._loop(stop, on_round)
        finally:
            stop.set()  # however the loop ended, the periodic threads end with it
            for hook in self._on_stop:
                hook()
            for thread in self._periodic_threads:
                thread.join(timeout=30)
            self._periodic_threads = []
            self._laned = set()
            self._lane_wakes = {}
            self._announced = None
        log.info("worker stopped after %d deliveries", self.processed)

    def _lane_loop(self, consumer: str, wake: threading.Event, stop: threading.Event) -> None:
        """One I/O consumer, batch after batch; idle, it sleeps like the main loop (woken by publishes)."""
        idle = self.poll_interval
        outage = _Outage(f"consumer {consumer}")
        while not stop.is_set():
            try:
                n = self.runner.run_once(consumer)
                outage.ok()
            except Exception as exc:  # survives a broken store or broker connection, like the main loop
                outage.failed(exc, 1.0)
                n = 0
                stop.wait(1.0)
            self._count(n)
            idle = self._pause(n, wake, idle)

    def _pause(self, done: int, wake: threading.Event, idle: float) -> float:
        """After a round: go on at once if it did work, else sleep ``idle`` (cut short by ``wake``);
        returns the next idle sleep, doubling up to ``max_idle`` while nothing happens."""
        if done:
            return self.poll_interval
        woken = wake.wait(idle)
        wake.clear()
        return self.poll_interval if woken else min(idle * 2, self.max_idle)

    def _loop(self, stop: threading.Event, on_round: Callable[[int], None] | None) -> None:
        """Rounds back to back while there is work; when idle, sleep ``poll_interval``, doubling up to
        ``max_idle`` while nothing happens (publishes in this process wake the loop at once, so only
        retries falling due and work written by other processes wait for the poll)."""
        idle = self.poll_interval
        outage = _Outage("worker round (outbox relay and consumers)")
        while not stop.is_set():
            try:
                n = self.run_once()
                outage.ok()
            except ConfigError:  # a configuration that cannot work (streams that differ from it): stop, say why
                raise
            except Exception as exc:  # the loop survives a broken store or broker connection and tries again
                outage.failed(exc, 1.0)
                n = 0
                stop.wait(1.0)
            if on_round is not None:
                try:
                    on_round(n)
                except Exception:  # a status line that cannot be drawn must not stop the work
                    log.warning("worker status callback failed", exc_info=True)
            idle = self._pause(n, self._wake, idle)
