"""EDI interchanges in the store: kept verbatim first, then found again by sender and control number
(duplicates within a partner's window), their state, and gapless control numbers per partner."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ordersync.store.schema import edi_control_numbers, edi_interchanges, edi_orders
from ordersync.store.sql import insert_ignore

#: states of an interchange that make a later one with the same sender and control number a duplicate
COUNTED = ("received", "processed", "unsupported", "orders_rejected")


def record_interchange(conn: Connection, *, interchange_id: str, direction: str, raw: bytes, sender: str,
                       receiver: str, control_number: str, partner: str | None, state: str, at: dt.datetime,
                       detail: str = "", **more: Any) -> None:
    """Keep ``raw`` exactly as it came (or went), with what could be read of its envelope; ``more``:
    document, reply_to, business_key, order_id, group_control, set_control, transport, ack_due_at ..."""
    conn.execute(edi_interchanges.insert().values(
        id=interchange_id, direction=direction, partner=partner, sender=sender[:40], receiver=receiver[:40],
        control_number=control_number[:20], raw=raw, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
        state=state, detail=detail, received_at=at, **more))


def has_business_key(conn: Connection, key: str) -> bool:
    """Whether the document for this business fact (855:<order> ...) was written already."""
    return conn.execute(select(edi_interchanges.c.id).where(edi_interchanges.c.business_key == key)).first() \
        is not None


def record_order(conn: Connection, *, order_id: str, partner: str, po_number: str, interchange_id: str,
                 set_control: str, at: dt.datetime) -> None:
    """Remember which purchase order an EDI order came from (the first time it came)."""
    insert_ignore(conn, edi_orders, {"order_id": order_id, "partner": partner, "po_number": po_number,
                                     "interchange_id": interchange_id, "set_control": set_control,
                                     "received_at": at}, ["order_id"])


def order_source(conn: Connection, order_id: str) -> RowMapping | None:
    return conn.execute(select(edi_orders).where(edi_orders.c.order_id == order_id)).mappings().first()


def order_of_po(conn: Connection, partner: str, po_number: str) -> RowMapping | None:
    """The EDI order ``partner`` placed under ``po_number`` (a PO number is unique per buyer only)."""
    return conn.execute(select(edi_orders).where(edi_orders.c.partner == partner,
                                                 edi_orders.c.po_number == po_number)).mappings().first()


def claim(conn: Connection, interchange_id: str, *, state: str, now: dt.datetime, until: dt.datetime) -> bool:
    """Take ``interchange_id`` (in ``state``) for work until ``until`` unless someone else holds it."""
    c = edi_interchanges.c
    result = conn.execute(update(edi_interchanges).where(
        c.id == interchange_id, c.state == state, or_(c.lease_until.is_(None), c.lease_until < now),
    ).values(lease_until=until))
    return result.rowcount == 1


def release_leases(conn: Connection) -> int:
    """Forget every lease (a process that held one was killed): for a store only one worker uses."""
    return conn.execute(update(edi_interchanges).where(edi_interchanges.c.lease_until.is_not(None))
                        .values(lease_until=None)).rowcount


def waiting_inbound(conn: Connection, now: dt.datetime, limit: int = 20) -> list[str]:
    """Incoming interchanges kept and not yet processed (and not held by a live processor)."""
    c = edi_interchanges.c
    rows = conn.execute(select(c.id).where(
        c.direction == "in", c.state == "received", or_(c.lease_until.is_(None), c.lease_until < now),
    ).order_by(c.received_at).limit(limit))
    return [str(r[0]) for r in rows]


def queued_outbound(conn: Connection, partners: list[str], now: dt.datetime, limit: int) -> list[RowMapping]:
    """Outgoing interchanges waiting to be sent to these partners, not leased by a sender, the oldest
    first (a partner gets its documents in the order they were written: the caller stops at the first
    one of a partner that is not due yet)."""
    c = edi_interchanges.c
    if not partners:
        return []
    return list(conn.execute(select(c.id, c.partner, c.raw, c.document, c.attempts, c.control_number,
                                    c.message_id, c.order_id, c.next_attempt_at, c.last_error).where(
        c.direction == "out", c.state == "queued", c.partner.in_(partners),
        or_(c.lease_until.is_(None), c.lease_until < now),
    ).order_by(c.received_at, c.control_number).limit(limit)).mappings())


def update_interchange(conn: Connection, interchange_id: str, **values: Any) -> None:
    conn.execute(update(edi_interchanges).where(edi_interchanges.c.id == interchange_id).values(**values))


def acknowledge(conn: Connection, *, partner: str, group_control: str, set_control: str | None, state: str,
                detail: str, at: dt.datetime) -> list[RowMapping]:
    """Mark what we sent ``partner`` in group ``group_control`` (one set, or all of it) with the verdict
    of their functional acknowledgment; returns the documents it matched."""
    c = edi_interchanges.c
    where = [c.direction == "out", c.partner == partner, c.group_control == group_control,
             c.ack_state.in_(("awaiting", "overdue"))]
    if set_control is not None:
        where.append(c.set_control == set_control)
    rows = list(conn.execute(select(c.id, c.document, c.order_id, c.control_number, c.set_control)
                             .where(and_(*where))).mappings())
    if rows:
        conn.execute(update(edi_interchanges).where(c.id.in_([r["id"] for r in rows])).values(
            ack_state=state, last_error=detail[:2000], processed_at=at))
    return rows


def overdue(conn: Connection, now: dt.datetime, limit: int = 100) -> list[RowMapping]:
    """What we sent whose acknowledgment is past due."""
    c = edi_interchanges.c
    return list(conn.execute(select(c.id, c.partner, c.document, c.order_id, c.control_number, c.ack_due_at).where(
        c.direction == "out", c.ack_state == "awaiting", c.ack_due_at < now).limit(limit)).mappings())


def earlier_interchange(conn: Connection, *, direction: str, sender: str, control_number: str, since: dt.datetime,
                        exclude: str) -> str | None:
    """The id of an interchange from ``sender`` with ``control_number`` received since ``since`` and
    taken (not itself a duplicate or rejected), other than ``exclude``: a later one is a duplicate."""
    row = conn.execute(select(edi_interchanges.c.id).where(
        edi_interchanges.c.direction == direction, edi_interchanges.c.sender == sender,
        edi_interchanges.c.control_number == control_number, edi_interchanges.c.received_at >= since,
        edi_interchanges.c.state.in_(COUNTED), edi_interchanges.c.id != exclude,
    ).order_by(edi_interchanges.c.received_at).limit(1)).first()
    return str(row[0]) if row else None


def set_state(conn: Connection, interchange_id: str, state: str, *, at: dt.datetime, detail: str = "",
              partner: str | None = None) -> None:
    values: dict[str, object] = {"state": state, "detail": detail, "processed_at": at}
    if partner is not None:
        values["partner"] = partner
    conn.execute(update(edi_interchanges).where(edi_interchanges.c.id == interchange_id).values(**values))


def raw_interchange(conn: Connection, interchange_id: str) -> bytes | None:
    value = conn.execute(select(edi_interchanges.c.raw).where(edi_interchanges.c.id == interchange_id)).scalar()
    return bytes(value) if value is not None else None


def next_control_number(conn: Connection, partner: str, kind: str) -> int:
    """The next control number of ``kind`` (isa, gs, st) for ``partner``, in the caller's transaction:
    gapless (a rolled-back transaction gives its number back) and never the same twice (the row lock
    holds concurrent senders until this transaction ends)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(edi_control_numbers).values(partner=partner, kind=kind, last=1)
    stmt = stmt.on_conflict_do_update(index_elements=["partner", "kind"],
                                      set_={"last": edi_control_numbers.c.last + 1})
    return int(conn.execute(stmt.returning(edi_control_numbers.c.last)).scalar_one())


def resend(conn: Connection, interchange_id: str) -> RowMapping | None:
    """Put an outgoing interchange back in the queue, same bytes and control numbers (a resend, not a
    new document): a dead letter after its cause was fixed, or one the partner says it never got."""
    c = edi_interchanges.c
    row = conn.execute(select(c.id, c.state, c.document, c.ack_state).where(
        c.id == interchange_id, c.direction == "out")).mappings().first()
    if row is None or row["state"] not in ("sent", "dead_letter", "queued"):
        return row
    values: dict[str, Any] = {"state": "queued", "attempts": 0, "next_attempt_at": None, "lease_until": None,
                              "last_error": ""}
    if row["ack_state"] in ("overdue", "rejected"):
        values["ack_state"] = "awaiting"
    conn.execute(update(edi_interchanges).where(c.id == interchange_id).values(**values))
    return row


def list_interchanges(conn: Connection, *, partner: str | None = None, state: str | None = None,
                      direction: str | None = None, limit: int = 100) -> list[RowMapping]:
    """The latest interchanges, newest first, without their bytes."""
    c = edi_interchanges.c
    query = select(c.id, c.direction, c.partner, c.sender, c.receiver, c.control_number, c.document, c.state,
                   c.size, c.received_at, c.processed_at, c.detail, c.ack_state, c.ack_due_at, c.attempts,
                   c.last_error, c.order_id, c.transport, c.reply_to)
    if partner:
        query = query.where(c.partner == partner)
    if state:
        query = query.where(c.state == state)
    if direction:
        query = query.where(c.direction == direction)
    return list(conn.execute(query.order_by(c.received_at.desc(), c.control_number.desc()).limit(limit)).mappings())


def partner_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per partner: interchanges received, written for them, sent, queued, dead letters, acknowledgments awaited,
    overdue and rejected, and what was kept without being processed."""
    from sqlalchemy import case, func

    c = edi_interchanges.c

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = conn.execute(select(
        c.partner, count(c.direction == "in"), count(c.direction == "out"),
        count(and_(c.direction == "out", c.state == "sent")), count(and_(c.direction == "out", c.state == "queued")),
        count(c.state == "dead_letter"),
        count(c.ack_state == "awaiting"), count(c.ack_state == "overdue"), count(c.ack_state == "rejected"),
        count(and_(c.direction == "in", c.state == "received")),
    ).group_by(c.partner)).all()
    keys = ("received", "written", "sent", "queued", "dead_letters", "awaiting_ack", "overdue_ack", "rejected_ack",
            "unprocessed")
    return {str(r[0] or ""): {k: int(v or 0) for k, v in zip(keys, r[1:], strict=True)} for r in rows}
