"""The consumer runner: decode, deduplicate (inbox), handle, settle; retry with backoff; dead-letter.

For every delivery the runner guarantees one of three outcomes, each committed atomically:
- the handler's effects + the inbox record + the settlement (processed exactly once), or
- a scheduled retry (attempt count, history and next attempt time), or
- a dead letter with reason, error, attempt history and the verbatim body.

A message that cannot be decoded (bad JSON, unknown type, schema violation) goes to the dead letters at
once: retrying cannot help. Handler errors are retried unless they say they are not retryable (domain
and message errors, or ``retryable = False``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select

from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.domain.errors import DomainError, MessageError
from ordersync.domain.events import Message
from ordersync.messaging.registry import DecodeError, HandlerContext, Registry, Subscription, decode
from ordersync.messaging.transport import Delivery, Transport
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, inbox
from ordersync.store.sql import insert_ignore
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.consumer")

DeadLetterHook = Callable[[UnitOfWork, dict[str, Any]], None]


class _AlreadyProcessed(Exception):
    """Raised inside an I/O handler's transaction when the inbox shows the message was processed."""


class ConsumerRunner:
    """Runs the subscriptions of a :class:`Registry` against a :class:`Transport`."""

    def __init__(
        self,
        db: Database,
        transport: Transport,
        registry: Registry,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        lease_seconds: float = 15.0,
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.transport = transport
        self.registry = registry
        self.clock = clock
        self.rng = rng or random.Random()
        self.dead_letter_hooks: list[DeadLetterHook] = []
        for sub in registry:
            transport.subscribe(sub.consumer, sub.types, sub.ordered)

    def run_once(self, consumer: str) -> int:
        """Handle one batch of due deliveries for ``consumer``; returns how many were handled."""
        sub = self.registry[consumer]
        batch = self.transport.fetch(consumer, sub.batch_size, self.clock.now())
        if not batch:
            return 0
        items: list[tuple[Delivery, Envelope, Message]] = []
        for delivery in batch:
            try:
                envelope, message = decode(delivery.body)
            except DecodeError as exc:
                self._fail(sub, delivery, exc, reason=exc.reason)
                continue
            items.append((delivery, envelope, message))
        if sub.mode == "tx":
            if len(items) > 1:
                try:
                    self._tx_batch(sub, items)
                    return len(batch)
                except Exception:  # one handler failed: redo one by one to isolate it
                    log.debug("batch of %s failed, isolating", consumer, exc_info=True)
            for item in items:
                self._tx_single(sub, *item)
        else:
            claimed_at = self.clock.monotonic()
            for i, item in enumerate(items):
                if self.clock.monotonic() - claimed_at > self.lease_seconds / 3:
                    self.transport.extend([d for d, _, _ in items[i:]], self.clock.now())
                    claimed_at = self.clock.monotonic()
                self._io_single(sub, *item)
        return len(batch)

    # -- processing -------------------------------------------------------------------------------

    def _tx_batch(self, sub: Subscription, items: list[tuple[Delivery, Envelope, Message]]) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            ids = list({env.message_id for _, env, _ in items})
            seen = set(
                conn.execute(
                    select(inbox.c.message_id).where(inbox.c.consumer == sub.consumer, inbox.c.message_id.in_(ids))
                ).scalars()
            )
            uow = UnitOfWork(conn, self.clock)
            fresh = []
            for delivery, envelope, message in items:
                if envelope.message_id in seen:
                    continue
                seen.add(envelope.message_id)
                uow.causation_id = envelope.message_id
                sub.handler(message, uow)
                fresh.append(
                    {"consumer": sub.consumer, "message_id": envelope.message_id, "seq": delivery.seq,
                     "processed_at": now}
                )
            if fresh:
                conn.execute(inbox.insert(), fresh)
            self.transport.settle(conn, [d for d, _, _ in items])
        self.transport.after_commit([d for d, _, _ in items])

    def _tx_single(self, sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> None:
        try:
            with self._effects(sub, delivery, envelope) as uow:
                sub.handler(message, uow)
        except _AlreadyProcessed:
            self._settle_only(delivery)
        except Exception as exc:
            self._fail(sub, delivery, exc)
        else:
            self.transport.after_commit([delivery])

    def _io_single(self, sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> None:
        if self._processed(sub.consumer, envelope.message_id):
            self._settle_only(delivery)
            return
        ctx = HandlerContext(envelope, self.clock, lambda: self._effects(sub, delivery, envelope))
        try:
            sub.handler(message, ctx)
            if not ctx.committed:
                with ctx.transaction():
                    pass
        except _AlreadyProcessed:
            self._settle_only(delivery)
        except Exception as exc:
            self._fail(sub, delivery, exc)
        else:
            self.transport.after_commit([delivery])

    @contextlib.contextmanager
    def _effects(self, sub: Subscription, delivery: Delivery, envelope: Envelope) -> Iterator[UnitOfWork]:
        """One transaction: inbox record first (so a duplicate does nothing), effects, settlement."""
        with self.db.write() as conn:
            fresh = insert_ignore(
                conn,
                inbox,
                {"consumer": sub.consumer, "message_id": envelope.message_id, "seq": delivery.seq,
                 "processed_at": self.clock.now()},
                conflict=("consumer", "message_id"),
            )
            if not fresh:
                raise _AlreadyProcessed(envelope.message_id)
            yield UnitOfWork(conn, self.clock, causation_id=envelope.message_id)
            self.transport.settle(conn, [delivery])

    def _processed(self, consumer: str, message_id: str) -> bool:
        with self.db.read() as conn:
            row = conn.execute(
                select(inbox.c.message_id).where(inbox.c.consumer == consumer, inbox.c.message_id == message_id)
            ).first()
            return row is not None

    def _settle_only(self, delivery: Delivery) -> None:
        with self.db.write() as conn:
            self.transport.settle(conn, [delivery])
        self.transport.after_commit([delivery])

    # -- failure ----------------------------------------------------------------------------------

    def _fail(self, sub: Subscription, delivery: Delivery, exc: BaseException, reason: str | None = None) -> None:
        now = self.clock.now()
        delivery.attempts += 1
        delivery.history.append(
            {
                "attempt": delivery.attempts,
                "at": now.isoformat(),
                "error": f"{type(exc).__name__}: {exc}",
                "where": _where(exc),
            }
        )
        final = reason is not None or not _retryable(exc) or sub.retry.exhausted(delivery.attempts)
        if not final:
            delay = sub.retry.delay(delivery.attempts, self.rng)
            log.warning(
                "%s: attempt %d of %s failed, retrying in %.1fs: %s",
                sub.consumer, delivery.attempts, delivery.message_id, delay, exc,
                extra={"correlation_id": delivery.correlation_id},
            )
            self.transport.retry_later(delivery, now + _seconds(delay))
            return
        if reason is None:
            reason = "rejected" if isinstance(exc, (DomainError, MessageError)) else "exhausted"
            if not _retryable(exc) and reason == "exhausted":
                reason = "not_retryable"
        self._dead(sub, delivery, reason, f"{type(exc).__name__}: {exc}")

    def _dead(self, sub: Subscription, delivery: Delivery, reason: str, error: str) -> None:
        envelope_type, correlation_id = _peek(delivery.body)
        row = {
            "id": new_id(),
            "consumer": sub.consumer,
            "message_id": delivery.message_id,
            "type": envelope_type,
            "correlation_id": delivery.correlation_id or correlation_id,
            "seq": delivery.seq,
            "body": delivery.body,
            "reason": reason,
            "error": error,
            "attempts": delivery.attempts,
            "history": _json(delivery.history),
            "dead_at": self.clock.now(),
            "status": "dead",
            "replay_count": 0,
            "replayed_at": None,
        }
        with self.db.write() as conn:
            conn.execute(dead_letters.insert().values(**row))
            self.transport.settle(conn, [delivery])
            uow = UnitOfWork(conn, self.clock, causation_id=delivery.message_id)
            for hook in self.dead_letter_hooks:
                hook(uow, row)
        self.transport.after_commit([delivery])
        log.error(
            "%s: message %s (%s) dead-lettered as %s after %d attempt(s): %s",
            sub.consumer, delivery.message_id, envelope_type, reason, delivery.attempts, error,
            extra={"correlation_id": row["correlation_id"]},
        )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (DomainError, MessageError)):
        return False
    return bool(getattr(exc, "retryable", True))


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def _peek(body: str) -> tuple[str | None, str | None]:
    """Best-effort type and correlation id of a body that may be malformed."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    t, c = data.get("type"), data.get("correlation_id")
    return (str(t)[:120] if t is not None else None, str(c)[:64] if c is not None else None)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)
