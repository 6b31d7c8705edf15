"""Embedded transport: delivery queues in the hub's own database.

The relay publishes by inserting one ``deliveries`` row per subscribed consumer, in the same
transaction that marks the outbox rows published, so an event is never published twice nor lost.
Consumers claim due rows with a lease (several workers can share a PostgreSQL store: claims use
``FOR UPDATE SKIP LOCKED``); a crashed worker's lease simply runs out and the message is delivered
again, where the inbox makes the redelivery harmless. Retries set ``next_attempt_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from ordersync.messaging.transport import Delivery, OutboxMessage
from ordersync.store.db import Database
from ordersync.store.schema import deliveries
from ordersync.store.sql import bulk_insert, driver_time

_DELIVERY_COLUMNS = ("consumer", "message_id", "correlation_id", "seq", "body", "attempts", "next_attempt_at",
                     "history")

#: ``next_attempt_at`` of a fresh delivery: due at once, whatever the consumer's clock says (a fake
#: clock in tests may stand anywhere in time).
IMMEDIATELY = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SqlQueueTransport:
    """Delivery queues in the store. ``lease_seconds`` bounds how long a claimed message stays hidden."""

    publishes_in_transaction = True
    claims_in_transaction = True
    orders_by_correlation = True
    carries_trace_context = False  # a delivery is the outbox row: its context is the envelope's

    def __init__(self, db: Database, *, lease_seconds: float = 15.0) -> None:
        self.db = db
        self.lease = dt.timedelta(seconds=lease_seconds)
        self._subscriptions: dict[str, tuple[frozenset[str] | None, bool]] = {}
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, consumer: str, types: frozenset[str] | None, ordered: bool, batch_size: int = 0) -> None:
        with self._lock:
            self._subscriptions[consumer] = (types, ordered)

    def on_publish(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call ``listener`` after each publish with the consumers that received messages (wakes the
        threads running them without polling delay, and only those)."""
        self._listeners.append(listener)

    def publish(self, messages: list[OutboxMessage], conn: Connection | None) -> None:
        if conn is None:
            raise ValueError("the embedded transport publishes inside the relay's transaction")
        rows = []
        due = driver_time(conn, IMMEDIATELY)
        for consumer, (types, _ordered) in self._subscriptions.items():
            for m in messages:
                if types is None or m.type in types:
                    rows.append((consumer, m.message_id, m.correlation_id, m.seq, m.body, 0, due, "[]"))
        bulk_insert(conn, deliveries, _DELIVERY_COLUMNS, rows)
        receivers = frozenset(row[0] for row in rows)
        if receivers and self._listeners:
            # after the relay's commit: a consumer woken before it would find nothing and go back to sleep
            Database.after_commit(conn, lambda: self._announce(receivers))

    def _announce(self, receivers: frozenset[str]) -> None:
        for listener in self._listeners:
            listener(receivers)

    def _due(self, consumer: str, now: dt.datetime) -> Select[Any]:
        d = deliveries.c
        cond = and_(d.consumer == consumer, d.next_attempt_at <= now, or_(d.lease_until.is_(None), d.lease_until < now))
        _types, ordered = self._subscriptions.get(consumer, (None, False))
        if ordered:
            earlier = aliased(deliveries)
            cond = and_(
                cond,
                or_(
                    d.correlation_id.is_(None),
                    ~exists().where(
                        earlier.c.consumer == d.consumer,
                        earlier.c.correlation_id == d.correlation_id,
                        earlier.c.id < d.id,
                    ),
                ),
            )
        return (
            select(d.id, d.message_id, d.correlation_id, d.seq, d.body, d.attempts, d.history)
            .where(cond)
            .order_by(d.id)
        )

    def has_due(self, consumer: str, now: dt.datetime) -> bool:
        with self.db.read() as conn:
            return conn.execute(self._due(consumer, now).limit(1)).first() is not None

    def claim(self, conn: Connection, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        query = self._due(consumer, now).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_delivery(consumer, r) for r in conn.execute(query).mappings().all()]

    def fetch(self, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        if not self.db.is_sqlite:
            with self.db.write() as conn:  # FOR UPDATE SKIP LOCKED: concurrent workers take disjoint rows
                batch = self.claim(conn, consumer, limit, now)
                if batch:
                    self._lease(conn, batch, now)
            return batch
        # SQLite: find candidates without the write lock (the query is the slow part), then lease only
        # those still unleased in one short UPDATE; a row another worker leased meanwhile is skipped.
        with self.db.read() as conn:
            candidates = self.claim(conn, consumer, limit, now)
        if not candidates:
            return []
        with self.db.write() as conn:
            leased = set(self._lease(conn, candidates, now))
        return [d for d in candidates if d.token in leased]

    def _lease(self, conn: Connection, batch: list[Delivery], now: dt.datetime) -> list[int]:
        d = deliveries.c
        rows = conn.execute(
            update(deliveries)
            .where(d.id.in_([x.token for x in batch]), or_(d.lease_until.is_(None), d.lease_until < now))
            .values(lease_until=now + self.lease)
            .returning(d.id)
        )
        return [int(r[0]) for r in rows]

    def extend(self, batch: list[Delivery], now: dt.datetime) -> None:
        """Renew the lease of deliveries still being worked on (long I/O batches)."""
        if batch:
            with self.db.write() as conn:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([x.token for x in batch]))
                    .values(lease_until=now + self.lease)
                )

    def release_leases(self) -> int:
        """Make every leased delivery claimable now. For a worker that knows it is the only one (the
        embedded SQLite default) after a crash: no need to wait for the dead process's leases to run
        out. Safe even if another worker is alive: the inbox absorbs the double delivery."""
        with self.db.write() as conn:
            result = conn.execute(
                update(deliveries).where(deliveries.c.lease_until.is_not(None)).values(lease_until=None)
            )
            return int(result.rowcount or 0)

    def settle(self, conn: Connection, batch: list[Delivery]) -> None:
        if batch:
            conn.execute(delete(deliveries).where(deliveries.c.id.in_([x.token for x in batch])))

    def after_commit(self, batch: list[Delivery]) -> None:
        return None

    def retry_later(self, delivery: Delivery, at: dt.datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery.token)
                .values(
                    attempts=delivery.attempts,
                    history=json.dumps(delivery.history),
                    next_attempt_at=at,
                    lease_until=None,
                )
            )

    def defer(self, delivery: Delivery, seconds: float) -> None:
        with self.db.write() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery.token).values(
                next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds), lease_until=None))

    def caught_up(self, consumer: str) -> bool:
        return self.pending(consumer) == 0

    def redeliver(
        self,
        conn: Connection,
        consumer: str,
        body: str,
        message_id: str | None,
        correlation_id: str | None,
        seq: int | None,
        now: dt.datetime,
    ) -> None:
        conn.execute(
            deliveries.insert().values(
                consumer=consumer,
                message_id=message_id or "",
                correlation_id=correlation_id,
                seq=seq,
                body=body,
                attempts=0,
                next_attempt_at=now,
                lease_until=None,
                history="[]",
            )
        )
        if self._listeners:
            Database.after_commit(conn, lambda: self._announce(frozenset((consumer,))))

    def pending(self, consumer: str | None = None) -> int:
        query = select(func.count()).select_from(deliveries)
        if consumer is not None:
            query = query.where(deliveries.c.consumer == consumer)
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def next_due(self, consumer: str) -> dt.datetime | None:
        """When the earliest waiting delivery of ``consumer`` becomes due (for drain loops)."""
        with self.db.read() as conn:
            value: dt.datetime | None = conn.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(deliveries.c.consumer == consumer)
            ).scalar_one()
            return value




def _delivery(consumer: str, r: Any) -> Delivery:
    return Delivery(
        consumer=consumer,
        body=r["body"],
        message_id=r["message_id"],
        correlation_id=r["correlation_id"],
        seq=r["seq"],
        attempts=r["attempts"],
        history=json.loads(r["history"]) if r["history"] != "[]" else [],
        token=r["id"],
    )
