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
        spans, traced = _publish_spans(messages, headers=getattr(self.transport, "carries_trace_context", False))
        try:
            self.transport.publish(traced, conn)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(tracing.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                span.end()
            raise
        for span in spans:
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


def _publish_spans(messages: list[OutboxMessage], *, headers: bool = True
                   ) -> tuple[list[tracing.Span], list[OutboxMessage]]:
    """One ``publish`` span per trace context among ``messages`` (the span that wrote them: an order's
    request, a consumer's handling), a child of it; with ``headers`` (a transport that carries a context
    apart from the body) each message is sent with its span's context. A span per message would cost more
    than publishing it (bench/bus.py)."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for i, m in enumerate(messages):
        groups.setdefault(tracing.context_in(m.body), []).append(i)
    spans: list[tracing.Span] = []
    traced = list(messages)
    for (parent, state), members in groups.items():
        types = sorted({messages[i].type for i in members})
        orders = sorted({c for i in members if (c := messages[i].correlation_id) is not None})
        span = tracing.start_span(
            f"publish {types[0]}" if len(types) == 1 else f"publish {len(members)} messages", parent=parent,
            state=state, kind=tracing.SpanKind.PRODUCER,
            attributes={tracing.MESSAGE_TYPES: types, tracing.ORDER_ID: orders[0] if len(orders) == 1 else None,
                        "messaging.batch.message_count": len(members)})
        if span is None:
            continue
        spans.append(span)
        if not headers:
            continue
        context = tracing.context_of(span)
        for i in members:
            traced[i] = replace(messages[i], traceparent=context[0], tracestate=context[1])
    return spans, traced
