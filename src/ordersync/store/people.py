"""People in the store: staff and buyers who sign in to the pages (see :mod:`ordersync.web.people` for
what they may do and how they sign in). Plain reads and writes; the rules live above."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select, update

from ordersync.store.schema import people


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(people.insert().values(**row))


def by_id(conn: Connection, person_id: str) -> RowMapping | None:
    return conn.execute(select(people).where(people.c.id == person_id)).mappings().first()


def by_email(conn: Connection, email: str) -> RowMapping | None:
    return conn.execute(select(people).where(func.lower(people.c.email) == email.lower())).mappings().first()


def by_identity(conn: Connection, issuer: str, subject: str) -> RowMapping | None:
    c = people.c
    return conn.execute(select(people).where(c.oidc_issuer == issuer, c.oidc_subject == subject)).mappings().first()


def by_invite(conn: Connection, invite_hash: str) -> RowMapping | None:
    return conn.execute(select(people).where(people.c.invite_hash == invite_hash)).mappings().first()


def listed(conn: Connection, *, kind: str | None = None, account_id: str | None = None) -> list[RowMapping]:
    query = select(people).order_by(people.c.kind, people.c.account_id, people.c.name)
    if kind is not None:
        query = query.where(people.c.kind == kind)
    if account_id is not None:
        query = query.where(people.c.account_id == account_id)
    return list(conn.execute(query).mappings())


def change(conn: Connection, person_id: str, now: dt.datetime, **values: Any) -> None:
    conn.execute(update(people).where(people.c.id == person_id).values(updated_at=now, **values))


def end_sessions(conn: Connection, person_id: str, now: dt.datetime) -> None:
    """Every session the person has ends (their cookies carry the old epoch)."""
    conn.execute(update(people).where(people.c.id == person_id)
                 .values(session_epoch=people.c.session_epoch + 1, updated_at=now))
