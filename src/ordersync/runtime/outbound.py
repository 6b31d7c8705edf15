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
import secrets
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select, true, update

from ordersync.canonical.envelope import Envelope, new_id
from ordersync.domain.clock import Clock
from ordersync.domain.errors import MessageError, NotFound, ValidationFailed
from ordersync.domain.events import MESSAGE_TYPES, Command, Event, Message, OrderReadyForErp
from ordersync.domain.events import register as register_message
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store.db import Database
from ordersync.store.schema import outbox, webhook_deliveries, webhook_subscriptions
from ordersync.store.sql import insert_ignore
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.outbound")

FANOUT = "outbound.fanout"
#: the consumer named by webhook dead letters; it takes their ``webhook.redeliver`` command on replay
WEBHOOKS = "outbound.webhooks"
ALL = "*"
MIN_SECRET = 16
#: attempt history entries kept per delivery (a long outage adds a "wait" entry per probe)
HISTORY_KEPT = 30


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
    history = [*json.loads(row.history), {"replayed": True, "at": now.isoformat()}][-HISTORY_KEPT:]
    uow.conn.execute(update(webhook_deliveries).where(w.delivery_id == command.delivery_id, w.state == "dead")
                     .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, finished_at=None,
                             history=json.dumps(history)))


def register(registry: Registry) -> None:
    """The fan-out consumer (every outbound type, ordered per order so that rows of one order are
    written in event order even with several workers) and the redelivery consumer for replays."""
    registry.add(Subscription(FANOUT, outbound_types(), fan_out, "tx", ordered=True))
    registry.add(Subscription(WEBHOOKS, frozenset({WebhookRedeliver.TYPE}), redeliver, "tx"))
