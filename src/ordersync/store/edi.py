"""EDI interchanges in the store: kept verbatim first, then found again by sender and control number
(duplicates within a partner's window), their state, and gapless control numbers per partner."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ordersync.store.schema import edi_control_numbers, edi_interchanges

#: states of an interchange that make a later one with the same sender and control number a duplicate
COUNTED = ("received", "processed")


def record_interchange(conn: Connection, *, interchange_id: str, direction: str, raw: bytes, sender: str,
                       receiver: str, control_number: str, partner: str | None, state: str, at: dt.datetime,
                       detail: str = "") -> None:
    """Keep ``raw`` exactly as it came (or went), with what could be read of its envelope."""
    conn.execute(edi_interchanges.insert().values(
        id=interchange_id, direction=direction, partner=partner, sender=sender[:40], receiver=receiver[:40],
        control_number=control_number[:20], raw=raw, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
        state=state, detail=detail, received_at=at))


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
