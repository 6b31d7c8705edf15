"""The outbox relay: publishes committed outbox rows, in order, through the transport.

The outbox is the log of record. A row is marked published only after the transport took it; if the
process dies in between, the row is published again and the consumers' inboxes absorb the duplicate.
With the embedded transport both steps share one transaction, so even that duplicate cannot happen.

Tracing on, each message is published in a ``publish <type>`` span continuing the trace its envelope
names, and the transport carries that span's context (NATS: as headers), so a consumer's span follows it.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, Select, func, select, text, update

from ordersync.domain.clock import Clock
from ordersync.messaging.transport import OutboxMessage, Transport
from ordersync.store.db import Database
from ordersync.store.schema import outbox
from ordersync.telemetry import tracing


class Relay:
    def __init__(self, db: Database, transport: Transport, clock: Clock, *, batch_size: int = 1000) -> None:
        self.db = db
        self.transport = transport
        self.clock = clock
        self.batch_size = batch_size

    def pump(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        with self.db.read() as conn:  # cheap check first: an idle relay never takes the write lock
            if conn.execute(self._unpublished().limit(1)).first() is None:
                return 0
        in_tx = self.transport.publishes_in_transaction
        if in_tx or not self.db.is_sqlite:
            # One transaction from loading to marking. The embedded transport publishes in it (exactly
            # once). A broker on a shared store: the relay lock is held until the rows are marked, so
            # two workers' relays never publish the same rows; a crash between the publish and the
            # commit publishes the batch again, deduplicated by message id, then by the inboxes.
            with self.db.write() as conn:
                messages = self._load(conn)
                if messages:
                    self._publish(messages, conn if in_tx else None)
                    self._mark(conn, messages)
            return len(messages)
        with self.db.read() as conn:
            messages = self._load(conn)
        if messages:
            self._publish(messages, None)
            with self.db.write() as conn:
                self._mark(conn, messages)
        return len(messages)

    def _publish(self, messages: list[OutboxMessage], conn: Connection | None) -> None:
        if not tracing.enabled():
            self.transport.publish(messages, conn)
            return
        spans = [_publish_span(m) for m in messages]
        traced = [replace(m, traceparent=c[0], tracestate=c[1])
                  for m, c in zip(messages, (tracing.context_of(s) for s in spans), strict=True)]
        try:
            self.transport.publish(traced, conn)
        except Exception as exc:
            for span in spans:
                if span is not None:
                    span.record_exception(exc)
                    span.set_status(tracing.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                    span.end()
            raise
        for span in spans:
            if span is not None:
                span.end()

    def backlog(self) -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
                .scalar_one()
            )

    def _unpublished(self) -> Select[tuple[int]]:
        return select(outbox.c.seq).where(outbox.c.published_at.is_(None)).order_by(outbox.c.seq)

    def _load(self, conn: Connection) -> list[OutboxMessage]:
        query = (
            select(outbox.c.seq, outbox.c.message_id, outbox.c.type, outbox.c.correlation_id, outbox.c.body)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(self.batch_size)
        )
        if conn.dialect.name == "postgresql" and not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(7243001)")).scalar_one():
            # One relay at a time per store, so publishing stays in outbox order across worker
            # processes. Another worker's relay has the turn: this one skips the round rather than
            # wait, so its consumers keep working meanwhile.
            return []
        return [OutboxMessage(*row) for row in conn.execute(query)]

    def _mark(self, conn: Connection, messages: list[OutboxMessage]) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.seq.in_([m.seq for m in messages]))
            .values(published_at=self.clock.now())
        )


def _publish_span(m: OutboxMessage) -> tracing.Span | None:
    """The relay's span for one message, in the trace its envelope carries."""
    parent, state = tracing.context_in(m.body)
    return tracing.start_span(f"publish {m.type}", parent=parent, state=state, kind=tracing.SpanKind.PRODUCER,
                              attributes={tracing.MESSAGE_TYPE: m.type, tracing.MESSAGE_ID: m.message_id,
                                          tracing.ORDER_ID: m.correlation_id, "ordersync.outbox.seq": m.seq})
