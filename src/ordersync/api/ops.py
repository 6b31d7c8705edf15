"""``/v1/ops``: the exception workbench and SLA clocks, for the people who run the hub.

Scope ``ops`` (or ``admin``). An unbound key sees every account; a key bound to an account sees that
account's cases and clocks only (another account's case answers 404, as everywhere in /v1).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from ordersync.api.auth import require
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal, Scope
from ordersync.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from ordersync.api.params import IsoDateTime, Text
from ordersync.api.problems import Problem
from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase, OrderState
from ordersync.config import Settings
from ordersync.domain.cases import is_overdue
from ordersync.domain.errors import NotFound
from ordersync.domain.order.parts import load_parts
from ordersync.domain.sla import ClockSummary, SlaClock, SlaThresholds
from ordersync.flows.services.workbench import ActionNotAllowed, CaseAction, Workbench, allowed_actions
from ordersync.reads.pages import older_than
from ordersync.reads.sla import GroupBy, SlaScope, report
from ordersync.runtime.hub import Hub
from ordersync.store.schema import cases, orders

router = APIRouter(prefix="/v1/ops", tags=["operations"])

Ops = Annotated[Principal, require(Scope.OPS)]
CaseId = Annotated[str, Path(max_length=64)]
OPEN_STATES = (CaseState.OPEN.value, CaseState.IN_PROGRESS.value, CaseState.ESCALATED.value)


def _account(principal: Principal, requested: str | None) -> str | None:
    """The account a request is limited to: a bound key's own (naming another is a 404), else the one
    an unbound key names, else None (every account)."""
    if principal.account_id is not None:
        if requested is not None and requested != principal.account_id:
            raise Problem(404, "Not found", f"account {requested} not found")
        return principal.account_id
    return requested


def _workbench(hub: Hub) -> Workbench:
    return hub.workbench


# -- cases --------------------------------------------------------------------------------------------

class CaseSummary(BaseModel):
    id: str
    type: CaseType
    state: CaseState
    order_id: str | None
    account_id: str | None
    owner_team: str
    owner_level: int
    summary: str
    next_action: str
    due_at: dt.datetime | None
    opened_at: dt.datetime
    resolved_at: dt.datetime | None
    dead_letter_id: str | None
    overdue: bool = Field(description="open and past its due time")


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None = Field(description="pass as ``cursor`` for the next page; null on the last page")


class HistoryEntry(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    comment: str


class OrderBrief(BaseModel):
    id: str
    channel: str
    external_order_number: str
    account_id: str
    state: OrderState
    received_at: dt.datetime
    updated_at: dt.datetime
    total: str | None
    currency: str | None
    hold: dict[str, Any] | None = Field(description="the hold stopping the order, if any")


class DeadLetterBrief(BaseModel):
    id: str
    consumer: str
    type: str | None
    reason: str
    error: str
    attempts: int
    status: str
    dead_at: dt.datetime
    replay_count: int
    replayed_at: dt.datetime | None


class CaseDetail(CaseSummary):
    runbook: str
    history: list[HistoryEntry]
    allowed_actions: list[str] = Field(description="the actions this case takes while it is open")
    order: OrderBrief | None
    dead_letter: DeadLetterBrief | None


def _summary(case: ExceptionCase, now: dt.datetime) -> dict[str, Any]:
    fields = case.model_dump(exclude={"runbook", "history"})
    return {**fields, "overdue": is_overdue(case, now)}


def _order_brief(conn: Connection, order_id: str | None) -> OrderBrief | None:
    if order_id is None:
        return None
    row = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
    if row is None:
        return None
    body, hold = json.loads(row["body"]), load_parts(row["data"]).hold
    return OrderBrief(id=row["id"], channel=row["channel"], external_order_number=row["external_order_number"],
                      account_id=row["account_id"], state=OrderState(row["state"]), received_at=row["received_at"],
                      updated_at=row["updated_at"], total=row["total"], currency=body.get("currency"),
                      hold={"case_id": hold.case_id, "type": hold.type.value, "reason": hold.reason} if hold else None)


def _detail(hub: Hub, case: ExceptionCase) -> CaseDetail:
    with hub.db.read() as conn:
        order = _order_brief(conn, case.order_id)
    letter = None
    if case.dead_letter_id is not None:
        try:
            found = hub.dead_letters.get(case.dead_letter_id)
        except NotFound:
            found = None
        if found is not None:
            letter = DeadLetterBrief(id=found.id, consumer=found.consumer, type=found.type, reason=found.reason,
                                     error=found.error, attempts=found.attempts, status=found.status,
                                     dead_at=found.dead_at, replay_count=found.replay_count,
                                     replayed_at=found.replayed_at)
    open_ = case.state is not CaseState.RESOLVED
    return CaseDetail(**_summary(case, hub.clock.now()), runbook=case.runbook,
                      history=[HistoryEntry(**e.model_dump()) for e in case.history],
                      allowed_actions=list(allowed_actions(case.type)) if open_ else [], order=order,
                      dead_letter=letter)


@router.get("/cases", response_model=CasePage)
def list_cases(
    hub: HubDep,
    principal: Ops,
    type: CaseType | None = None,
    state: CaseState | None = None,
    owner_team: Text = None,
    account_id: Text = None,
    order_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    overdue: Annotated[bool | None, Query(description="true: open cases past their due time; false: the others")]
    = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> CasePage:
    """Cases, newest first, with filters; follow ``next_cursor`` for older ones."""
    account = _account(principal, account_id)
    after = decode_cursor(cursor, [dt.datetime, str]) if cursor else None
    now = hub.clock.now()
    c = cases.c
    query = select(c.body, c.opened_at, c.id)
    for column, value in ((c.type, type.value if type else None), (c.state, state.value if state else None),
                          (c.owner_team, owner_team), (c.account_id, account), (c.order_id, order_id)):
        if value is not None:
            query = query.where(column == value)
    late = c.state.in_(OPEN_STATES) & (c.due_at < now)
    if overdue is not None:
        query = query.where(late if overdue else ~late | c.due_at.is_(None))
    if after is not None:
        query = query.where(older_than([c.opened_at, c.id], after))
    with hub.db.read() as conn:
        rows = conn.execute(query.order_by(c.opened_at.desc(), c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [CaseSummary(**_summary(ExceptionCase.model_validate_json(r.body), now)) for r in rows]
    return CasePage(items=items, next_cursor=encode_cursor([rows[-1].opened_at, rows[-1].id]) if more else None)


@router.get("/cases/{case_id}", response_model=CaseDetail)
def get_case(case_id: CaseId, hub: HubDep, principal: Ops) -> CaseDetail:
    """One case with its history, runbook, the actions it takes, its order and its dead letter."""
    case = _workbench(hub).case(case_id, principal.account_id)
    return _detail(hub, case)


class ActionIn(BaseModel):
    """A workbench action. ``owner_team`` is for ``assign``, ``line_no`` for ``cancel_line``, ``amount`` for
    ``raise_limit`` (the credit limit to set in the ERP) and ``credit`` (default: what the buyer disputed);
    ``credit`` and ``reject`` need an ``answer`` (what the buyer is told); ``resolve`` needs a ``comment``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    action: str = Field(min_length=1, max_length=40, description="one of the case's ``allowed_actions``")
    actor: str | None = Field(default=None, min_length=1, max_length=120,
                              description="deprecated and not trusted: the action is recorded under the API "
                                          "key that made it; a name given here is kept in the history's "
                                          "comment as what the caller stated, never as the actor")
    comment: str = Field(default="", max_length=2000)
    owner_team: str | None = Field(default=None, min_length=1, max_length=64)
    line_no: int | None = Field(default=None, ge=1, le=9999)
    amount: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=2)
    answer: str = Field(default="", max_length=2000, description="what the buyer is told (credit, reject)")


class ActionOut(BaseModel):
    case: CaseDetail
    result: dict[str, Any] = Field(description="what the action did, by action (e.g. an amendment's outcome)")


@router.post("/cases/{case_id}/actions", response_model=ActionOut,
             responses={409: {"description": "the case is resolved, or its order is not in a state for the action"}})
def act(case_id: CaseId, body: ActionIn, hub: HubDep, principal: Ops) -> ActionOut:
    """Act on a case; the effect goes through the flow that owns it and the action is recorded in the
    case's history. An action the case type does not take answers 422 with ``allowed``."""
    comment = body.comment
    if body.actor is not None:  # unverifiable: kept as a statement, the key stays the actor
        comment = f"[stated by the caller: {body.actor}] {comment}".strip()
    action = CaseAction(action=body.action, actor=f"key:{principal.key_id} ({principal.name})", comment=comment,
                        owner_team=body.owner_team, line_no=body.line_no, amount=body.amount, answer=body.answer)
    try:
        outcome = _workbench(hub).act(case_id, action, account_id=principal.account_id)
    except ActionNotAllowed as exc:
        raise Problem(422, "Action not allowed", str(exc), type_="https://ordersync.dev/problems/case-action",
                      allowed=list(exc.allowed), errors=[{"location": "body.action", "message": str(exc)}]) from exc
    return ActionOut(case=_detail(hub, outcome.case), result=outcome.result)


# -- SLA clocks ----------------------------------------------------------------------------------------

class ClockStats(BaseModel):
    threshold_seconds: float
    count: int = Field(description="clocks that stopped (in the percentiles)")
    p50: float | None
    p90: float | None
    p99: float | None
    breached: int = Field(description="stopped clocks that ran longer than the threshold")
    open: int = Field(description="clocks still running")
    open_breached: int = Field(description="running clocks already older than the threshold")
    unmeasured: int = Field(description="clocks whose start is known to the day only (not timed)")


class SlaGroup(BaseModel):
    group: str = Field(description="the account, the channel, or ``all``")
    clocks: dict[SlaClock, ClockStats]


class SlaReport(BaseModel):
    since: dt.datetime
    as_of: dt.datetime
    group_by: GroupBy | None
    groups: list[SlaGroup]


def thresholds(settings: Settings) -> SlaThresholds:
    s = settings.sla
    return SlaThresholds(acknowledgment=s.ack_seconds, fulfillment=s.fulfillment_seconds,
                         invoice_sync=s.invoice_sync_seconds)


def _stats(summary: ClockSummary) -> ClockStats:
    return ClockStats(**vars(summary))


def _since(since: dt.datetime | None, default: dt.datetime) -> dt.datetime:
    """``since`` in UTC (a time without an offset is UTC); 422 for a time UTC cannot hold."""
    if since is None:
        return default
    try:
        return (since if since.tzinfo is not None else since.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError as exc:
        raise Problem(422, "Request is not valid", f"since {since.isoformat()} is out of range",
                      type_="https://ordersync.dev/problems/invalid-request",
                      errors=[{"location": "query.since", "message": "out of range"}]) from exc


@router.get("/sla", response_model=SlaReport)
def sla(
    hub: HubDep,
    principal: Ops,
    since: Annotated[IsoDateTime | None, Query(description="orders received from this time; default: "
                                                            "``[sla] window_seconds`` ago (a day)")] = None,
    group_by: GroupBy | None = None,
    account_id: Text = None,
) -> SlaReport:
    """SLA clocks (acknowledgment, fulfillment, invoice sync) of the orders received since ``since``:
    p50/p90/p99 in seconds and breach counts against the configured thresholds, per group."""
    now = hub.clock.now()
    since = _since(since, now - dt.timedelta(seconds=hub.settings.sla.window_seconds))
    scope = SlaScope(since=since, account_id=_account(principal, account_id), group_by=group_by)
    found = report(hub.db, scope, thresholds(hub.settings), now)
    groups = [SlaGroup(group=g, clocks={clock: _stats(s) for clock, s in by_clock.items()})
              for g, by_clock in found.items()]
    return SlaReport(since=since, as_of=now, group_by=group_by, groups=groups)
