"""Worker heartbeats in the store: every process running the worker loop says it is alive.

While :meth:`ordersync.messaging.worker.Worker.run_forever` runs, a thread writes the process's row of
``worker_heartbeats`` (id, host, pid, started, last beat, consumers, health port) every
``[health] heartbeat_seconds``; a clean stop removes it. A process that dies (SIGKILL, power loss) leaves
its row behind with an old beat: ``/ready`` reports it missing once the beat is older than
``worker_stale_seconds``, for ``forget_after_seconds``, after which a live worker removes the row.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from ordersync.domain.clock import Clock
from ordersync.store.db import Database
from ordersync.store.schema import worker_heartbeats
from ordersync.store.sql import upsert_row

log = logging.getLogger("ordersync.worker")


@dataclass(frozen=True)
class WorkerBeat:
    id: str
    host: str
    pid: int
    started_at: dt.datetime
    beat_at: dt.datetime
    consumers: tuple[str, ...]
    health_port: int | None = None

    def age(self, now: dt.datetime) -> float:
        return max(0.0, (now - self.beat_at).total_seconds())


class Heartbeat:
    """One worker process's heartbeat (see the module docstring)."""

    def __init__(self, db: Database, clock: Clock, consumers: list[str], *, every: float = 5.0,
                 forget_after: float = 3600.0, health_port: int | None = None) -> None:
        self.db = db
        self.clock = clock
        self.consumers = consumers
        self.every = every
        self.forget_after = forget_after
        self.health_port = health_port
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.started_at: dt.datetime | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.failures = 0

    def beat(self) -> None:
        """Write this process's row now (and remove rows of workers missing longer than ``forget_after``,
        and the row of the process that served this health port on this host before: a port is held by
        one process at a time, so that one is gone, e.g. a worker systemd restarted after it died)."""
        now = self.clock.now()
        with self._lock:
            if self._stopped:
                return
            if self.started_at is None:
                self.started_at = now
            with self.db.write() as conn:
                upsert_row(conn, worker_heartbeats, {"id": self.id},
                           {"host": self.host[:255], "pid": self.pid, "started_at": self.started_at, "beat_at": now,
                            "consumers": json.dumps(self.consumers), "health_port": self.health_port})
                conn.execute(delete(worker_heartbeats).where(
                    worker_heartbeats.c.beat_at < now - dt.timedelta(seconds=self.forget_after)))
                if self.health_port is not None:
                    conn.execute(delete(worker_heartbeats).where(
                        worker_heartbeats.c.host == self.host[:255],
                        worker_heartbeats.c.health_port == self.health_port, worker_heartbeats.c.id != self.id))

    def run(self, stop: threading.Event) -> None:
        """Beat until ``stop`` is set (a thread beside the worker loop). A store that does not answer is one
        warning line per outage: the worker goes on, and ``/ready`` shows the beat getting old."""
        with self._lock:  # the worker loop may run again after a clean stop (tests, the demo)
            self._stopped, self.started_at = False, None
        while not stop.is_set():
            try:
                self.beat()
                if self.failures:
                    log.warning("heartbeat: written again after %d failed attempt(s)", self.failures)
                self.failures = 0
            except Exception as exc:
                self.failures += 1
                if self.failures == 1:
                    log.warning("heartbeat: cannot write to the store (%s: %s); retrying every %.0f s",
                                type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", self.every)
            stop.wait(self.every)

    def stop(self) -> None:
        """A clean stop: no more beats, and the row goes (the worker is not missing, it is gone)."""
        with self._lock:
            self._stopped = True
        try:
            with self.db.write() as conn:
                conn.execute(delete(worker_heartbeats).where(worker_heartbeats.c.id == self.id))
        except Exception as exc:  # the store is down: the row ages and is reported missing, then forgotten
            log.warning("heartbeat: could not remove this worker's row (%s)", exc)


def heartbeats(conn: Connection) -> list[WorkerBeat]:
    """Every worker heartbeat in the store, the most recent beat first."""
    h = worker_heartbeats.c
    rows = conn.execute(select(h.id, h.host, h.pid, h.started_at, h.beat_at, h.consumers, h.health_port)
                        .order_by(h.beat_at.desc())).all()
    return [WorkerBeat(id=r.id, host=r.host, pid=int(r.pid), started_at=r.started_at, beat_at=r.beat_at,
                       consumers=tuple(json.loads(r.consumers or "[]")), health_port=r.health_port) for r in rows]


__all__ = ["Heartbeat", "WorkerBeat", "heartbeats"]
