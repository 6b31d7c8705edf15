"""Order repository: the business-key ledger, optimistic concurrency, and the transition history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from ordersync.canonical.erp import parse_reference
from ordersync.canonical.v1 import OrderState
from ordersync.domain.errors import ConcurrentUpdate, Conflict, NotFound
from ordersync.domain.order.aggregate import OrderRecord, Transition, load_record
from ordersync.domain.order.parts import dump_parts
from ordersync.store.schema import idempotency_keys, order_transitions, orders
from ordersync.store.sql import bulk_insert, driver_time, insert_rows, raw_cursor
from ordersync.telemetry import tracing

# Built once: constructing SQLAlchemy statements per call costs more than running them on SQLite.
_BY_ID = select(orders).where(orders.c.id == bindparam("order_id"))
_HAS_BACKORDERS = select(orders.c.backordered).where(orders.c.id == bindparam("order_id"))
_SAVE = (
    update(orders)
    .where(orders.c.id == bindparam("order_id"), orders.c.version == bindparam("expected"))
    .values(
        state=bindparam("state"),
        held_from=bindparam("held_from"),
        data=bindparam("data"),
        body=bindparam("body"),
        total=bindparam("total"),
        backordered=bindparam("backordered"),
        version=bindparam("new_version"),
        updated_at=bindparam("updated_at"),
    )
)


class OrderRepository:
    """Reads and writes orders inside one transaction (``conn``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_if_absent(self, record: OrderRecord, at: dt.datetime) -> tuple[OrderRecord, bool]:
        """Insert a new order unless its business key (channel, external order number) exists.

        Returns the stored record and whether this call created it. Two concurrent arrivals of the same
        order collapse into one row: the database's unique constraint decides, not a check-then-act.
        """
        order = record.order
        created = insert_rows(self.conn, orders, _NEW_COLUMNS, [self._new_row(record, at)],
                              conflict=("channel", "external_order_number")) == 1
        if created:
            record.version = 1
            self._write_transitions(record)
            return record, True
        existing = self.by_business_key(order.channel, order.external_order_number)
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish inside our transaction
            raise Conflict(f"order {order.channel}/{order.external_order_number} conflicted but is not visible")
        return existing, False

    def add_all_new(self, records: list[OrderRecord], at: dt.datetime) -> bool:
        """Insert new orders, all in one statement; False (the caller rolls back) if any business key
        exists already, in which case those rows were skipped and the others inserted."""
        rows = [self._new_row(record, at) for record in records]
        inserted = insert_rows(self.conn, orders, _NEW_COLUMNS, rows, conflict=("channel", "external_order_number"))
        if inserted != len(rows):
            return False
        for record in records:
            record.version = 1
        self._write_transitions(*records)
        return True

    def _new_row(self, record: OrderRecord, at: dt.datetime) -> tuple[Any, ...]:
        """A new order's row, in :data:`_NEW_COLUMNS` order and driver form."""
        order = record.order
        when = driver_time(self.conn, at)
        return (order.id, order.channel, order.external_order_number, order.account_id, record.state.value, None, 1,
                order.model_dump_json(), dump_parts(record), _total(record), record.is_backordered, when, when)

    def get(self, order_id: str) -> OrderRecord:
        record = self.find(order_id)
        if record is None:
            raise NotFound(f"order {order_id} not found")
        return record

    def find(self, order_id: str) -> OrderRecord | None:
        row = self.conn.execute(_BY_ID, {"order_id": order_id}).mappings().first()
        if not row:
            return None
        record = _record(row)
        tracing.annotate_order(record.id, record.order.account_id, record.order.channel)
        return record

    def lock(self, order_id: str) -> OrderRecord | None:
        """The order, its row locked for this transaction (PostgreSQL: another writer waits instead of
        failing our optimistic save; SQLite's single writer needs no lock)."""
        self.conn.execute(select(orders.c.id).where(orders.c.id == order_id).with_for_update())
        return self.find(order_id)

    def account_of(self, order_id: str) -> str | None:
        account: str | None = self.conn.execute(select(orders.c.account_id).where(orders.c.id == order_id)
                                                ).scalar_one_or_none()
        return account

    def match(self, order_id: str | None, reference: str | None, account_id: str | None) -> str | None:
        """The hub order a partner names by hub id, ERP reference (``OS-<order>-<plant>``) or the
        channel's order number, if exactly one matches (and, with ``account_id``, it is that account's)."""
        query = select(orders.c.id, orders.c.account_id)
        if order_id:
            rows = list(self.conn.execute(query.where(orders.c.id == order_id)))
        elif reference and (parsed := parse_reference(reference)) is not None:
            rows = list(self.conn.execute(query.where(orders.c.id == parsed[0])))
        elif reference:
            rows = list(self.conn.execute(query.where(orders.c.external_order_number == reference).limit(2)))
        else:
            rows = []
        if len(rows) != 1 or (account_id is not None and rows[0][1] != account_id):
            return None
        found: str = rows[0][0]
        return found

    def numbers_starting(self, channel: str, prefix: str) -> list[str]:
        """The channel's external order numbers that start with ``prefix``."""
        return list(self.conn.execute(select(orders.c.external_order_number).where(
            orders.c.channel == channel, orders.c.external_order_number.startswith(prefix, autoescape=True)))
            .scalars())

    def backordered(self, states: frozenset[OrderState], limit: int) -> list[str]:
        """Ids of orders in ``states`` with backordered allocations, least recently changed first."""
        return list(self.conn.execute(
            select(orders.c.id).where(orders.c.state.in_([s.value for s in states]), orders.c.backordered)
            .order_by(orders.c.updated_at).limit(limit)).scalars())

    def has_backorders(self, order_id: str) -> bool:
        """Whether the order has backordered allocations (a column: no need to load the order)."""
        return bool(self.conn.execute(_HAS_BACKORDERS, {"order_id": order_id}).scalar())

    def idempotency_key(self, scope: str, key: str) -> tuple[str, str] | None:
        """(request fingerprint, order id) of an idempotency key used before."""
        row = raw_cursor(self.conn, _key_lookup(self.conn), (scope, key)).fetchone()
        return (row[0], row[1]) if row is not None else None

    def remember_idempotency_key(self, scope: str, key: str, fingerprint: str, order_id: str,
                                 at: dt.datetime) -> bool:
        """False if a concurrent request took the key first."""
        return self.remember_idempotency_keys([(scope, key, fingerprint, order_id)], at)

    def known_idempotency_keys(self, keys: list[tuple[str, str]]) -> int:
        """How many of the (scope, key) pairs were used before (one query for a batch of requests)."""
        if not keys:
            return 0
        mark = "?" if self.conn.dialect.name == "sqlite" else "%s"
        values = ", ".join([f"({mark}, {mark})"] * len(keys))
        # a join, not "(scope, key) IN (VALUES ...)": SQLite scans the whole table for that one
        sql = (f"SELECT count(*) FROM (VALUES {values}) AS v JOIN idempotency_keys AS k "
               "ON k.scope = v.column1 AND k.key = v.column2")
        known: int = raw_cursor(self.conn, sql, [part for pair in keys for part in pair]).fetchone()[0]
        return known

    def remember_idempotency_keys(self, keys: list[tuple[str, str, str, str]], at: dt.datetime) -> bool:
        """Store (scope, key, fingerprint, order id) rows in one statement; False (the caller rolls back)
        if a concurrent request took one of the keys first."""
        when = driver_time(self.conn, at)
        rows = [(*key, when) for key in keys]
        return insert_rows(self.conn, idempotency_keys, ("scope", "key", "request_hash", "order_id", "created_at"),
                           rows, conflict=("scope", "key")) == len(rows)

    def by_business_key(self, channel: str, external_order_number: str) -> OrderRecord | None:
        row = (
            self.conn.execute(
                select(orders).where(
                    orders.c.channel == channel, orders.c.external_order_number == external_order_number
                )
            )
            .mappings()
            .first()
        )
        return _record(row) if row else None

    def save(self, record: OrderRecord, at: dt.datetime) -> None:
        """Write state and parts if nobody changed the row since it was read (else :class:`Conflict`)."""
        result = self.conn.execute(
            _SAVE,
            {
                "order_id": record.id,
                "expected": record.version,
                "state": record.state.value,
                "held_from": record.held_from.value if record.held_from else None,
                "data": dump_parts(record),
                "body": record.order.model_dump_json(),
                "total": _total(record),
                "backordered": record.is_backordered,
                "new_version": record.version + 1,
                "updated_at": at,
            },
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"order {record.id} was changed concurrently (version {record.version})")
        record.version += 1
        self._write_transitions(record)

    def transitions(self, order_id: str) -> list[Transition]:
        rows = self.conn.execute(
            select(order_transitions)
            .where(order_transitions.c.order_id == order_id)
            .order_by(order_transitions.c.id)
        ).mappings()
        return [
            Transition(
                order_id=r["order_id"],
                from_state=OrderState(r["from_state"]) if r["from_state"] else None,
                to_state=OrderState(r["to_state"]),
                at=r["at"],
                cause=r["cause"],
            )
            for r in rows
        ]

    def _write_transitions(self, *records: OrderRecord) -> None:
        rows = [(t.order_id, t.from_state.value if t.from_state else None, t.to_state.value,
                 driver_time(self.conn, t.at), t.cause)
                for record in records for t in record.new_transitions]
        bulk_insert(self.conn, order_transitions, ("order_id", "from_state", "to_state", "at", "cause"), rows)
        for record in records:
            record.new_transitions.clear()


#: the columns of a new order's row (see :meth:`OrderRepository._new_row`)
_NEW_COLUMNS = ("id", "channel", "external_order_number", "account_id", "state", "held_from", "version", "body",
                "data", "total", "backordered", "received_at", "updated_at")


def _key_lookup(conn: Connection) -> str:
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    return f"SELECT request_hash, order_id FROM idempotency_keys WHERE scope = {mark} AND key = {mark}"


def _record(row: Any) -> OrderRecord:
    return load_record(row["body"], OrderState(row["state"]), row["version"], row["data"])


def _total(record: OrderRecord) -> str | None:
    total = record.total
    return str(total) if total is not None else None
