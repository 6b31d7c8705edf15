"""The consumer runner: decode, deduplicate (inbox), handle, settle; retry with backoff; dead-letter.

For every delivery the runner guarantees one of three outcomes, each committed atomically:
- the handler's effects + the inbox record + the settlement (processed exactly once), or
- a scheduled retry (attempt count, history and next attempt time), or
- a dead letter with reason, error, attempt history and the verbatim body.

One module (about 430 lines) because the three outcomes must be written by the same code paths for the
batched and the single, the tx and the I/O deliveries; split, the paths would drift.

A message that cannot be decoded (bad JSON, unknown type, schema violation) goes to the dead letters at
once: retrying cannot help. Handler errors are retried unless they say they are not retryable (domain
and message errors, or ``retryable = False``).

Every message is handled inside :func:`_handling`: a span continuing the message's trace (tracing on;
the transport's headers, else the envelope's context), and log lines naming the consumer and the order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, select

from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.domain.errors import DomainError, MessageError, Unavailable
from ordersync.domain.events import Message
from ordersync.messaging.gaps import first_unprocessed, since_seqs
from ordersync.messaging.registry import DecodeError, HandlerContext, Registry, Subscription, decode
from ordersync.messaging.transport import Delivery, Transport
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, inbox
from ordersync.store.sql import bulk_insert, driver_time, insert_ignore
from ordersync.store.uow import UnitOfWork
from ordersync.telemetry import tracing
from ordersync.telemetry.logs import log_fields

log = logging.getLogger("ordersync.consumer")

#: attempt history entries kept per delivery (long outages add one "wait" entry per retry)
_HISTORY_KEPT = 30

DeadLetterHook = Callable[[UnitOfWork, dict[str, Any]], None]


class _AlreadyProcessed(Exception):
    """Raised inside an I/O handler's transaction when the inbox shows the message was processed."""


class _BatchFailed(Exception):
    """A handler failed inside a batch; the batch's transaction was rolled back."""

    def __init__(self, items: list[tuple[Delivery, Envelope, Message]], error: Exception) -> None:
        super().__init__(str(error))
        self.items = items
        self.error = error


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
        self._idle: dict[str, bool] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._since: dict[str, int] | None = None
        for sub in registry:
            transport.subscribe(sub.consumer, sub.types, sub.ordered, sub.batch_size)

    def run_once(self, consumer: str) -> int:
        """Handle one batch of due deliveries for ``consumer``; returns how many were handled."""
        sub = self.registry[consumer]
        if sub.mode == "tx" and self.transport.claims_in_transaction:
            try:
                return self._tx_claim_batch(sub)
            except _BatchFailed as failed:
                if len(failed.items) == 1:  # nothing to isolate: that was the attempt
                    self._fail(sub, failed.items[0][0], failed.error)
                    return 1
                log.debug("batch of %s failed, isolating: %s", consumer, failed.error)
        batch = self.transport.fetch(consumer, sub.batch_size, self.clock.now())
        if not batch:
            return 0
        runnable = batch
        if sub.ordered and not self.transport.orders_by_correlation:
            runnable = self._in_order(sub, batch)
        items: list[tuple[Delivery, Envelope, Message]] = []
        for delivery in runnable:
            try:
                envelope, message = decode(delivery.body)
            except DecodeError as exc:
                self._fail(sub, delivery, exc, reason=exc.reason)
                continue
            items.append((delivery, envelope, message))
        if sub.mode == "tx":
            if len(items) > 1 and not self.transport.claims_in_transaction and self._tx_fetched_batch(sub, items):
                return len(batch)
            held: set[str] = set()  # orders whose earlier event just failed: their later ones wait
            for item in items:
                cid = item[0].correlation_id
                if sub.ordered and cid is not None and cid in held:
                    self.transport.defer(item[0], _defer_seconds(item[0]))
                elif not self._tx_single(sub, *item) and cid is not None:
                    held.add(cid)
        else:
            claimed_at = self.clock.monotonic()
            step = max(1, sub.concurrency)
            for i in range(0, len(items), step):
                if self.clock.monotonic() - claimed_at > self.lease_seconds / 3:
                    self.transport.extend([d for d, _, _ in items[i:]], self.clock.now())
                    claimed_at = self.clock.monotonic()
                wave = items[i : i + step]
                if len(wave) == 1:
                    self._io_single(sub, *wave[0])
                else:
                    list(self._pool(sub).map(lambda item: self._io_single(sub, *item), wave))
        return len(batch)

    def _in_order(self, sub: Subscription, batch: list[Delivery]) -> list[Delivery]:
        """For a transport that does not order deliveries itself: keep, in outbox order, the deliveries
        that are next for their order (correlation id); hand the others back for a little later. The
        outbox decides what "next" is: an earlier event of the same order of this consumer's types that
        it has neither processed nor dead-lettered holds the later ones back, even when the broker lost
        the earlier one (gap repair republishes it)."""
        keyed = [d for d in batch if d.correlation_id is not None and d.seq is not None]
        if not keyed:
            return batch
        if self._since is None:
            self._since = since_seqs(self.db)
        with self.db.read() as conn:
            waiting = first_unprocessed(conn, sub, (d.correlation_id for d in keyed if d.correlation_id),
                                        self._since.get(sub.consumer, 0))
        chain = sub.mode == "tx" or sub.concurrency <= 1  # one after another: a run of one order may go
        runnable: list[Delivery] = []
        position: dict[str, int] = {}
        for d in sorted(batch, key=lambda x: x.seq if x.seq is not None else 0):
            cid = d.correlation_id
            seqs = waiting.get(cid, []) if cid is not None else []
            if cid is None or d.seq is None or d.seq not in seqs:
                runnable.append(d)  # unordered, or processed already (the inbox settles the duplicate)
                continue
            i = position.get(cid, 0)
            if i < len(seqs) and seqs[i] == d.seq and (chain or i == 0):
                runnable.append(d)
                position[cid] = i + 1
            else:
                self.transport.defer(d, _defer_seconds(d))
        return runnable

    def _tx_fetched_batch(self, sub: Subscription, items: list[tuple[Delivery, Envelope, Message]]) -> bool:
        """Deliveries fetched outside a transaction (a broker): handle them all in ONE transaction, then
        ack. False when it failed and rolled back: the caller takes them one by one."""
        now = self.clock.now()
        deliveries = [d for d, _, _ in items]
        try:
            with self.db.write() as conn:
                self._handle_items(conn, sub, items, now)
                self.transport.settle(conn, deliveries)
        except Exception as exc:
            log.debug("batch of %s failed, isolating: %s", sub.consumer, exc)
            return False
        self.transport.after_commit(deliveries)
        return True

    def _pool(self, sub: Subscription) -> ThreadPoolExecutor:
        pool = self._pools.get(sub.consumer)
        if pool is None:
            pool = self._pools[sub.consumer] = ThreadPoolExecutor(sub.concurrency, thread_name_prefix=sub.consumer)
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    # -- processing -------------------------------------------------------------------------------

    def _tx_claim_batch(self, sub: Subscription) -> int:
        """Fast path: claim, decode, deduplicate, handle, record and settle a whole batch in ONE
        transaction. Any handler error rolls it all back; the caller then isolates the culprit."""
        now = self.clock.now()
        if self._idle.get(sub.consumer) and not self.transport.has_due(sub.consumer, now):
            return 0
        with self.db.write() as conn:
            batch = self.transport.claim(conn, sub.consumer, sub.batch_size, now)
            self._idle[sub.consumer] = not batch
            if not batch:
                return 0
            items: list[tuple[Delivery, Envelope, Message]] = []
            for delivery in batch:
                try:
                    envelope, message = decode(delivery.body)
                except DecodeError as exc:
                    self._note_failure(delivery, exc, now)
                    self._insert_dead(conn, sub, delivery, exc.reason, str(exc))
                    continue
                items.append((delivery, envelope, message))
            try:
                self._handle_items(conn, sub, items, now)
            except Exception as exc:
                raise _BatchFailed(items, exc) from exc
            self.transport.settle(conn, batch)
        self.transport.after_commit(batch)
        return len(batch)

    def _handle_items(self, conn: Connection, sub: Subscription, items: list[tuple[Delivery, Envelope, Message]],
                      now: dt.datetime) -> None:
        if not items:
            return
        ids = list({env.message_id for _, env, _ in items})
        seen = set(
            conn.execute(
                select(inbox.c.message_id).where(inbox.c.consumer == sub.consumer, inbox.c.message_id.in_(ids))
            ).scalars()
        )
        uow = UnitOfWork(conn, self.clock)
        processed_at = driver_time(conn, now)
        fresh: list[tuple[Any, ...]] = []
        messages = []
        traced: list[tuple[Delivery, Envelope]] = []
        for delivery, envelope, message in items:
            if envelope.message_id in seen:
                continue
            seen.add(envelope.message_id)
            if sub.batched:
                messages.append(message)
                traced.append((delivery, envelope))
            else:
                uow.causation_id = envelope.message_id
                with _handling(sub, delivery, envelope, message):
                    sub.handler(message, uow)
            fresh.append((sub.consumer, envelope.message_id, delivery.seq, processed_at))
        spans = _batch_spans(sub, traced, uow) if traced and tracing.enabled() else []
        try:
            if messages:
                with log_fields(consumer=sub.consumer):
                    sub.handler(messages, uow)
        finally:
            for span in spans:
                span.end()
        uow.flush()
        bulk_insert(conn, inbox, ("consumer", "message_id", "seq", "processed_at"), fresh)

    def _tx_single(self, sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> bool:
        """Handle one delivery; False when it failed (retry scheduled or dead-lettered)."""
        try:
            with _handling(sub, delivery, envelope, message), self._effects(sub, delivery, envelope) as uow:
                sub.handler([message] if sub.batched else message, uow)
        except _AlreadyProcessed:
            self._settle_only(delivery)
        except Exception as exc:
            self._fail(sub, delivery, exc)
            return False
        else:
            self.transport.after_commit([delivery])
        return True

    def _io_single(self, sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> None:
        if self._processed(sub.consumer, envelope.message_id):
            self._settle_only(delivery)
            return
        ctx = HandlerContext(envelope, self.clock, lambda: self._effects(sub, delivery, envelope))
        try:
            with _handling(sub, delivery, envelope, message):
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
            uow = UnitOfWork(conn, self.clock, causation_id=envelope.message_id)
            yield uow
            uow.flush()
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

    def _note_failure(self, delivery: Delivery, exc: BaseException, now: dt.datetime) -> None:
        delivery.attempts += 1
        delivery.history.append(
            {
                "attempt": delivery.attempts,
                "at": now.isoformat(),
                "error": f"{type(exc).__name__}: {exc}",
                "where": _where(exc),
            }
        )

    def _fail(self, sub: Subscription, delivery: Delivery, exc: BaseException, reason: str | None = None) -> None:
        now = self.clock.now()
        if reason is None and isinstance(exc, Unavailable):
            self._wait(sub, delivery, exc, now)
            return
        self._note_failure(delivery, exc, now)
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
            reason = "rejected" if isinstance(exc, (DomainError, MessageError)) and not _retryable(exc) else "exhausted"
            if not _retryable(exc) and reason == "exhausted":
                reason = "not_retryable"
        with self.db.write() as conn:
            self._insert_dead(conn, sub, delivery, reason, f"{type(exc).__name__}: {exc}")
            self.transport.settle(conn, [delivery])
        self.transport.after_commit([delivery])

    def _wait(self, sub: Subscription, delivery: Delivery, exc: Unavailable, now: dt.datetime) -> None:
        """A remote system is down or its circuit is open: try again later without using up an attempt,
        so that a long outage parks nothing in the dead letters and work resumes by itself."""
        waits = 1 + sum(1 for h in delivery.history if h.get("wait"))
        delay = sub.retry.wait_delay(waits, self.rng)
        delivery.history.append({"wait": True, "at": now.isoformat(), "error": f"{type(exc).__name__}: {exc}"})
        delivery.history = delivery.history[-_HISTORY_KEPT:]
        log.warning("%s: %s waits %.1fs: %s", sub.consumer, delivery.message_id, delay, exc,
                    extra={"correlation_id": delivery.correlation_id})
        self.transport.retry_later(delivery, now + _seconds(delay))

    def _insert_dead(self, conn: Connection, sub: Subscription, delivery: Delivery, reason: str, error: str) -> None:
        """Park ``delivery`` as a dead letter in ``conn``'s transaction (the caller settles it)."""
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
        conn.execute(dead_letters.insert().values(**row))
        uow = UnitOfWork(conn, self.clock, causation_id=delivery.message_id)
        for hook in self.dead_letter_hooks:
            hook(uow, row)
        uow.flush()
        log.error(
            "%s: message %s (%s) dead-lettered as %s after %d attempt(s): %s",
            sub.consumer, delivery.message_id, envelope_type, reason, delivery.attempts, error,
            extra={"correlation_id": row["correlation_id"]},
        )


def _defer_seconds(delivery: Delivery) -> float:
    """How long an out-of-turn delivery waits: short at first, longer when it keeps coming back early."""
    return float(min(0.1 * 2 ** min(delivery.deliveries - 1, 6), 5.0))


def _retryable(exc: BaseException) -> bool:
    if getattr(exc, "retryable", None) is True:  # e.g. a concurrent update: a fresh read may succeed
        return True
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


@contextlib.contextmanager
def _handling(sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> Iterator[None]:
    """Handle one message in a span of its trace (tracing on) and with log lines naming its consumer and
    order. A handler's error is recorded on the span and raised on."""
    with log_fields(consumer=sub.consumer, order_id=envelope.correlation_id):
        if not tracing.enabled():
            yield
            log.debug("handled %s %s", envelope.type, envelope.message_id)
            return
        with tracing.span(**_span_args(sub, delivery, envelope, message)):
            yield
            log.debug("handled %s %s", envelope.type, envelope.message_id)


def _batch_spans(sub: Subscription, items: list[tuple[Delivery, Envelope]], uow: UnitOfWork) -> list[tracing.Span]:
    """A batched handler takes many messages at once: one span per trace among them (a span per message
    would cost more than a projection's work on it), and each order's events continue its trace."""
    groups: dict[tuple[str | None, str | None], list[Envelope]] = {}
    for delivery, envelope in items:
        groups.setdefault(_parent(delivery, envelope), []).append(envelope)
    spans = []
    for (parent, state), envelopes in groups.items():
        types = sorted({e.type for e in envelopes})
        orders = {e.correlation_id for e in envelopes if e.correlation_id is not None}
        span = tracing.start_span(
            f"{sub.consumer}: {types[0] if len(types) == 1 else f'{len(envelopes)} messages'}", parent=parent,
            state=state, kind=tracing.SpanKind.CONSUMER,
            attributes={tracing.CONSUMER: sub.consumer, tracing.MESSAGE_TYPES: types,
                        tracing.ORDER_ID: next(iter(orders)) if len(orders) == 1 else None,
                        "messaging.batch.message_count": len(envelopes)})
        if span is not None:
            spans.append(span)
            for order in orders:
                uow.traces.set(order, span)
    return spans


def _parent(delivery: Delivery, envelope: Envelope) -> tuple[str | None, str | None]:
    """The context a consumer continues: the transport's (the relay's publish span), else the envelope's
    (the span that wrote the message)."""
    if tracing.valid_traceparent(delivery.traceparent) is not None:
        return delivery.traceparent, delivery.tracestate
    return tracing.valid_traceparent(envelope.traceparent), envelope.tracestate if envelope.traceparent else None


def _span_args(sub: Subscription, delivery: Delivery, envelope: Envelope, message: Message) -> dict[str, Any]:
    """The consumer span: a child of the transport's context (the relay's publish span), else of the
    envelope's (the span that wrote the message)."""
    parent, state = _parent(delivery, envelope)
    order = getattr(message, "order", None)
    return {"name": f"{sub.consumer}: {envelope.type}", "parent": parent, "state": state,
            "kind": tracing.SpanKind.CONSUMER,
            "attributes": {tracing.CONSUMER: sub.consumer, tracing.MESSAGE_TYPE: envelope.type,
                           tracing.MESSAGE_ID: envelope.message_id, tracing.ORDER_ID: envelope.correlation_id,
                           tracing.ACCOUNT: getattr(order, "account_id", None) or _text(message, "account_id"),
                           tracing.CHANNEL: getattr(order, "channel", None) or _text(message, "channel"),
                           "ordersync.delivery.attempt": delivery.attempts + 1}}


def _text(message: Message, name: str) -> str | None:
    value = getattr(message, name, None)
    return value if isinstance(value, str) else None
