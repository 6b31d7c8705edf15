"""Exception case repository, and the operators' saved filters of the case queue and the order search."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase
from ordersync.domain.errors import NotFound
from ordersync.store.schema import cases, saved_filters

OPEN_STATES = (CaseState.OPEN.value, CaseState.IN_PROGRESS.value, CaseState.ESCALATED.value)


class CaseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, case: ExceptionCase) -> None:
        self.conn.execute(cases.insert().values(**_row(case)))

    def save(self, case: ExceptionCase) -> None:
        row = _row(case)
        del row["id"]
        self.conn.execute(update(cases).where(cases.c.id == case.id).values(**row))

    def get(self, case_id: str) -> ExceptionCase:
        body = self.conn.execute(select(cases.c.body).where(cases.c.id == case_id)).scalar_one_or_none()
        if body is None:
            raise NotFound(f"case {case_id} not found")
        return ExceptionCase.model_validate_json(body)

    def open_for_order(self, order_id: str, case_type: CaseType | None = None) -> list[ExceptionCase]:
        query = select(cases.c.body).where(cases.c.order_id == order_id, cases.c.state != CaseState.RESOLVED.value)
        if case_type is not None:
            query = query.where(cases.c.type == case_type.value)
        return [ExceptionCase.model_validate_json(b) for b in self.conn.execute(query.order_by(cases.c.opened_at))
                .scalars()]

    def overdue(self, now: dt.datetime, limit: int) -> list[ExceptionCase]:
        """Open cases past their due time, the longest overdue first."""
        query = (select(cases.c.body).where(cases.c.state.in_(OPEN_STATES), cases.c.due_at < now)
                 .order_by(cases.c.due_at).limit(limit))
        return [ExceptionCase.model_validate_json(b) for b in self.conn.execute(query).scalars()]

    def for_order(self, order_id: str) -> list[ExceptionCase]:
        rows = self.conn.execute(select(cases.c.body).where(cases.c.order_id == order_id).order_by(cases.c.opened_at))
        return [ExceptionCase.model_validate_json(b) for b in rows.scalars()]


def _row(case: ExceptionCase) -> dict[str, object]:
    return {
        "id": case.id,
        "type": case.type.value,
        "state": case.state.value,
        "order_id": case.order_id,
        "account_id": case.account_id,
        "owner_team": case.owner_team,
        "owner_level": case.owner_level,
        "due_at": case.due_at,
        "opened_at": case.opened_at,
        "resolved_at": case.resolved_at,
        "dead_letter_id": case.dead_letter_id,
        "body": case.model_dump_json(),
    }


# -- saved filters ---------------------------------------------------------------------------------------

#: the lists a filter can be saved for
FILTER_PAGES = ("cases", "orders")
MAX_FILTERS = 30  # per operator and page


@dataclass(frozen=True)
class SavedFilter:
    id: str
    page: str
    name: str
    query: str  # the page's query string, without "?"


def saved(conn: Connection, owner: str, page: str) -> list[SavedFilter]:
    """The operator's filters of ``page``, by name."""
    f = saved_filters.c
    rows = conn.execute(select(f.id, f.page, f.name, f.query).where(f.owner == owner, f.page == page)
                        .order_by(f.name).limit(MAX_FILTERS))
    return [SavedFilter(*r) for r in rows]


def save_filter(conn: Connection, owner: str, page: str, name: str, query: str, at: dt.datetime) -> bool:
    """Keep the filter under ``name`` (saving a name again replaces its query); False when the operator
    already has :data:`MAX_FILTERS` others for the page."""
    f = saved_filters.c
    names = set(conn.execute(select(f.name).where(f.owner == owner, f.page == page)).scalars())
    if name not in names and len(names) >= MAX_FILTERS:
        return False
    if name in names:
        conn.execute(update(saved_filters).where(f.owner == owner, f.page == page, f.name == name)
                     .values(query=query, created_at=at))
    else:
        conn.execute(saved_filters.insert().values(id=uuid.uuid4().hex, owner=owner, page=page, name=name,
                                                   query=query, created_at=at))
    return True


def delete_filter(conn: Connection, owner: str, filter_id: str) -> bool:
    """Remove one of the operator's filters (another's is not theirs to remove: False)."""
    f = saved_filters.c
    return bool(conn.execute(delete(saved_filters).where(f.id == filter_id, f.owner == owner)).rowcount)
