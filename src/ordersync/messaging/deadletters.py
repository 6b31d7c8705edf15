"""Dead letters: list, inspect and replay (one by one or in bulk by filter), with a dry run.

Replaying puts the verbatim message back on its consumer's queue with a fresh attempt count and marks
the dead letter ``replayed``. If it fails again it becomes a new dead letter; the old one keeps its
history. A dry run changes nothing and says, for each letter, whether it would decode now and whether
its consumer still exists.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, func, select, update

from ordersync.domain.clock import Clock
from ordersync.domain.errors import Conflict, NotFound
from ordersync.messaging.registry import DecodeError, Registry, decode
from ordersync.messaging.transport import Transport
from ordersync.ports.deadletters import ReplayItem
from ordersync.ports.store import UnitOfWork as PortUnitOfWork
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters
from ordersync.store.uow import UnitOfWork


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to select. ``error`` matches a substring of the error text."""

    status: str | None = "dead"
    consumer: str | None = None
    type: str | None = None
    reason: str | None = None
    error: str | None = None
    correlation_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    ids: tuple[str, ...] = ()

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = dead_letters.c
        if self.ids:
            query = query.where(c.id.in_(self.ids))
        if self.status:
            query = query.where(c.status == self.status)
        if self.consumer:
            query = query.where(c.consumer == self.consumer)
        if self.type:
            query = query.where(c.type == self.type)
        if self.reason:
            query = query.where(c.reason == self.reason)
        if self.error:
            query = query.where(c.error.contains(self.error, autoescape=True))
        if self.correlation_id:
            query = query.where(c.correlation_id == self.correlation_id)
        if self.since:
            query = query.where(c.dead_at >= self.since)
        if self.until:
            query = query.where(c.dead_at < self.until)
        return query


@dataclass(frozen=True)
class DeadLetter:
    id: str
    consumer: str
    message_id: str | None
    type: str | None
    correlation_id: str | None
    reason: str
    error: str
    attempts: int
    history: list[dict[str, Any]]
    dead_at: dt.datetime
    status: str
    replay_count: int
    replayed_at: dt.datetime | None
    body: str

    @classmethod
    def from_row(cls, row: Any) -> DeadLetter:
        return cls(
            id=row["id"], consumer=row["consumer"], message_id=row["message_id"], type=row["type"],
            correlation_id=row["correlation_id"], reason=row["reason"], error=row["error"],
            attempts=row["attempts"], history=json.loads(row["history"]), dead_at=row["dead_at"],
            status=row["status"], replay_count=row["replay_count"], replayed_at=row["replayed_at"],
            body=row["body"],
        )


@dataclass
class ReplayReport:
    dry_run: bool
    items: list[ReplayItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)


class DeadLetterService:
    def __init__(self, db: Database, transport: Transport, registry: Registry, clock: Clock) -> None:
        self.db = db
        self.transport = transport
        self.registry = registry
        self.clock = clock

    def list(self, flt: DeadLetterFilter = DeadLetterFilter(), limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        query = flt.apply(select(dead_letters)).order_by(dead_letters.c.dead_at.desc(), dead_letters.c.id)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        return [DeadLetter.from_row(r) for r in rows]

    def count(self, flt: DeadLetterFilter = DeadLetterFilter()) -> int:
        with self.db.read() as conn:
            return int(conn.execute(flt.apply(select(func.count()).select_from(dead_letters))).scalar_one())

    def get(self, letter_id: str) -> DeadLetter:
        with self.db.read() as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).mappings().first()
        if row is None:
            raise NotFound(f"dead letter {letter_id} not found")
        return DeadLetter.from_row(row)

    def replay(self, flt: DeadLetterFilter, *, dry_run: bool, limit: int = 10_000) -> ReplayReport:
        """Replay every dead letter matching ``flt`` (only ``dead`` ones unless the filter says else)."""
        report = ReplayReport(dry_run=dry_run)
        letters = self.list(flt, limit=limit)
        for letter in letters:
            report.items.append(
                ReplayItem(letter.id, letter.consumer, letter.type, letter.correlation_id, self._outlook(letter))
            )
        if dry_run or not letters:
            return report
        now = self.clock.now()
        with self.db.write() as conn:
            for letter in letters:
                if letter.consumer in self.registry:
                    self._requeue(conn, letter, now)
        return report

    def replay_in(self, uow: PortUnitOfWork, letter_id: str) -> ReplayItem:
        """Replay one dead letter inside the caller's transaction, so that a workbench action commits
        the replay together with the case it resolves. Raises NotFound, or Conflict if the letter is no
        longer dead or its consumer does not run in this process."""
        if not isinstance(uow, UnitOfWork):
            raise TypeError(f"dead letters are replayed within a transaction of their own store, not {uow!r}")
        conn = uow.conn
        row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).mappings().first()
        if row is None:
            raise NotFound(f"dead letter {letter_id} not found")
        letter = DeadLetter.from_row(row)
        if letter.status != "dead":
            raise Conflict(f"dead letter {letter_id} is {letter.status}, not dead: replayed already")
        outlook = self._outlook(letter)
        if letter.consumer not in self.registry:
            raise Conflict(f"dead letter {letter_id}: {outlook}")
        self._requeue(conn, letter, self.clock.now())
        return ReplayItem(letter.id, letter.consumer, letter.type, letter.correlation_id, outlook)

    def _requeue(self, conn: Connection, letter: DeadLetter, now: dt.datetime) -> None:
        self.transport.redeliver(conn, letter.consumer, letter.body, letter.message_id, letter.correlation_id, None,
                                 now)
        conn.execute(
            update(dead_letters)
            .where(dead_letters.c.id == letter.id)
            .values(status="replayed", replay_count=dead_letters.c.replay_count + 1, replayed_at=now)
        )

    def _outlook(self, letter: DeadLetter) -> str:
        if letter.consumer not in self.registry:
            return f"skipped: consumer {letter.consumer!r} is not registered in this process"
        try:
            decode(letter.body)
        except DecodeError as exc:
            return f"would fail again at once ({exc.reason})"
        return "will run"
