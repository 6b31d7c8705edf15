"""The outbox is the log of record: which events each consumer has processed, and gap repair.

A broker may lose an acknowledged message (Jepsen, "NATS 2.12.1", December 2025: a truncated block
file or a coordinated power loss loses acknowledged writes), drop one it gave up redelivering, or
deliver the events of one order out of their outbox order. Nothing of that may reach the business:

- every subscribed consumer is registered in ``bus_consumers`` with the first outbox sequence it
  answers for; an event counts as processed by a consumer when its inbox holds the event's message id
  (or a dead letter of that consumer does: parked with a reason, owned by a case);
- :func:`unprocessed` lists, per consumer, the events of its types that it has not processed;
- :class:`GapRepair` (a periodic job, one worker at a time) republishes, to that one consumer only, every event still
  unprocessed after a grace period, and raises each consumer's low-water mark past what it processed
  (never past an event that may still be committing: see below);
- :func:`first_unprocessed` tells an ordered consumer, when the transport does not order deliveries by
  itself, whether an earlier event of the same order is still waiting: the later one is deferred.

Outbox sequences are drawn when a row is inserted, not when it commits: on PostgreSQL a transaction
that drew sequence 500 may commit after another one that drew 501 was committed, published and
processed. So "every visible event up to 501 is processed" does not mean nothing below 502 can appear.
The low-water mark therefore only passes sequences that were already visible ``horizon_seconds`` ago:
an event below such a sequence that is still invisible belongs to a transaction open that long.

Nothing here deletes outbox rows; :func:`prunable_below` says up to which sequence every consumer has
processed everything, the bound that retention (:mod:`ordersync.messaging.retention`) keeps to.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, update

from ordersync.domain.clock import Clock
from ordersync.messaging.registry import Registry, Subscription
from ordersync.messaging.transport import Transport
from ordersync.store.db import Database
from ordersync.store.schema import bus_consumers, dead_letters, delivery_attempts, inbox, outbox
from ordersync.store.sql import insert_ignore

log = logging.getLogger("ordersync.gaps")


def register_consumers(db: Database, registry: Registry, clock: Clock) -> None:
    """Record every consumer of ``registry`` that the store does not know yet. On a new hub (no consumer
    registered yet) every consumer answers for every event, including those written before the first
    process registered; a consumer added to a running hub answers for events appended from then on (it
    does not receive the history)."""
    with db.write() as conn:
        known = set(conn.execute(select(bus_consumers.c.consumer)).scalars())
        missing = [sub.consumer for sub in registry if sub.consumer not in known]
        if not missing:
            return
        start = 1 if not known else int(conn.execute(select(func.coalesce(func.max(outbox.c.seq), 0))).scalar_one()) + 1
        for name in missing:
            insert_ignore(conn, bus_consumers, {"consumer": name, "since_seq": start, "low_seq": start,
                                                "registered_at": clock.now()}, conflict=("consumer",))


def _types_clause(sub: Subscription) -> Any:
    return outbox.c.type.in_(sorted(sub.types)) if sub.types is not None else True


def _not_processed(consumer: str) -> Any:
    return and_(
        ~exists().where(inbox.c.consumer == consumer, inbox.c.message_id == outbox.c.message_id),
        ~exists().where(dead_letters.c.consumer == consumer, dead_letters.c.message_id == outbox.c.message_id),
    )


def _marks(conn: Connection) -> dict[str, tuple[int, int]]:
    return {r.consumer: (int(r.since_seq), int(r.low_seq))
            for r in conn.execute(select(bus_consumers.c.consumer, bus_consumers.c.since_seq, bus_consumers.c.low_seq))}


def unprocessed(db: Database, registry: Registry, *, older_than: float = 0.0,
                clock: Clock | None = None, limit: int = 100_000) -> dict[str, list[int]]:
    """Consumer name -> outbox sequences of published events of its types it has not processed (neither
    in its inbox nor dead-lettered), counting only events published ``older_than`` seconds ago or more.
    Consumers without a gap are left out. It reads every event a consumer answers for (from its
    ``since_seq``, not from its low-water mark): the full answer, for checks and reports."""
    out: dict[str, list[int]] = {}
    with db.read() as conn:
        marks = _marks(conn)
        cutoff = (clock.now() if clock else dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=older_than)
        for sub in registry:
            since, _low = marks.get(sub.consumer, (1, 1))
            seqs = list(conn.execute(
                select(outbox.c.seq)
                .where(outbox.c.seq >= since, outbox.c.published_at.is_not(None), outbox.c.published_at <= cutoff,
                       _types_clause(sub), _not_processed(sub.consumer))
                .order_by(outbox.c.seq).limit(limit)
            ).scalars())
            if seqs:
                out[sub.consumer] = [int(s) for s in seqs]
    return out


def first_unprocessed(conn: Connection, sub: Subscription, correlation_ids: Iterable[str],
                      since_seq: int) -> dict[str, list[int]]:
    """Correlation id -> outbox sequences (ascending) of events of ``sub``'s types that ``sub`` has not
    processed yet. An ordered consumer may handle a delivery only when it is the first of that list."""
    ids = sorted(set(correlation_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(outbox.c.correlation_id, outbox.c.seq)
        .where(outbox.c.correlation_id.in_(ids), outbox.c.seq >= since_seq, _types_clause(sub),
               _not_processed(sub.consumer))
        .order_by(outbox.c.seq)
    )
    out: dict[str, list[int]] = defaultdict(list)
    for cid, seq in rows:
        out[cid].append(int(seq))
    return out


def since_seqs(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {name: since for name, (since, _low) in _marks(conn).items()}


def prunable_below(db: Database, registry: Registry | None = None) -> int:
    """Every consumer (of ``registry``, when given: a consumer removed from the code no longer holds
    retention back) has processed every event below this outbox sequence."""
    query = select(func.min(bus_consumers.c.low_seq))
    if registry is not None:
        query = query.where(bus_consumers.c.consumer.in_(sorted(sub.consumer for sub in registry)))
    with db.read() as conn:
        value = conn.execute(query).scalar_one()
        return int(value) if value is not None else 0


class GapRepair:
    """Finds events a consumer never processed and republishes them to that consumer.

    An event is a gap when it was published more than ``grace_seconds`` ago, its consumer has neither
    processed nor dead-lettered it, no retry of it is scheduled (a failing handler's retry is not a
    gap), and either the transport has nothing left to deliver to that consumer (it is caught up, so the
    event is not merely queued behind a backlog) or the event is older than ``stuck_seconds``. A
    repaired event is not republished again before ``grace_seconds * 2**repairs`` (at most ten minutes)
    have passed: a consumer that is merely slow is not flooded.

    The low-water mark (where the next pass starts reading) never passes the newest sequence this
    object saw visible ``horizon_seconds`` ago or earlier (see the module's docstring); a new instance
    holds the marks where they are for that long."""

    def __init__(self, db: Database, transport: Transport, registry: Registry, clock: Clock, *,
                 grace_seconds: float = 30.0, stuck_seconds: float = 600.0, horizon_seconds: float = 60.0,
                 batch: int = 500) -> None:
        self.db = db
        self.transport = transport
        self.registry = registry
        self.clock = clock
        self.grace = dt.timedelta(seconds=grace_seconds)
        self.stuck = dt.timedelta(seconds=max(stuck_seconds, grace_seconds))
        self.horizon = horizon_seconds
        self.batch = batch
        self.republished = 0
        self._seen: deque[tuple[float, int]] = deque()  # (monotonic time, newest visible outbox sequence)

    def run(self) -> int:
        """One pass over every consumer; returns how many events were republished. Run it in one process
        at a time (the worker schedules it as a singleton job)."""
        done = 0
        caught_up = {sub.consumer: self.transport.caught_up(sub.consumer) for sub in self.registry}
        with self.db.write() as conn:
            marks = _marks(conn)
            now = self.clock.now()
            settled = self._settled_below(conn)
            for sub in self.registry:
                if sub.consumer not in marks:
                    continue
                done += self._repair(conn, sub, marks[sub.consumer][1], now, caught_up[sub.consumer], settled)
        self.republished += done
        return done

    def _settled_below(self, conn: Connection) -> int:
        """A sequence no invisible event lies below, unless its transaction is ``horizon`` seconds old:
        one past the newest sequence seen visible at least that long ago (0 when nothing was)."""
        t = self.clock.monotonic()
        newest = conn.execute(select(func.max(outbox.c.seq))).scalar_one()
        self._seen.append((t, int(newest or 0)))
        while len(self._seen) > 1 and self._seen[1][0] <= t - self.horizon:
            self._seen.popleft()
        seen_at, seq = self._seen[0]
        return seq + 1 if seen_at <= t - self.horizon else 0

    def _repair(self, conn: Connection, sub: Subscription, low: int, now: dt.datetime, caught_up: bool,
                settled: int) -> int:
        a = delivery_attempts.c
        cutoff = now - (self.grace if caught_up else self.stuck)
        gaps = conn.execute(
            select(outbox.c.seq, outbox.c.message_id, outbox.c.correlation_id, outbox.c.body, outbox.c.published_at,
                   a.next_attempt_at, a.repairs, a.repaired_at)
            .select_from(outbox.outerjoin(delivery_attempts, and_(a.consumer == sub.consumer,
                                                                  a.message_id == outbox.c.message_id)))
            .where(outbox.c.seq >= low, outbox.c.published_at.is_not(None), _types_clause(sub),
                   _not_processed(sub.consumer))
            .order_by(outbox.c.seq)
            .limit(self.batch)
        ).all()
        new_low = min(int(gaps[0].seq) if gaps else self._next_seq(conn, low), max(low, settled))
        if new_low > low:
            conn.execute(update(bus_consumers).where(bus_consumers.c.consumer == sub.consumer)
                         .values(low_seq=new_low, checked_at=now))
        repaired = 0
        for g in gaps:
            if _aware(g.published_at) > cutoff:
                break  # in outbox order: everything after is younger still
            if g.next_attempt_at is not None and _aware(g.next_attempt_at) > cutoff:
                continue  # a retry is scheduled: not lost, just waiting
            repairs = int(g.repairs or 0)
            if g.repaired_at is not None:
                backoff = min(self.grace * (2 ** repairs), dt.timedelta(minutes=10))
                if _aware(g.repaired_at) > now - backoff:
                    continue
            self.transport.redeliver(conn, sub.consumer, g.body, g.message_id, g.correlation_id, int(g.seq), now)
            note_repair(conn, sub.consumer, g.message_id, now)
            repaired += 1
        if repaired:
            log.warning("gap repair: republished %d event(s) that %s never processed (first seq %s)",
                        repaired, sub.consumer, gaps[0].seq)
        return repaired

    @staticmethod
    def _next_seq(conn: Connection, low: int) -> int:
        """Everything published is processed: the mark moves past the newest published event (an
        unpublished row stays ahead of it, so the mark never skips it)."""
        first_unpublished = conn.execute(
            select(func.min(outbox.c.seq)).where(outbox.c.seq >= low, outbox.c.published_at.is_(None))
        ).scalar_one()
        if first_unpublished is not None:
            return int(first_unpublished)
        newest = conn.execute(select(func.max(outbox.c.seq))).scalar_one()
        return max(low, int(newest or 0) + 1)


def note_repair(conn: Connection, consumer: str, message_id: str, now: dt.datetime) -> None:
    a = delivery_attempts.c
    changed = conn.execute(update(delivery_attempts).where(a.consumer == consumer, a.message_id == message_id)
                           .values(repairs=a.repairs + 1, repaired_at=now)).rowcount
    if not changed:
        insert_ignore(conn, delivery_attempts, {"consumer": consumer, "message_id": message_id, "attempts": 0,
                                                "history": "[]", "repairs": 1, "repaired_at": now},
                      conflict=("consumer", "message_id"))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


__all__ = ["GapRepair", "first_unprocessed", "prunable_below", "register_consumers", "since_seqs", "unprocessed"]
