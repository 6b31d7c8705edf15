"""Engines for SQLite (embedded default) and PostgreSQL, transactions, and migrations.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue up instead of failing halfway (SQLite has one writer at a time). Reads use deferred
transactions and never block writers. PostgreSQL uses READ COMMITTED; races on business keys and inbox
rows are settled by unique constraints with ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.pool import NullPool

from ordersync.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'ordersync.db').resolve()}"


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
        self._write_lock: threading.Lock | None = None
        self._writer: int | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._write_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on normal exit, rolled back on an exception.

        On SQLite, writers of this process queue on a lock first: SQLite allows one writer at a time,
        and its own busy handler waits by sleeping in growing steps, which adds tens of milliseconds
        to an API request that happens to meet the worker's commit. Other processes still meet the
        busy timeout.
        """
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        if self._writer == threading.get_ident():
            raise RuntimeError("nested write transaction on SQLite (it would wait for itself)")
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
                with self.engine.connect() as conn, conn.begin():
                    yield conn
            finally:
                self._writer = None

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

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)})"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("ordersync_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def disposable_engine(url: str) -> Engine:
    """An engine without pooling, for one-off administrative connections."""
    return create_engine(normalise_url(url), poolclass=NullPool)


__all__ = ["Database", "metadata", "normalise_url", "sqlite_url"]
