"""Contracts in the store: drift counted per (source, field, kind), and quarantined payloads kept with
their raw body until a replay takes them or a person discards them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, RowMapping, select, update

from ordersync.canonical.envelope import new_id
from ordersync.domain.drift import Finding
from ordersync.store.schema import payload_drift, quarantined_payloads
from ordersync.store.sql import insert_ignore

HELD = "held"
REPLAYED = "replayed"
DISCARDED = "discarded"
STATUSES = (HELD, REPLAYED, DISCARDED)


# -- drift --------------------------------------------------------------------------------------------

def count_drift(conn: Connection, source: str, findings: Iterable[Finding], at: dt.datetime) -> list[Finding]:
    """Count each finding of ``source``; returns those seen for the first time (a case is due for them)."""
    new = []
    c = payload_drift.c
    for f in findings:
        values = {"source": source, "field": f.field[:300], "kind": f.kind, "expected": f.expected[:120],
                  "seen": f.seen[:20], "count": 1, "first_seen_at": at, "last_seen_at": at, "sample": f.sample}
        if insert_ignore(conn, payload_drift, values, ["source", "field", "kind"]):
            new.append(f)
            continue
        conn.execute(update(payload_drift)
                     .where(c.source == source, c.field == f.field[:300], c.kind == f.kind)
                     .values(count=c.count + 1, last_seen_at=at, seen=f.seen[:20], sample=f.sample))
    return new


def link_case(conn: Connection, source: str, finding: Finding, case_id: str) -> None:
    c = payload_drift.c
    conn.execute(update(payload_drift).where(c.source == source, c.field == finding.field[:300],
                                             c.kind == finding.kind).values(case_id=case_id))


def drift(conn: Connection, source: str | None = None, limit: int = 500) -> list[RowMapping]:
    """Drift, the most recently seen first."""
    query = select(payload_drift).order_by(payload_drift.c.last_seen_at.desc(), payload_drift.c.field).limit(limit)
    if source:
        query = query.where(payload_drift.c.source == source)
    return list(conn.execute(query).mappings())


# -- quarantine ---------------------------------------------------------------------------------------

def keep(conn: Connection, *, source: str, body: bytes, body_sha256: str, context: dict[str, Any], reason: str,
         at: dt.datetime) -> tuple[str, bool]:
    """Keep a payload that cannot be processed. Returns (its id, whether this was its first delivery); a
    redelivery of the same body is counted on the row it found (and held again if it was discarded)."""
    entry_id = new_id()
    first = insert_ignore(conn, quarantined_payloads, {
        "id": entry_id, "source": source, "body_sha256": body_sha256, "body": body,
        "context": json.dumps(context, sort_keys=True), "reason": reason, "received_at": at, "deliveries": 1,
        "status": HELD, "replay_count": 0, "outcome": ""}, ["source", "body_sha256"])
    if first:
        return entry_id, True
    c = quarantined_payloads.c
    where = (c.source == source) & (c.body_sha256 == body_sha256)
    conn.execute(update(quarantined_payloads).where(where).values(deliveries=c.deliveries + 1, reason=reason))
    return str(conn.execute(select(c.id).where(where)).scalar_one()), False


def link_quarantine_case(conn: Connection, entry_id: str, case_id: str) -> None:
    conn.execute(update(quarantined_payloads).where(quarantined_payloads.c.id == entry_id).values(case_id=case_id))


def quarantined(conn: Connection, status: str | None = HELD, source: str | None = None,
                limit: int = 500) -> list[RowMapping]:
    """Quarantined payloads (``status`` None: all), the newest first."""
    c = quarantined_payloads.c
    query = select(quarantined_payloads).order_by(c.received_at.desc(), c.id).limit(limit)
    if status:
        query = query.where(c.status == status)
    if source:
        query = query.where(c.source == source)
    return list(conn.execute(query).mappings())


def entry(conn: Connection, entry_id: str, lock: bool = False) -> RowMapping | None:
    query = select(quarantined_payloads).where(quarantined_payloads.c.id == entry_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def settle(conn: Connection, entry_id: str, *, status: str, outcome: str, at: dt.datetime, replay: bool) -> None:
    """Record what a replay (``replay``) or a discard did to the entry: its status and what was said."""
    c = quarantined_payloads.c
    values: dict[str, Any] = {"status": status, "outcome": outcome[:4000]}
    if replay:
        values.update(replay_count=c.replay_count + 1, replayed_at=at)
    conn.execute(update(quarantined_payloads).where(c.id == entry_id).values(**values))
