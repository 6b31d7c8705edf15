"""Small SQL helpers that work on both SQLite and PostgreSQL.

Statements are built once per (dialect, table, shape) and cached: building SQLAlchemy constructs per
call costs more than executing them on SQLite, and these run on every message.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite

from ordersync.store.schema import UtcDateTime


def _dialect_module(name: str) -> Any:
    if name == "postgresql":
        return postgresql
    if name == "sqlite":
        return sqlite
    raise NotImplementedError(name)  # pragma: no cover - only the two supported stores exist


@functools.lru_cache(maxsize=256)
def _insert_ignore_sql(dialect: str, table: str, columns: tuple[str, ...], conflict: tuple[str, ...]) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    # RETURNING rather than rowcount: drivers disagree on rowcount for INSERT .. ON CONFLICT.
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}) "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {conflict[0]}")


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any], conflict: Sequence[str]) -> bool:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING. Returns True when the row was inserted.

    Race-safe: under concurrent arrival exactly one transaction inserts; the others wait for it to
    finish (PostgreSQL) or for the write lock (SQLite) and then insert nothing. Runs straight on the
    driver (it is on the intake and inbox hot paths); values are converted like SQLAlchemy would.
    """
    columns = tuple(values)
    sql = _insert_ignore_sql(conn.dialect.name, table.name, columns, tuple(conflict))
    times = _utc_columns(table, columns)
    params = tuple(driver_time(conn, v) if t and v is not None else v
                   for t, v in zip(times, values.values(), strict=True))
    return raw_cursor(conn, sql, params).fetchone() is not None


@functools.lru_cache(maxsize=256)
def _utc_columns(table: Table, columns: tuple[str, ...]) -> tuple[bool, ...]:
    """For each column, whether it is one of our ``UtcDateTime`` columns (stored in driver form)."""
    return tuple(isinstance(table.c[c].type, UtcDateTime) for c in columns)


def raw_cursor(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Execute on the driver connection inside ``conn``'s transaction (placeholders: ? on SQLite,
    %s on PostgreSQL) and return the cursor."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(sql, params)
    return cursor


def driver_value(conn: Connection, table: Table, column: str, value: Any) -> Any:
    if isinstance(value, dt.datetime) and isinstance(table.c[column].type, UtcDateTime):
        return driver_time(conn, value)
    return value


@functools.lru_cache(maxsize=256)
def _upsert_add_stmt(dialect: str, table: Table, key_col: str, value_col: str) -> Any:
    module = _dialect_module(dialect)
    ins = module.insert(table).values({key_col: bindparam("k"), value_col: bindparam("v")})
    return ins.on_conflict_do_update(
        index_elements=[key_col], set_={value_col: table.c[value_col] + ins.excluded[value_col]}
    )


def upsert_add(conn: Connection, table: Table, key_col: str, key: str, value_col: str, amount: int) -> None:
    """Add ``amount`` to a counter row, creating it if needed (INSERT ... ON CONFLICT DO UPDATE)."""
    conn.execute(_upsert_add_stmt(conn.dialect.name, table, key_col, value_col), {"k": key, "v": amount})


def upsert_add_many(conn: Connection, table: Table, key_col: str, value_col: str,
                    amounts: dict[str, int]) -> None:
    """Several counter increments in one round trip (executemany), in key order: concurrent batches of
    several workers then lock the rows they share in the same order and wait for each other instead of
    deadlocking."""
    if amounts:
        conn.execute(
            _upsert_add_stmt(conn.dialect.name, table, key_col, value_col),
            [{"k": k, "v": v} for k, v in sorted(amounts.items())],
        )


def driver_time(conn: Connection, value: dt.datetime | None) -> Any:
    """A UTC timestamp in the form the driver stores for our ``UtcDateTime`` columns (naive UTC;
    SQLite keeps SQLAlchemy's text format)."""
    if value is None:
        return None
    naive = (value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)).replace(tzinfo=None)
    # isoformat with its microseconds is SQLAlchemy's "%Y-%m-%d %H:%M:%S.%f", at a third of strftime's cost
    return naive.isoformat(" ", "microseconds") if conn.dialect.name == "sqlite" else naive


#: rows per multi-row INSERT: SQLite takes at most 32,766 parameters per statement, and a few hundred rows
#: already cost one statement instead of one step each
_ROWS_PER_INSERT = 200


@functools.lru_cache(maxsize=256)
def _insert_rows_sql(dialect: str, table: str, columns: tuple[str, ...], rows: int,
                     conflict: tuple[str, ...] | None) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    row = f"({', '.join([mark] * len(columns))})"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"
    return sql + (f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else "")


def insert_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]],
                conflict: Sequence[str] | None = None) -> int:
    """Multi-row INSERT straight through the driver; returns how many rows were inserted.

    Values must already be in driver form (see :func:`driver_time`). With ``conflict``, rows whose key
    exists are skipped (``ON CONFLICT DO NOTHING``) and not counted. One statement per few hundred rows,
    not one per row: SQLite's driver releases the GIL for every statement step (``executemany`` steps
    once per row), and each time the API's event loop may keep it for a switch interval; SQLAlchemy's
    per-row parameter processing would cost more than the insert itself."""
    inserted = 0
    if not rows:
        return inserted
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    key = tuple(conflict) if conflict else None
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        sql = _insert_rows_sql(conn.dialect.name, table.name, columns, len(chunk), key)
        cursor.execute(sql, [value for row in chunk for value in row])
        inserted += cursor.rowcount
    return inserted


def bulk_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (see :func:`insert_rows`); used on the message hot path."""
    insert_rows(conn, table, columns, rows)


def upsert_row(conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
    """INSERT the row, or UPDATE ``values`` where the primary key ``key`` exists."""
    module = _dialect_module(conn.dialect.name)
    stmt = module.insert(table).values({**key, **values}).on_conflict_do_update(
        index_elements=list(key), set_=values
    )
    conn.execute(stmt)
