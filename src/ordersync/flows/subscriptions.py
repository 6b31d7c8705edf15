"""Outbound event subscriptions: the hub's events, signed and POSTed to a CRM, a notification service or
a storefront (``ordersync subscriptions add``).

How it sits on the runtime (and why):

- **Fan-out is an ordinary idempotent consumer.** ``outbound.fanout`` (tx mode, ordered per order) takes
  every outbound event type and, in the transaction that records it in the inbox, writes one row per
  matching *active* subscription into ``webhook_deliveries``. It reads the subscriptions on every
  batch, so a subscription added while the hub runs gets the next event without a restart (consumers
  themselves are fixed at start-up, which is why a subscription is not a consumer of its own). The row
  keeps the envelope exactly as the outbox holds it, and a delivery id that never changes.
- **Sending is a periodic job in its own worker thread** (:class:`WebhookDispatcher`), not an I/O
  consumer: a subscriber that answers slowly must never hold up the relay or the order flows, which run
  on the worker loop. It claims due rows with a lease (several workers can share a PostgreSQL store),
  POSTs them outside any transaction, a few at a time, and records every outcome in one short write.
- **Ordered per (subscription, order).** A delivery is due only when no earlier delivery of the same
  subscription and order is still pending: a later event is never sent before an earlier one was
  delivered or dead-lettered. Other orders, and other subscriptions, go on meanwhile.
- **Outcomes.** 2xx: delivered. 408, 429, 5xx, a timeout or a broken connection: another attempt after
  an exponential backoff with jitter (:class:`RetryPolicy`; ``Retry-After`` is honoured), dead-lettered
  after ``max_attempts``. Any other status: the subscriber refused it for good; dead-lettered at once,
  with its answer. Nothing reached the subscriber (connection refused, unknown host, connect timeout):
  it is *down*, like an ERP that is down, and that uses up no attempts. Its deliveries wait; one probe
  at a time is sent, backing off up to ``wait_cap_seconds``; when it answers, every waiting delivery goes
  out, in order. So a subscriber that was away for a while receives everything once it is back.
- **Dead letters are the runtime's own**, so ``ordersync dlq list/show/replay`` work on them (consumer
  ``outbound.webhooks``, the event's type and order id). The letter holds a ``webhook.redeliver``
  command naming the delivery; replaying it puts the delivery back in its queue with a fresh attempt
  count, under the same delivery id.

The shared secret is stored as given: the hub has to sign with it, so a hash would not do, and
encrypting it with a key kept next to the store would protect nothing the store's own access control
does not. It is never printed after ``add``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, and_, delete, exists, func, or_, select, true, update

from ordersync.adapters.webhooks import (
    ANSWER_KEPT,
    SubscriberDown,
    WebhookAnswer,
    WebhookPort,
    WebhookRequest,
)
from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.domain.errors import MessageError, NotFound, ValidationFailed
from ordersync.domain.events import MESSAGE_TYPES, Command, Event, Message, OrderReadyForErp
from ordersync.domain.events import register as register_message
from ordersync.messaging.registry import Registry, Subscription
from ordersync.messaging.retry import RetryPolicy
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, outbox, webhook_deliveries, webhook_subscriptions
from ordersync.store.sql import insert_ignore
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.flows.subscriptions")

FANOUT = "outbound.fanout"
#: the consumer named by webhook dead letters; it takes their ``webhook.redeliver`` command on replay
WEBHOOKS = "outbound.webhooks"
ALL = "*"
MIN_SECRET = 16
#: attempt history entries kept per delivery (a long outage adds a "wait" entry per probe)
_HISTORY_KEPT = 30


class WebhookRedeliver(Command):
    """Send a webhook delivery again (what a webhook dead letter holds; replay runs it)."""

    TYPE = "webhook.redeliver"
    delivery_id: str
    subscription_id: str
    subscription: str
    url: str
    event_type: str
    status: int | None = None
    answer: str = ""
    event: dict[str, Any]


register_message(WebhookRedeliver)

#: the hub's own workflow steps: facts about orders, but not for anybody outside
INTERNAL_TYPES = frozenset({OrderReadyForErp.TYPE})


def outbound_types() -> frozenset[str]:
    """Event types a subscription can name (``*`` takes all of them): every registered event but the
    internal workflow steps. Commands are requests to the hub, never sent out."""
    return frozenset(t for t, cls in MESSAGE_TYPES.items() if issubclass(cls, Event) and t not in INTERNAL_TYPES)


# -- subscriptions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionInfo:
    id: str
    name: str
    url: str
    types: tuple[str, ...]
    active: bool
    created_at: dt.datetime
    removed_at: dt.datetime | None
    pending: int = 0
    delivered: int = 0
    dead: int = 0


def check_url(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"url {url!r}: give an absolute http:// or https:// URL"]
    return []


def normalise_types(types: Iterable[str]) -> tuple[str, ...]:
    """Sorted, without repeats; ``*`` alone if it is among them."""
    wanted = {t.strip() for t in types if t.strip()}
    return (ALL,) if ALL in wanted else tuple(sorted(wanted))


class SubscriptionService:
    """Add, list and remove subscriptions. Changes apply to the next event fanned out, in every process."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def add(self, name: str, url: str, types: Iterable[str], secret: str | None = None) -> tuple[str, SubscriptionInfo]:
        """Create a subscription; returns its secret (generated when none is given) and the stored
        information."""
        wanted = normalise_types(types)
        problems = check_url(url)
        if not name.strip() or len(name) > 120:
            problems.append("name: 1 to 120 characters")
        if not wanted:
            problems.append(f"give at least one event type, or {ALL} for all")
        unknown = [t for t in wanted if t != ALL and t not in outbound_types()]
        if unknown:
            problems.append(f"unknown event types {unknown}; known: {', '.join(sorted(outbound_types()))}")
        if secret is not None and len(secret) < MIN_SECRET:
            problems.append(f"secret: at least {MIN_SECRET} characters")
        if problems:
            raise ValidationFailed(problems)
        secret = secret or secrets.token_urlsafe(32)
        sub_id = secrets.token_hex(6)
        with self.db.write() as conn:
            conn.execute(webhook_subscriptions.insert().values(
                id=sub_id, name=name.strip(), url=url, secret=secret, types=" ".join(wanted), active=True,
                created_at=self.clock.now(), removed_at=None))
        return secret, self.get(sub_id)

    def get(self, sub_id: str) -> SubscriptionInfo:
        found = _infos(self.db, webhook_subscriptions.c.id == sub_id)
        if not found:
            raise NotFound(f"subscription {sub_id} not found")
        return found[0]

    def list(self, include_removed: bool = False) -> list[SubscriptionInfo]:
        return _infos(self.db, None if include_removed else webhook_subscriptions.c.active == true())

    def remove(self, sub_id: str) -> SubscriptionInfo:
        """Deactivate a subscription: no new deliveries, and the waiting ones are cancelled (its dead
        letters stay, and replaying them does nothing)."""
        self.get(sub_id)
        now = self.clock.now()
        w = webhook_deliveries.c
        with self.db.write() as conn:
            conn.execute(update(webhook_subscriptions)
                         .where(webhook_subscriptions.c.id == sub_id, webhook_subscriptions.c.active == true())
                         .values(active=False, removed_at=now))
            conn.execute(update(webhook_deliveries).where(w.subscription_id == sub_id, w.state == "pending")
                         .values(state="cancelled", finished_at=now, lease_until=None))
        return self.get(sub_id)


def _infos(db: Database, where: Any) -> list[SubscriptionInfo]:
    s, w = webhook_subscriptions.c, webhook_deliveries.c
    query = select(webhook_subscriptions).order_by(s.created_at, s.id)
    if where is not None:
        query = query.where(where)
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
        ids = [r["id"] for r in rows]
        counts: dict[tuple[str, str], int] = {
            (sid, st): n for sid, st, n in conn.execute(
                select(w.subscription_id, w.state, func.count()).where(w.subscription_id.in_(ids))
                .group_by(w.subscription_id, w.state)).all()
        } if ids else {}
    return [_info(r, counts) for r in rows]


def _info(r: RowMapping, counts: dict[tuple[str, str], int]) -> SubscriptionInfo:
    sid = r["id"]
    return SubscriptionInfo(id=sid, name=r["name"], url=r["url"], types=tuple(r["types"].split()),
                            active=bool(r["active"]), created_at=r["created_at"], removed_at=r["removed_at"],
                            pending=counts.get((sid, "pending"), 0), delivered=counts.get((sid, "delivered"), 0),
                            dead=counts.get((sid, "dead"), 0))


def _takes(types: str, event_type: str) -> bool:
    names = types.split()
    return ALL in names or event_type in names


# -- fan-out and redelivery (consumers) -------------------------------------------------------------------


def fan_out(message: Message, uow: UnitOfWork) -> None:
    """One pending delivery per active subscription that takes this event, with the envelope exactly
    as the outbox holds it (the consumer's inbox makes this once per event)."""
    s = webhook_subscriptions.c
    targets = [sid for sid, types in uow.conn.execute(select(s.id, s.types).where(s.active == true()))
               if _takes(types, message.TYPE)]
    if not targets:
        return
    row = uow.conn.execute(select(outbox.c.seq, outbox.c.correlation_id, outbox.c.body)
                           .where(outbox.c.message_id == uow.causation_id)).first()
    if row is None:
        raise MessageError(f"{message.TYPE} {uow.causation_id} is not in the outbox; nothing to send")
    now = uow.now()
    for sub_id in targets:
        _queue(uow.conn, sub_id, new_id(), str(uow.causation_id), message.TYPE, row.correlation_id, row.seq,
               row.body, now)


def _queue(conn: Connection, sub_id: str, delivery_id: str, message_id: str, event_type: str,
           order_id: str | None, seq: int | None, body: str, now: dt.datetime) -> bool:
    return insert_ignore(conn, webhook_deliveries, {
        "delivery_id": delivery_id, "subscription_id": sub_id, "message_id": message_id, "type": event_type,
        "order_key": order_id or "", "seq": seq, "body": body, "state": "pending", "attempts": 0,
        "next_attempt_at": now, "lease_until": None, "history": "[]", "last_status": None, "last_error": None,
        "created_at": now, "finished_at": None,
    }, conflict=("subscription_id", "message_id"))


def redeliver(command: WebhookRedeliver, uow: UnitOfWork) -> None:
    """A replayed dead letter: the delivery goes back in its queue, same id, fresh attempt count. If its
    row was cleaned up meanwhile it is queued again from the letter; a removed subscription gets nothing."""
    w, s = webhook_deliveries.c, webhook_subscriptions.c
    active = uow.conn.execute(select(s.active).where(s.id == command.subscription_id)).scalar_one_or_none()
    if not active:
        log.warning("replay of webhook delivery %s: subscription %s was removed; not sent",
                    command.delivery_id, command.subscription_id)
        return
    now = uow.now()
    row = uow.conn.execute(select(w.state, w.history).where(w.delivery_id == command.delivery_id)).first()
    if row is None:
        envelope = Envelope.model_validate(command.event)
        _queue(uow.conn, command.subscription_id, command.delivery_id, envelope.message_id, envelope.type,
               envelope.correlation_id, None, envelope.to_json(), now)
        return
    if row.state != "dead":
        log.info("replay of webhook delivery %s: it is %s; nothing to do", command.delivery_id, row.state)
        return
    history = [*json.loads(row.history), {"replayed": True, "at": now.isoformat()}][-_HISTORY_KEPT:]
    uow.conn.execute(update(webhook_deliveries).where(w.delivery_id == command.delivery_id, w.state == "dead")
                     .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, finished_at=None,
                             history=json.dumps(history)))


def register(registry: Registry) -> None:
    """The fan-out consumer (every outbound type, ordered per order so that rows of one order are
    written in event order even with several workers) and the redelivery consumer for replays."""
    registry.add(Subscription(FANOUT, outbound_types(), fan_out, "tx", ordered=True))
    registry.add(Subscription(WEBHOOKS, frozenset({WebhookRedeliver.TYPE}), redeliver, "tx"))


# -- sending ----------------------------------------------------------------------------------------------


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
            try:
                result.answer = self.sender.send(WebhookRequest(target.url, target.secret, item.type,
                                                                item.delivery_id, item.body.encode(), timestamp))
            except Exception as exc:  # classified in _settle: down, or worth another attempt
                result.error = exc
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
        values["history"] = json.dumps(item.history[-_HISTORY_KEPT:], default=str)
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
            "attempts": item.attempts, "history": json.dumps(item.history[-_HISTORY_KEPT:], default=str),
            "dead_at": now, "status": "dead", "replay_count": 0, "replayed_at": None,
        }
        uow.conn.execute(dead_letters.insert().values(**row))
        uow.causation_id = envelope.message_id
        for hook in self.dead_letter_hooks:
            hook(uow, row)
        log.error("webhook %s (%s) to %s dead-lettered as %s after %d attempt(s): %s", item.delivery_id, item.type,
                  target.name, reason, item.attempts, result.describe(),
                  extra={"correlation_id": item.order_key or None})


def _kept(result: _Result) -> str:
    """The error as kept with the delivery: the whole (capped) answer, not just its first line."""
    if result.answer is not None:
        return f"HTTP {result.answer.status}: {result.answer.body[:ANSWER_KEPT]}"
    return result.describe()


def _claimed(r: RowMapping) -> _Claimed:
    return _Claimed(id=int(r["id"]), delivery_id=r["delivery_id"], subscription_id=r["subscription_id"],
                    message_id=r["message_id"], type=r["type"], order_key=r["order_key"], seq=r["seq"],
                    body=r["body"], attempts=r["attempts"], history=json.loads(r["history"]))

