"""Sending outbound webhooks: :class:`WebhookDispatcher`, a periodic job in its own worker thread, claims
due deliveries that the fan-out consumer queued (:mod:`ordersync.runtime.outbound`, which explains the
design), POSTs them through the webhook port (:mod:`ordersync.ports.webhooks`) outside any transaction, a
few at a time, and records every outcome in one short write: delivered, retried after a backoff,
dead-lettered, or waiting because the subscriber is down.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, and_, delete, exists, or_, select, true, update

from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.messaging.retry import RetryPolicy
from ordersync.ports.webhooks import (
    ANSWER_KEPT,
    SubscriberDown,
    WebhookAnswer,
    WebhookPort,
    WebhookRequest,
)
from ordersync.runtime.outbound import HISTORY_KEPT, WEBHOOKS, WebhookRedeliver
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, webhook_deliveries, webhook_subscriptions
from ordersync.store.uow import UnitOfWork
from ordersync.telemetry import tracing

log = logging.getLogger("ordersync.outbound")





class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"  # for good: dead-lettered at once
    DOWN = "down"  # nothing reached the subscriber: wait, no attempt used


def classify(status: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx are worth another attempt; any other answer is final."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.REFUSED


@dataclass(frozen=True)
class _Target:
    id: str
    name: str
    url: str
    secret: str


@dataclass
class _Claimed:
    id: int
    delivery_id: str
    subscription_id: str
    message_id: str
    type: str
    order_key: str
    seq: int | None
    body: str
    attempts: int
    history: list[dict[str, Any]]


@dataclass
class _Result:
    item: _Claimed
    target: _Target
    answer: WebhookAnswer | None = None
    error: Exception | None = None

    @property
    def outcome(self) -> Outcome:
        if self.answer is not None:
            return classify(self.answer.status)
        return Outcome.DOWN if isinstance(self.error, SubscriberDown) else Outcome.RETRY

    def describe(self) -> str:
        if self.answer is not None:
            text = " ".join(self.answer.body.split())[:200]
            return f"HTTP {self.answer.status} from {self.target.url}" + (f": {text}" if text else "")
        return f"{type(self.error).__name__}: {self.error}"


@dataclass
class _Down:
    since: dt.datetime
    until: dt.datetime
    waits: int


DeadLetterHook = Callable[[UnitOfWork, dict[str, Any]], None]


@dataclass
class WebhookDispatcher:
    """Sends due webhook deliveries (see the module docstring). ``send_due`` is the worker's periodic
    job; it never overlaps itself in one process."""

    db: Database
    clock: Clock
    sender: WebhookPort
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=10, base_seconds=2.0,
                                                                   cap_seconds=900.0, wait_cap_seconds=60.0))
    batch_size: int = 20
    concurrency: int = 4
    lease_seconds: float = 90.0
    #: the runtime's dead-letter hooks (shared list), run for webhook dead letters too
    dead_letter_hooks: list[DeadLetterHook] = field(default_factory=list)
    #: a lone worker on SQLite takes back, on its first run, the leases a crashed predecessor held
    release_leases_at_start: bool = False
    rng: random.Random = field(default_factory=random.Random)
    budget_seconds: float = 2.0

    def __post_init__(self) -> None:
        self._down: dict[str, _Down] = {}
        self._lock = threading.Lock()
        self._started = False

    def send_due(self) -> int:
        """Send batches until nothing is due or the time budget is spent; returns deliveries handled."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            if not self._started:
                self._started = True
                if self.release_leases_at_start:
                    self._release_leases()
            done, started = 0, self.clock.monotonic()
            while True:
                n = self.run_once()
                done += n
                if n < self.batch_size or self.clock.monotonic() - started > self.budget_seconds:
                    return done
        finally:
            self._lock.release()

    def run_once(self) -> int:
        """One batch: claim, send (``concurrency`` at a time), record every outcome in one write."""
        targets = self._targets()
        if not targets:
            return 0
        batch = self._claim(targets, self.clock.now())
        if not batch:
            return 0
        results = self._send(batch, targets)
        self._settle(results)
        return len(batch)

    def down(self) -> dict[str, dt.datetime]:
        """Subscriptions this process found down, and since when."""
        return {sid: d.since for sid, d in self._down.items()}

    def prune(self, keep_days: float = 7.0) -> int:
        """Forget delivered and cancelled deliveries older than ``keep_days`` (dead ones stay)."""
        w = webhook_deliveries.c
        before = self.clock.now() - dt.timedelta(days=keep_days)
        with self.db.write() as conn:
            result = conn.execute(delete(webhook_deliveries)
                                  .where(w.state.in_(("delivered", "cancelled")), w.finished_at < before))
            return int(result.rowcount or 0)

    def close(self) -> None:
        self.sender.close()

    # -- claiming -----------------------------------------------------------------------------------

    def _targets(self) -> dict[str, _Target]:
        s = webhook_subscriptions.c
        with self.db.read() as conn:
            rows = conn.execute(select(s.id, s.name, s.url, s.secret).where(s.active == true())).all()
        live = {r.id: _Target(r.id, r.name, r.url, r.secret) for r in rows}
        for gone in set(self._down) - set(live):
            del self._down[gone]
        return live

    def _due(self, sub_ids: list[str], now: dt.datetime) -> Select[Any]:
        w = webhook_deliveries.c
        earlier = webhook_deliveries.alias("earlier")
        return (
            select(webhook_deliveries)
            .where(
                w.state == "pending",
                w.next_attempt_at <= now,
                or_(w.lease_until.is_(None), w.lease_until < now),
                w.subscription_id.in_(sub_ids),
                ~exists().where(and_(earlier.c.subscription_id == w.subscription_id,
                                     earlier.c.order_key == w.order_key, earlier.c.state == "pending",
                                     earlier.c.id < w.id)),
            )
            .order_by(w.id)
        )

    def _claim(self, targets: dict[str, _Target], now: dt.datetime) -> list[_Claimed]:
        """Subscriptions that are up: a batch of due deliveries. Subscriptions found down: one probe
        each, once their wait is over."""
        up = [sid for sid in targets if sid not in self._down]
        probes = [sid for sid, d in self._down.items() if d.until <= now]
        queries = ([self._due(up, now).limit(self.batch_size)] if up else []) + \
                  [self._due([sid], now).limit(1) for sid in probes]
        if not queries:
            return []
        if not self.db.is_sqlite:  # FOR UPDATE SKIP LOCKED: concurrent workers take disjoint rows
            with self.db.write() as conn:
                rows = [r for q in queries for r in conn.execute(q.with_for_update(skip_locked=True)).mappings()]
                leased = self._lease(conn, [r["id"] for r in rows], now)
        else:  # SQLite: look outside the write lock, then lease in one short UPDATE
            with self.db.read() as conn:
                rows = [r for q in queries for r in conn.execute(q).mappings()]
            if not rows:
                return []
            with self.db.write() as conn:
                leased = self._lease(conn, [r["id"] for r in rows], now)
        return [_claimed(r) for r in rows if r["id"] in leased]

    def _lease(self, conn: Connection, ids: list[int], now: dt.datetime) -> set[int]:
        if not ids:
            return set()
        w = webhook_deliveries.c
        rows = conn.execute(
            update(webhook_deliveries)
            .where(w.id.in_(ids), w.state == "pending", or_(w.lease_until.is_(None), w.lease_until < now))
            .values(lease_until=now + dt.timedelta(seconds=self.lease_seconds))
            .returning(w.id)
        )
        return {int(r[0]) for r in rows}

    def _release_leases(self) -> None:
        w = webhook_deliveries.c
        with self.db.write() as conn:
            n = conn.execute(update(webhook_deliveries).where(w.state == "pending", w.lease_until.is_not(None))
                             .values(lease_until=None)).rowcount
        if n:
            log.warning("took back %d webhook deliveries claimed by a worker that stopped abruptly", n)

    # -- sending ------------------------------------------------------------------------------------

    def _send(self, batch: list[_Claimed], targets: dict[str, _Target]) -> list[_Result]:
        """Each claimed delivery is the head of its (subscription, order) queue, so they can all be in
        flight at once without breaking the order."""
        timestamp = int(self.clock.now().timestamp())

        def one(item: _Claimed) -> _Result:
            target = targets[item.subscription_id]
            result = _Result(item, target)
            with _delivery_span(item, target) as span:
                try:
                    result.answer = self.sender.send(WebhookRequest(target.url, target.secret, item.type,
                                                                    item.delivery_id, item.body.encode(), timestamp))
                except Exception as exc:  # classified in _settle: down, or worth another attempt
                    result.error = exc
                if span is not None:
                    _note_outcome(span, result)
            return result

        if len(batch) == 1 or self.concurrency == 1:
            return [one(item) for item in batch]
        with ThreadPoolExecutor(min(self.concurrency, len(batch)), thread_name_prefix="webhook") as pool:
            return list(pool.map(one, batch))

    # -- settling -----------------------------------------------------------------------------------

    def _settle(self, results: list[_Result]) -> None:
        now = self.clock.now()
        self._note_health(results, now)
        with self.db.write() as conn:
            uow = UnitOfWork(conn, self.clock)
            for result in results:
                self._record(uow, result, now)
            uow.flush()

    def _note_health(self, results: list[_Result], now: dt.datetime) -> None:
        """A subscriber that answered anything is up; one that nothing reached is down (once per batch,
        so that a batch of refused connections counts as one wait)."""
        answered = {r.item.subscription_id for r in results if r.outcome is not Outcome.DOWN}
        unreachable = {r.item.subscription_id for r in results if r.outcome is Outcome.DOWN} - answered
        for sid in answered:
            if self._down.pop(sid, None) is not None:
                log.info("webhook subscriber %s answers again; sending what waited", sid)
        for sid in unreachable:
            prev = self._down.get(sid)
            waits = prev.waits + 1 if prev else 1
            until = now + dt.timedelta(seconds=self.retry.wait_delay(waits, self.rng))
            self._down[sid] = _Down(prev.since if prev else now, until, waits)
            log.warning("webhook subscriber %s is down; next try at %s", sid, until.isoformat(timespec="seconds"))

    def _record(self, uow: UnitOfWork, result: _Result, now: dt.datetime) -> None:
        item, outcome = result.item, result.outcome
        status = result.answer.status if result.answer is not None else None
        if outcome is Outcome.DOWN:
            item.history.append({"wait": True, "at": now.isoformat(), "error": result.describe()})
            self._update(uow.conn, item, lease_until=None)
            return
        item.attempts += 1
        item.history.append({"attempt": item.attempts, "at": now.isoformat(), "status": status,
                             "error": "" if outcome is Outcome.DELIVERED else result.describe()})
        common = {"attempts": item.attempts, "last_status": status, "lease_until": None,
                  "last_error": None if outcome is Outcome.DELIVERED else _kept(result)}
        if outcome is Outcome.DELIVERED:
            self._update(uow.conn, item, state="delivered", finished_at=now, **common)
        elif outcome is Outcome.RETRY and not self.retry.exhausted(item.attempts):
            delay = self.retry.delay(item.attempts, self.rng)
            if result.answer is not None and result.answer.retry_after is not None:
                delay = min(max(delay, result.answer.retry_after), self.retry.cap_seconds)
            log.warning("webhook %s to %s: attempt %d failed, retrying in %.1fs: %s", item.delivery_id,
                        result.target.name, item.attempts, delay, result.describe(),
                        extra={"correlation_id": item.order_key or None})
            self._update(uow.conn, item, next_attempt_at=now + dt.timedelta(seconds=delay), **common)
        else:
            reason = "rejected" if outcome is Outcome.REFUSED else "exhausted"
            if self._update(uow.conn, item, state="dead", finished_at=now, **common):
                self._dead_letter(uow, result, reason, now)

    def _update(self, conn: Connection, item: _Claimed, **values: Any) -> bool:
        """Write the outcome unless the delivery stopped being pending meanwhile (subscription removed)."""
        w = webhook_deliveries.c
        values["history"] = json.dumps(item.history[-HISTORY_KEPT:], default=str)
        result = conn.execute(update(webhook_deliveries).where(w.id == item.id, w.state == "pending").values(**values))
        return bool(result.rowcount)

    def _dead_letter(self, uow: UnitOfWork, result: _Result, reason: str, now: dt.datetime) -> None:
        item, target = result.item, result.target
        command = WebhookRedeliver(
            delivery_id=item.delivery_id, subscription_id=target.id, subscription=target.name, url=target.url,
            event_type=item.type, status=result.answer.status if result.answer is not None else None,
            answer=result.answer.body if result.answer is not None else "", event=json.loads(item.body))
        envelope = Envelope(message_id=new_id(), type=command.TYPE, correlation_id=item.order_key or None,
                            causation_id=item.message_id, occurred_at=now, payload=command.payload())
        row = {
            "id": new_id(), "consumer": WEBHOOKS, "message_id": envelope.message_id, "type": item.type,
            "correlation_id": item.order_key or None, "seq": item.seq, "body": envelope.to_json(),
            "reason": reason, "error": f"subscription {target.name} ({target.id}): {_kept(result)}",
            "attempts": item.attempts, "history": json.dumps(item.history[-HISTORY_KEPT:], default=str),
            "dead_at": now, "status": "dead", "replay_count": 0, "replayed_at": None,
        }
        uow.conn.execute(dead_letters.insert().values(**row))
        uow.causation_id = envelope.message_id
        for hook in self.dead_letter_hooks:
            hook(uow, row)
        log.error("webhook %s (%s) to %s dead-lettered as %s after %d attempt(s): %s", item.delivery_id, item.type,
                  target.name, reason, item.attempts, result.describe(),
                  extra={"correlation_id": item.order_key or None})


def _delivery_span(item: _Claimed, target: _Target) -> AbstractContextManager[tracing.Span | None]:
    """The delivery attempt's span, in the trace of the event it carries (tracing on); the sender sends
    its context as the request's ``traceparent`` header."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    parent, state = tracing.context_in(item.body)
    return tracing.span(f"webhook {item.type}", parent=parent, state=state, kind=tracing.SpanKind.CLIENT,
                        attributes={tracing.ORDER_ID: item.order_key or None, tracing.MESSAGE_TYPE: item.type,
                                    "ordersync.webhook.subscription": item.subscription_id,
                                    "ordersync.webhook.delivery": item.delivery_id,
                                    "ordersync.webhook.attempt": item.attempts + 1,
                                    "url.full": target.url})


def _note_outcome(span: tracing.Span, result: _Result) -> None:
    if result.answer is not None:
        span.set_attribute("http.response.status_code", result.answer.status)
        if result.answer.status >= 400:
            span.set_status(tracing.StatusCode.ERROR, f"HTTP {result.answer.status}")
    elif result.error is not None:
        span.record_exception(result.error)
        span.set_status(tracing.StatusCode.ERROR, f"{type(result.error).__name__}: {result.error}")


def _kept(result: _Result) -> str:
    """The error as kept with the delivery: the whole (capped) answer, not just its first line."""
    if result.answer is not None:
        return f"HTTP {result.answer.status}: {result.answer.body[:ANSWER_KEPT]}"
    return result.describe()


def _claimed(r: RowMapping) -> _Claimed:
    return _Claimed(id=int(r["id"]), delivery_id=r["delivery_id"], subscription_id=r["subscription_id"],
                    message_id=r["message_id"], type=r["type"], order_key=r["order_key"], seq=r["seq"],
                    body=r["body"], attempts=r["attempts"], history=json.loads(r["history"]))

