"""Exception case repository."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select, update

from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase
from ordersync.domain.errors import NotFound
from ordersync.store.schema import cases

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
