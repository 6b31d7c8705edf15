"""Unit of work: one database transaction in which state changes and the events they cause are
written together (transactional outbox). Either both are committed or neither.

:class:`UnitOfWork` and :class:`SqlStore` implement the store port (:mod:`ordersync.ports.store`) the
flows speak to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property

from sqlalchemy import Connection

from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.domain.events import Message
from ordersync.domain.order import OrderRecord
from ordersync.store.cases import CaseRepository
from ordersync.store.db import Database
from ordersync.store.documents import (
    CounterRepository,
    DisputeRepository,
    DocumentRepository,
    FulfillmentRepository,
    ReturnRepository,
    WmsRepository,
)
from ordersync.store.orders import OrderRepository
from ordersync.store.schema import outbox
from ordersync.store.sql import bulk_insert, driver_time
from ordersync.telemetry.tracing import TraceContexts


class UnitOfWork:
    """Repositories bound to one transaction, plus the outbox writer.

    ``causation_id`` is set by the consumer runner to the message being handled, so every event written
    here names its cause without handlers having to pass it along.
    """

    def __init__(self, conn: Connection, clock: Clock, causation_id: str | None = None) -> None:
        self.conn = conn
        self.clock = clock
        self.causation_id = causation_id
        self.orders = OrderRepository(conn)
        self.emitted: list[Envelope] = []
        self._pending: list[Envelope] = []
        #: the trace each order's events continue when several orders share this transaction
        self.traces = TraceContexts()

    @cached_property
    def cases(self) -> CaseRepository:
        return CaseRepository(self.conn)

    @cached_property
    def documents(self) -> DocumentRepository:
        return DocumentRepository(self.conn)

    @cached_property
    def fulfillment(self) -> FulfillmentRepository:
        return FulfillmentRepository(self.conn)

    @cached_property
    def returns(self) -> ReturnRepository:
        return ReturnRepository(self.conn)

    @cached_property
    def disputes(self) -> DisputeRepository:
        return DisputeRepository(self.conn)

    @cached_property
    def wms(self) -> WmsRepository:
        return WmsRepository(self.conn)

    @cached_property
    def counters(self) -> CounterRepository:
        return CounterRepository(self.conn)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def envelope(self, message: Message, correlation_id: str | None) -> Envelope:
        # model_construct: every field comes from validated values, so skip re-validation (hot path)
        traceparent, tracestate = self.traces.for_envelope(correlation_id)
        return Envelope.model_construct(
            message_id=new_id(),
            type=message.TYPE,
            schema_version=message.VERSION,
            correlation_id=correlation_id,
            causation_id=self.causation_id,
            occurred_at=self.clock.now(),
            payload=message.payload(),
            traceparent=traceparent,
            tracestate=tracestate,
        )

    def emit(self, message: Message, correlation_id: str | None) -> Envelope:
        """Add ``message`` to the outbox of this transaction and return its envelope.

        Rows are buffered and written by :meth:`flush` (one multi-row insert), which every owner of a
        unit of work calls before committing.
        """
        envelope = self.envelope(message, correlation_id)
        self.write_envelopes([envelope])
        return envelope

    def write_envelopes(self, envelopes: list[Envelope]) -> None:
        self._pending.extend(envelopes)
        self.emitted.extend(envelopes)

    def flush(self) -> None:
        """Write buffered outbox rows, in emission order. Call before commit."""
        if not self._pending:
            return
        rows = [
            (e.message_id, e.type, e.correlation_id, driver_time(self.conn, e.occurred_at), e.to_json())
            for e in self._pending
        ]
        self._pending = []
        bulk_insert(self.conn, outbox, ("message_id", "type", "correlation_id", "occurred_at", "body"), rows)

    def add_order(self, record: OrderRecord) -> tuple[OrderRecord, bool]:
        """Store a new order (or find the existing one with the same business key) and its events."""
        stored, created = self.orders.add_if_absent(record, self.now())
        if created:
            self._flush_events(record)
        return stored, created

    def add_new_orders(self, records: list[OrderRecord]) -> bool:
        """Store new orders and their events in one statement each; False (the caller rolls back) if one's
        business key exists."""
        if not self.orders.add_all_new(records, self.now()):
            return False
        for record in records:
            self._flush_events(record)
        return True

    def save_order(self, record: OrderRecord) -> None:
        """Persist the order's state, the cases its decisions opened or changed, and its pending events in
        this transaction."""
        self.orders.save(record, self.now())
        for case in record.new_cases:
            self.cases.add(case)
        for case in record.changed_cases:
            self.cases.save(case)
        record.new_cases.clear()
        record.changed_cases.clear()
        self._flush_events(record)

    def _flush_events(self, record: OrderRecord) -> None:
        self.write_envelopes([self.envelope(e, correlation_id=record.id) for e in record.pending_events])
        record.pending_events.clear()


@contextmanager
def unit_of_work(db: Database, clock: Clock, causation_id: str | None = None) -> Iterator[UnitOfWork]:
    with db.write() as conn:
        uow = UnitOfWork(conn, clock, causation_id)
        yield uow
        uow.flush()
    if uow.emitted:
        db.events_committed()


class SqlStore:
    """The store port over a :class:`Database`: read-only repositories, and write transactions."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        with self.db.read() as conn:
            yield UnitOfWork(conn, self.clock)

    def transaction(self, causation_id: str | None = None) -> AbstractContextManager[UnitOfWork]:
        return unit_of_work(self.db, self.clock, causation_id)
