"""The transport port: how published messages travel from the outbox relay to consumers.

Two implementations: :mod:`ordersync.messaging.sqlqueue` (embedded, in-process, on the store) and
:mod:`ordersync.messaging.nats` (NATS JetStream, for several processes). Handlers never see the
transport; the consumer runner does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True)
class OutboxMessage:
    """A row of the outbox as the relay hands it to a transport."""

    seq: int
    message_id: str
    type: str
    correlation_id: str | None
    body: str
    #: the W3C trace context of the relay's publish span (tracing on; a broker sends it as headers)
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass
class Delivery:
    """One delivery of one message to one consumer. ``body`` is the raw text as it travelled."""

    consumer: str
    body: str
    message_id: str | None
    correlation_id: str | None
    seq: int | None
    attempts: int
    history: list[dict[str, Any]] = field(default_factory=list)
    token: Any = None
    #: how many times the transport has handed this message out (a broker's delivery count)
    deliveries: int = 1
    #: the trace context the transport carried beside the body (NATS headers), if any
    traceparent: str | None = None
    tracestate: str | None = None


class Transport(Protocol):
    """Moves messages from the relay to consumers and keeps their delivery bookkeeping."""

    #: True when :meth:`publish` writes in the relay's own database transaction (embedded transport).
    publishes_in_transaction: bool
    #: True when deliveries can be claimed inside the consumer's own transaction (:meth:`claim`).
    claims_in_transaction: bool
    #: True when an ordered consumer never gets a message of a correlation id while an earlier one of
    #: that id is undelivered or unsettled; when False the consumer runner orders by outbox sequence.
    orders_by_correlation: bool
    #: True when a publish carries each message's trace context apart from its body (NATS headers), so
    #: that the consumer continues the relay's publish span; otherwise it continues the envelope's
    carries_trace_context: bool

    def subscribe(self, consumer: str, types: frozenset[str] | None, ordered: bool, batch_size: int = 0) -> None:
        """Declare a consumer, the message types it takes (None = every type) and how many deliveries
        it takes at a time (a broker transport prefetches that many)."""
        ...

    def publish(self, messages: list[OutboxMessage], conn: Connection | None) -> None:
        """Publish messages, in outbox order. Redelivery of the same message id must be harmless."""
        ...

    def fetch(self, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        """Claim up to ``limit`` deliveries that are due for ``consumer``."""
        ...

    def claim(self, conn: Connection, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        """Claim due deliveries inside ``conn``'s transaction: they stay claimed until it ends (only
        when :attr:`claims_in_transaction`)."""
        ...

    def has_due(self, consumer: str, now: dt.datetime) -> bool:
        """Cheap check whether anything is due for ``consumer``."""
        ...

    def extend(self, deliveries: list[Delivery], now: dt.datetime) -> None:
        """Keep claimed deliveries hidden from other workers a while longer (work in progress)."""
        ...

    def release_leases(self) -> int:
        """Make every claimed delivery claimable again (a lone worker recovering from a crash)."""
        ...

    def settle(self, conn: Connection, deliveries: list[Delivery]) -> None:
        """Mark deliveries done inside the transaction that recorded their effects."""
        ...

    def after_commit(self, deliveries: list[Delivery]) -> None:
        """Called once the effects are committed (a broker acks here)."""
        ...

    def retry_later(self, delivery: Delivery, at: dt.datetime) -> None:
        """Schedule another attempt (``delivery.attempts`` and ``history`` are already updated)."""
        ...

    def defer(self, delivery: Delivery, seconds: float) -> None:
        """Hand a delivery back unprocessed, to come again in ``seconds`` (no attempt is used up)."""
        ...

    def caught_up(self, consumer: str) -> bool:
        """True when nothing waits at the transport for ``consumer`` (gap repair's test for "lost, not
        merely queued")."""
        ...

    def redeliver(self, conn: Connection, consumer: str, body: str, message_id: str | None,
                  correlation_id: str | None, seq: int | None, now: dt.datetime) -> None:
        """Queue a message again for one consumer (dead-letter replay, gap repair)."""
        ...

    def pending(self, consumer: str | None = None) -> int:
        """How many deliveries wait (due or not); for drain loops and health."""
        ...
