"""Retention: the messaging records the hub deletes once nothing needs them (``[retention]``).

What goes, ``keep_days`` after it was written:

- an **outbox event** that is published, has no delivery pending (embedded bus), and, on a bus with gap
  repair (NATS), lies below every consumer's low-water mark: every consumer has processed it, so
  neither a redelivery nor gap repair will ever read it again;
- a consumer's **inbox record** of a message it processed, unless a delivery of that message to that
  consumer is still pending (it would be processed again) and, with gap repair, only below the
  low-water mark (gap repair would take a missing record for a lost event);
- an API **idempotency key**: a storefront retry after that is still recognised as the same order by
  its order number (answered ``duplicate: true``), not replayed byte for byte.

Orders, their transitions, cases, dead letters and read models are business records: never touched
here. Each batch is its own short transaction, so a pass never holds the store's writer for long.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, tuple_

from ordersync.domain.clock import Clock
from ordersync.messaging.gaps import prunable_below
from ordersync.messaging.registry import Registry
from ordersync.store.db import Database
from ordersync.store.schema import deliveries, idempotency_keys, inbox, outbox

log = logging.getLogger("ordersync.retention")


@dataclass(frozen=True)
class Pruned:
    outbox: int = 0
    inbox: int = 0
    idempotency_keys: int = 0

    @property
    def total(self) -> int:
        return self.outbox + self.inbox + self.idempotency_keys


class Retention:
    """One pass deletes (or, ``dry_run``, counts) what is older than ``keep_days`` and no longer needed.

    ``gap_tracked``: the bus relies on gap repair (NATS), so events and inbox records at or above the
    lowest consumer's low-water mark stay whatever their age."""

    def __init__(self, db: Database, clock: Clock, registry: Registry, *, keep_days: float,
                 gap_tracked: bool, batch: int = 5000) -> None:
        self.db = db
        self.clock = clock
        self.registry = registry
        self.keep_days = keep_days
        self.gap_tracked = gap_tracked
        self.batch = batch

    def run(self, *, dry_run: bool = False) -> Pruned:
        if not self.keep_days:
            return Pruned()
        cutoff = self.clock.now() - dt.timedelta(days=self.keep_days)
        bound = prunable_below(self.db, self.registry) if self.gap_tracked else None
        o, i, k = outbox.c, inbox.c, idempotency_keys.c
        events = [o.published_at.is_not(None), o.occurred_at < cutoff,
                  ~exists().where(deliveries.c.message_id == o.message_id)]
        records = [i.processed_at < cutoff,
                   ~exists().where(deliveries.c.consumer == i.consumer, deliveries.c.message_id == i.message_id)]
        if bound is not None:
            events.append(o.seq < bound)
            records.append(or_(i.seq.is_(None), i.seq < bound))
        keys = [k.created_at < cutoff]
        if dry_run:
            with self.db.read() as conn:
                return Pruned(*(int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
                                for table, where in ((outbox, events), (inbox, records), (idempotency_keys, keys))))
        pruned = Pruned(
            outbox=self._delete(outbox, (o.seq,), events),
            inbox=self._delete(inbox, (i.consumer, i.message_id), records),
            idempotency_keys=self._delete(idempotency_keys, (k.scope, k.key), keys),
        )
        if pruned.total:
            log.info("retention: deleted %d outbox event(s), %d inbox record(s), %d idempotency key(s) older "
                     "than %g days", pruned.outbox, pruned.inbox, pruned.idempotency_keys, self.keep_days)
        return pruned

    def _delete(self, table: Any, key: tuple[Any, ...], where: list[Any]) -> int:
        """Delete matching rows ``batch`` at a time, by primary key, each batch in its own transaction."""
        done = 0
        while True:
            with self.db.write() as conn:
                rows = conn.execute(select(*key).where(and_(*where)).order_by(*key).limit(self.batch)).all()
                if not rows:
                    return done
                column = key[0] if len(key) == 1 else tuple_(*key)
                values = [r[0] for r in rows] if len(key) == 1 else [tuple(r) for r in rows]
                conn.execute(delete(table).where(column.in_(values)))
            done += len(rows)
            if len(rows) < self.batch:
                return done


__all__ = ["Pruned", "Retention"]
