"""Engines for SQLite (embedded default) and PostgreSQL, transactions, and migrations.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue up instead of failing halfway (SQLite has one writer at a time). Reads use deferred
transactions and never block writers. PostgreSQL uses READ COMMITTED; races on business keys and inbox
rows are settled by unique constraints with ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import logging
import os
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

from ordersync.config import sqlite_url
from ordersync.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("ordersync.store")
#: key in a connection's ``info`` under which :meth:`Database.after_commit` keeps its callbacks
_AFTER_COMMIT = "ordersync_after_commit"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """One store: an engine plus helpers for read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if ":memory:" in self.url or self.url in ("sqlite://", "sqlite:///"):
                raise ValueError("use a file for SQLite: several connections must share the store")
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 10
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._event_listeners: list[Callable[[], None]] = []
        self._write_lock: WriteQueue | None = None
        self._process_lock: ProcessWriteLock
        self._writer: int | None = None
        self.slow_write_seconds = float(os.environ.get("ORDERSYNC_SLOW_WRITE_MS", "100")) / 1000
        self._checkpointer: threading.Thread | None = None
        self._closed = threading.Event()
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._write_lock = WriteQueue()
            self._process_lock = ProcessWriteLock(self.engine.url.database or "")
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint",
                                                  daemon=True)
            self._checkpointer.start()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def write(self, *, urgent: bool = False) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on an exception.

        On SQLite, writers of this process queue on a lock first: SQLite allows one writer at a time,
        and its own busy handler waits by sleeping in growing steps, which adds tens of milliseconds
        to an API request that happens to meet the worker's commit. The queue is first come, first
        served, except that ``urgent`` writers (intake, which a caller is waiting for) go before the
        worker's background writes. Other processes still meet the busy timeout.
        """
        if self._write_lock is None:
            with self._transaction() as conn:
                yield conn
            return
        if self._writer == threading.get_ident():
            raise RuntimeError("nested write transaction on SQLite (it would wait for itself)")
        with self._write_lock.held(urgent), self._process_lock.held(urgent):
            self._writer = threading.get_ident()
            started = time.perf_counter()
            try:
                with self._transaction() as conn:
                    yield conn
            finally:
                self._writer = None
                held = time.perf_counter() - started
                if held > self.slow_write_seconds:
                    log.warning("write transaction held the store for %.0f ms (%s)", held * 1000, _caller())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                conn.info.pop(_AFTER_COMMIT, None)
                raise
            for callback in conn.info.pop(_AFTER_COMMIT, ()):
                callback()

    @staticmethod
    def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the write transaction ``conn`` belongs to has committed (never if it
        rolls back): what it announces is then visible to every reader."""
        conn.info.setdefault(_AFTER_COMMIT, []).append(callback)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (deferred on SQLite: it never takes the write lock)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(ordersync_read=True)
            with conn.begin():
                yield conn

    def migrate(self) -> str:
        """Create or upgrade the schema to the newest migration; returns the revision."""
        from ordersync.store.migrate import upgrade

        return upgrade(self)

    def current_revision(self) -> str | None:
        from ordersync.store.migrate import current

        return current(self)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def _checkpoint_loop(self, interval: float = 1.0) -> None:
        """Copy the WAL into the database file in the background. Connections do not checkpoint on
        commit (``wal_autocheckpoint=0``): a commit that happened to checkpoint would wait for an fsync
        and show up as a slow API request."""
        while not self._closed.wait(interval):
            try:
                # a raw driver connection in autocommit mode: no BEGIN IMMEDIATE, so the checkpoint never
                # takes the write lock; PASSIVE copies what it can without waiting for anybody
                raw = self.engine.raw_connection()
                try:
                    raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    raw.close()
            except Exception:  # the store may be gone (tests) or busy; the next round tries again
                continue

    def on_events_committed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after a unit of work of this process committed outbox events (the worker
        wakes at once instead of finding them at its next idle poll)."""
        self._event_listeners.append(listener)

    def events_committed(self) -> None:
        for listener in self._event_listeners:
            listener()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Run a block in at most one process at a time across every process sharing this store: yields
        True when this process got the turn, False when another holds it (skip the work). PostgreSQL: a
        session-level advisory lock on a connection held for the block (a process that dies releases
        it with its session). SQLite: one process owns the store, always True."""
        if self.is_sqlite:
            yield True
            return
        key = zlib.crc32(name.encode()) & 0x7FFFFFFF
        with self.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(7243003, :k)"), {"k": key}).scalar_one())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(7243003, :k)"), {"k": key})
                    conn.commit()

    @contextlib.contextmanager
    def sole_worker(self) -> Iterator[None]:
        """Run a block as the store's only worker. SQLite: hold the worker lock (a ``flock`` beside the
        database file), waiting for a worker that still holds it (say the worker of a hub that was killed,
        still finishing its round); the embedded store's worker recovers claims at start as the only one,
        and two at once would take each other's deliveries. The lock goes with the process however it
        ends. PostgreSQL: workers share the store; nothing to hold."""
        if not self.is_sqlite:
            yield
            return
        database = self.engine.url.database or ""
        fd = os.open(database + ".worker-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another worker runs on %s; waiting until it stops", database)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def dispose(self) -> None:
        self._closed.set()
        self.engine.dispose()
        if self.is_sqlite:
            self._process_lock.close()

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)})"


def _caller() -> str:
    """The innermost ordersync frame outside the store that opened a transaction (for slow-write logs)."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/ordersync/" in frame.filename and "/ordersync/store/" not in frame.filename:
            return f"{frame.filename.rsplit('/ordersync/', 1)[-1]}:{frame.lineno} in {frame.name}"
    return "?"


class WriteQueue:
    """A fair lock with two lanes: urgent waiters first, then first come, first served. A plain lock
    lets a thread that releases and re-acquires in a loop (the worker) starve the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._tickets = itertools.count()
        self._waiting: list[tuple[int, int]] = []

    @contextlib.contextmanager
    def held(self, urgent: bool = False) -> Iterator[None]:
        ticket = (0 if urgent else 1, next(self._tickets))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while self._busy or self._waiting[0] != ticket:
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class ProcessWriteLock:
    """The SQLite store's write lock across processes (``ordersync serve --no-worker`` beside ``ordersync
    worker``, or a CLI command while the hub runs), with intake first, as :class:`WriteQueue` is within one.

    Without it, a writer that meets another process's transaction is left to SQLite's busy handler,
    which sleeps 1, 2, 5, 10 ... ms between tries and knows no priority: the API's intake waited behind
    the worker's back-to-back transactions for hundreds of milliseconds (``bench/intake.py``). Here
    writers queue on ``flock`` (the kernel wakes a waiter when the lock is released), and an urgent
    writer holds a gate while it waits, so the other process's next transaction waits for it. The
    locks are files beside the database, released with the process however it ends. Two file
    descriptors per process; :class:`WriteQueue` already lets one thread of the process at a time in.
    """

    def __init__(self, database_file: str) -> None:
        self._paths = (database_file + ".write-gate", database_file + ".write-lock")
        self._fds: tuple[int, int] | None = None
        self._pid = 0

    def _open(self) -> tuple[int, int]:
        if self._fds is None or self._pid != os.getpid():  # a forked child opens its own
            gate, lock = (os.open(path, os.O_RDWR | os.O_CREAT, 0o600) for path in self._paths)
            self._fds, self._pid = (gate, lock), os.getpid()
        return self._fds

    @contextlib.contextmanager
    def held(self, urgent: bool) -> Iterator[None]:
        try:
            gate, lock = self._open()
        except OSError:  # a read-only directory, say: SQLite's busy handler still keeps writers apart
            yield
            return
        fcntl.flock(gate, fcntl.LOCK_EX)  # wait while another process's urgent writer waits
        if urgent:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fds is not None and self._pid == os.getpid():
            for fd in self._fds:
                os.close(fd)
        self._fds = None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=0")  # see Database._checkpoint_loop
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("ordersync_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def disposable_engine(url: str) -> Engine:
    """An engine without pooling, for one-off administrative connections."""
    return create_engine(normalise_url(url), poolclass=NullPool)


__all__ = ["Database", "metadata", "normalise_url", "sqlite_url"]
