"""What the operations dashboard shows, read from the store and the ERP gates (no HTML here).

One module for the dashboard's queries (about 450 lines): each page reads a few of them, and keeping them
together keeps every figure's definition in one place for all pages. Every figure is read when the page
is asked for, from the same tables the API and ``/metrics`` read, so
each process of a deployment shows the same numbers. Queries are bounded: counts are grouped in the
database, lists are capped, the throughput chart is one query with a sum per hour.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase, OrderState
from ordersync.config import Settings
from ordersync.domain.order.parts import load_parts
from ordersync.domain.sla import ClockSummary, SlaClock, SlaThresholds
from ordersync.messaging.deadletters import DeadLetter
from ordersync.reads.sla import SlaScope, report
from ordersync.runtime.hub import Hub
from ordersync.store.schema import (
    alert_notifications,
    cases,
    dead_letters,
    deliveries,
    order_transitions,
    orders,
    outbox,
    sync_state,
)

OPEN_CASE_STATES = (CaseState.OPEN.value, CaseState.IN_PROGRESS.value, CaseState.ESCALATED.value)
#: states an order leaves no more: no aging for them
TERMINAL = (OrderState.CLOSED, OrderState.CANCELLED, OrderState.REJECTED)
LIST_LIMIT = 200


def aware(at: Any) -> dt.datetime | None:
    """MIN() over a time column comes back as text on SQLite and naive on some drivers: UTC either way."""
    if at is None:
        return None
    value = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def age(now: dt.datetime, at: dt.datetime | None) -> str:
    """A short human age: ``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    if at is None:
        return ""
    return duration(max(0.0, (now - at).total_seconds()))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s" if s < 600 and s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


# -- pipeline ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StateRow:
    state: str
    count: int
    oldest_received: str  # age of the oldest order in the state ("" for terminal states)
    longest_unchanged: str  # age of the order in the state that has not changed the longest


def pipeline(conn: Connection, now: dt.datetime) -> list[StateRow]:
    """Orders per lifecycle state, in lifecycle order, with the aging of the states orders still leave."""
    o = orders.c
    grouped = {r[0]: (int(r[1]), aware(r[2])) for r in conn.execute(
        select(o.state, func.count(), func.min(o.updated_at)).group_by(o.state))}
    active = [s.value for s in OrderState if s not in TERMINAL and s.value in grouped]
    oldest = {r[0]: aware(r[1]) for r in conn.execute(
        select(o.state, func.min(o.received_at)).where(o.state.in_(active)).group_by(o.state))} if active else {}
    rows = []
    for s in OrderState:
        count, unchanged = grouped.get(s.value, (0, None))
        terminal = s in TERMINAL
        rows.append(StateRow(s.value, count, "" if terminal else age(now, oldest.get(s.value)),
                             "" if terminal else age(now, unchanged)))
    return rows


# -- throughput chart ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    start: dt.datetime
    count: int
    x: float
    y: float
    width: float
    height: float
    label: str  # the hour, on every third bar


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    top: int  # the count the chart's top line stands for
    total: int


CHART_W, CHART_H, AXIS = 720, 160, 18


def throughput(conn: Connection, now: dt.datetime, hours: int = 24) -> Chart:
    """Orders received per clock hour (UTC) over the last ``hours``, the current hour last, as bars of an
    SVG chart drawn by the template. One query: a conditional sum per hour over the range (index on
    ``received_at``), the same on SQLite and PostgreSQL."""
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - dt.timedelta(hours=hours - 1 - i) for i in range(hours)]
    ends = [*starts[1:], now + dt.timedelta(seconds=1)]
    received = orders.c.received_at
    sums = [func.sum(case((and_(received >= a, received < b), 1), else_=0)) for a, b in zip(starts, ends, strict=True)]
    row = conn.execute(select(*sums).where(received >= starts[0])).one()
    counts = [int(v or 0) for v in row]
    top = max(1, *counts)
    slot = CHART_W / hours
    plot = CHART_H - AXIS
    bars = [Bar(start=s, count=n, x=round(i * slot + 2, 1), y=round(plot - n / top * (plot - 4), 1),
                width=round(slot - 4, 1), height=round(n / top * (plot - 4), 1),
                label=s.strftime("%H:00") if i % 3 == 0 else "")
            for i, (s, n) in enumerate(zip(starts, counts, strict=True))]
    return Chart(bars=bars, width=CHART_W, height=CHART_H, top=top, total=sum(counts))


# -- SLA ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlaRow:
    clock: str
    threshold: str
    count: int
    p50: str
    p90: str
    p99: str
    breached: int
    open: int
    open_breached: int
    unmeasured: int


def thresholds(settings: Settings) -> SlaThresholds:
    s = settings.sla
    return SlaThresholds(acknowledgment=s.ack_seconds, fulfillment=s.fulfillment_seconds,
                         invoice_sync=s.invoice_sync_seconds)


def sla(hub: Hub, now: dt.datetime) -> tuple[dt.datetime, list[SlaRow]]:
    """The SLA clocks of the orders received in the ``[sla]`` window (what ``GET /v1/ops/sla`` reports)."""
    since = now - dt.timedelta(seconds=hub.settings.sla.window_seconds)
    limits = thresholds(hub.settings)
    found = report(hub.db, SlaScope(since=since), limits, now).get("all", {})
    rows = []
    for clock in SlaClock:
        s = found.get(clock) or ClockSummary(threshold_seconds=limits.of(clock))
        rows.append(SlaRow(clock.value, duration(s.threshold_seconds), s.count, duration(s.p50), duration(s.p90),
                           duration(s.p99), s.breached, s.open, s.open_breached, s.unmeasured))
    return since, rows


# -- connector health ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErpHealthRow:
    name: str
    circuit: str
    consecutive_failures: int
    last_error: str | None
    in_flight: int
    calls: int
    failures: int
    last_poll: str  # age of the last change poll
    watermark: str  # the newest ERP change the hub has seen, as an age (the sync lag)


@dataclass(frozen=True)
class QueueRow:
    consumer: str
    pending: int
    oldest_due: str


@dataclass(frozen=True)
class Health:
    erps: list[ErpHealthRow]
    outbox_unpublished: int
    outbox_lag: str
    queues: list[QueueRow]
    dead_letters: int
    open_cases: int
    overdue_cases: int
    #: alert notifications not sent (pending a retry, or given up), and the latest error among them
    alerts_unsent: int = 0
    alerts_last_error: str | None = None


def health(hub: Hub, conn: Connection, now: dt.datetime) -> Health:
    polls = {r.name: r for r in conn.execute(select(sync_state).where(sync_state.c.name.like("erp:%:changes")))}
    erps = []
    if hub.erps is not None:
        for name in hub.erps.names():
            st = hub.erps.status(name)
            poll = polls.get(f"erp:{name}:changes")
            mark = dt.datetime.fromisoformat(poll.value) if poll is not None and poll.value else None
            erps.append(ErpHealthRow(
                name=name, circuit=st.circuit.value, consecutive_failures=st.consecutive_failures,
                last_error=st.last_error, in_flight=st.in_flight, calls=st.calls, failures=st.failures,
                last_poll=age(now, aware(poll.updated_at)) if poll is not None else "never",
                watermark=age(now, aware(mark)) if mark is not None else "none yet"))
    count, oldest = conn.execute(select(func.count(), func.min(outbox.c.occurred_at))
                                 .where(outbox.c.published_at.is_(None))).one()
    d = deliveries.c
    queues = [QueueRow(r[0], int(r[1]), _overdue_by(now, aware(r[2])))
              for r in conn.execute(select(d.consumer, func.count(), func.min(d.next_attempt_at))
                                    .group_by(d.consumer).order_by(d.consumer))]
    letters = conn.execute(select(func.count()).select_from(dead_letters)
                           .where(dead_letters.c.status == "dead")).scalar_one()
    c = cases.c
    open_, late = conn.execute(select(func.count(), func.sum(case((c.due_at < now, 1), else_=0)))
                               .where(c.state.in_(OPEN_CASE_STATES))).one()
    n = alert_notifications.c
    unsent = conn.execute(select(func.count()).where(n.state.in_(("pending", "failed")))).scalar_one()
    last_error = conn.execute(select(n.team, n.channel, n.last_error)
                              .where(n.state.in_(("pending", "failed")), n.last_error.is_not(None))
                              .order_by(n.next_attempt_at.desc()).limit(1)).first()
    return Health(erps=erps, outbox_unpublished=int(count), outbox_lag=age(now, aware(oldest)) if oldest else "0s",
                  queues=queues, dead_letters=int(letters), open_cases=int(open_), overdue_cases=int(late or 0),
                  alerts_unsent=int(unsent),
                  alerts_last_error=f"{last_error[0]} ({last_error[1]}): {last_error[2]}" if last_error else None)


def _overdue_by(now: dt.datetime, due: dt.datetime | None) -> str:
    """How long the oldest message of a queue has been due ("" when none is due yet: a retry waiting)."""
    return age(now, due) if due is not None and due <= now else ""


# -- exception queue ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """A team's tab: the cases its people act on by default (owner teams, plus case types they follow)."""

    key: str
    title: str
    teams: tuple[str, ...]
    types: tuple[CaseType, ...] = ()


VIEWS: tuple[View, ...] = (
    View("commerce", "Commerce", ("commerce",)),
    View("operations", "Operations", ("operations", "integration")),
    View("finance", "Finance", ("finance",)),
    # customer service owns no case type by default: it follows what buyers call about
    View("customer_service", "Customer service", ("customer_service", "customer-service"),
         (CaseType.FULFILLMENT_DISCREPANCY, CaseType.INVOICE_DISPUTE, CaseType.ALLOCATION_SHORTFALL)),
)
VIEWS_BY_KEY = {v.key: v for v in VIEWS}


@dataclass(frozen=True)
class CaseFilter:
    view: str | None = None
    type: str | None = None
    owner: str | None = None
    state: str = "open"  # open (open, in progress, escalated) | one case state | all


@dataclass(frozen=True)
class CaseRow:
    case: ExceptionCase
    overdue: bool
    age: str
    due_in: str
    order_number: str = ""  # the channel's order number of the case's order ("" : no order)
    amount: str = ""  # the order's total as it stands
    currency: str = ""
    po: str = ""  # the buyer's purchase order number


def _view_clause(view: View) -> Any:
    """A team's tab: its teams (and their escalation teams, "finance-lead") or the types it follows."""
    c = cases.c
    team = or_(*[or_(c.owner_team == t, c.owner_team.like(f"{t}-%")) for t in view.teams])
    return or_(team, c.type.in_([t.value for t in view.types])) if view.types else team


def _filtered(query: Any, flt: CaseFilter, *, view: bool = True) -> Any:
    c = cases.c
    chosen = VIEWS_BY_KEY.get(flt.view or "")
    if view and chosen is not None:
        query = query.where(_view_clause(chosen))
    if flt.type:
        query = query.where(c.type == flt.type)
    if flt.owner:
        query = query.where(c.owner_team == flt.owner)
    if flt.state == "open":
        query = query.where(c.state.in_(OPEN_CASE_STATES))
    elif flt.state != "all":
        query = query.where(c.state == flt.state)
    return query


def case_rows(conn: Connection, flt: CaseFilter, now: dt.datetime) -> list[CaseRow]:
    """Cases matching the filter, newest first (capped at :data:`LIST_LIMIT`), each with its order's
    number and total."""
    c, o = cases.c, orders.c
    query = _filtered(select(c.body, o.external_order_number, o.total, o.body)
                      .select_from(cases.outerjoin(orders, o.id == c.order_id)), flt)
    rows = conn.execute(query.order_by(c.opened_at.desc(), c.id.desc()).limit(LIST_LIMIT))
    out = []
    for body, number, total, order_body in rows:
        found = ExceptionCase.model_validate_json(body)
        open_ = found.state is not CaseState.RESOLVED
        late = open_ and found.due_at is not None and found.due_at < now
        due = "" if not open_ or found.due_at is None else (
            f"{age(now, found.due_at)} ago" if late else f"in {duration((found.due_at - now).total_seconds())}")
        placed = json.loads(order_body) if order_body else {}
        out.append(CaseRow(found, late, age(now, found.opened_at), due, number or "", total or "",
                           str(placed.get("currency") or ""), str(placed.get("buyer_po_number") or "")))
    return out


def case_counts(conn: Connection, flt: CaseFilter) -> dict[str, int]:
    """How many cases each tab holds under the filter's type, owner and state ("" : all teams)."""
    counts = {"": int(conn.execute(_filtered(select(func.count()).select_from(cases), flt, view=False))
                      .scalar_one())}
    for v in VIEWS:
        query = _filtered(select(func.count()).select_from(cases), flt, view=False).where(_view_clause(v))
        counts[v.key] = int(conn.execute(query).scalar_one())
    return counts


def owner_teams(conn: Connection) -> list[str]:
    return sorted(conn.execute(select(cases.c.owner_team).distinct()).scalars())


# -- orders ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderRow:
    id: str
    channel: str
    external_order_number: str
    account_id: str
    state: str
    received_at: dt.datetime
    updated_at: dt.datetime
    total: str | None
    currency: str | None
    hold: dict[str, Any] | None
    po: str = ""  # the buyer's purchase order number
    skus: tuple[str, ...] = ()  # the SKUs (and customer part numbers) of its lines


def _order_row(row: Any) -> OrderRow:
    body, parts = json.loads(row.body), load_parts(row.data)
    hold = parts.hold
    skus = {str(x.get(k)) for x in body.get("lines", []) for k in ("sku", "customer_part_number") if x.get(k)}
    skus |= {p.sku for p in parts.lines}
    return OrderRow(id=row.id, channel=row.channel, external_order_number=row.external_order_number,
                    account_id=row.account_id, state=row.state, received_at=row.received_at,
                    updated_at=row.updated_at, total=row.total, currency=body.get("currency"),
                    hold={"case_id": hold.case_id, "type": hold.type.value, "reason": hold.reason} if hold else None,
                    po=str(body.get("buyer_po_number") or ""), skus=tuple(sorted(skus)))


def order(conn: Connection, order_id: str) -> OrderRow | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    return _order_row(row) if row is not None else None


def matches(row: OrderRow, q: str, accounts: Sequence[str] = ()) -> str:
    """What of the order ``q`` names ("" : nothing): its id, number, PO, customer or a SKU of its lines.
    Numbers, POs and SKUs match in part and in any case; ``accounts`` are the customers whose name
    contains ``q``."""
    low = q.lower()
    if row.id == q:
        return "id"
    if low in row.external_order_number.lower():
        return "number"
    if row.po and low in row.po.lower():
        return "po"
    if row.account_id.lower() == low or row.account_id in accounts:
        return "customer"
    if any(low in sku.lower() for sku in row.skus):
        return "sku"
    return ""


def find_orders(conn: Connection, q: str | None, state: str | None,
                accounts: Sequence[str] = ()) -> list[OrderRow]:
    """Orders whose id, order number, buyer's PO, customer (id, or ``accounts``: the ids of the customers
    whose name matches) or a line's SKU matches ``q``, newest first; without ``q`` the newest ones;
    optionally in one state. The document match narrows in the database (the order's JSON contains
    ``q``), :func:`matches` then checks which field it was."""
    o = orders.c
    query = select(orders)
    if q:
        query = query.where(or_(o.id == q, o.account_id.in_([q, *accounts]),
                                func.lower(o.body).contains(q.lower(), autoescape=True),
                                func.lower(o.data).contains(q.lower(), autoescape=True)))
    if state:
        query = query.where(o.state == state)
    found = (_order_row(r) for r in conn.execute(query.order_by(o.received_at.desc(), o.id.desc()).limit(1000)))
    return [r for r in found if not q or matches(r, q, accounts)][:100]


# -- per-order timeline ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One line of an order's timeline: when, which system, what kind of record, what happened."""

    at: dt.datetime
    system: str
    kind: str  # transition | event | case | dead letter
    what: str
    detail: str = ""
    link: str | None = None
    order: int = 0  # ties at the same time keep the order the records were written in


def _event_system(type_: str, payload: dict[str, Any], channel: str) -> str:
    """The system an event comes from: the ERP (by name), the warehouse, a carrier, the buyer's channel,
    or the hub itself."""
    if type_.startswith("erp."):
        return f"ERP {payload.get('erp', '')}".strip()
    if type_.startswith("wms."):
        return f"warehouse {payload.get('source', '')}".strip()
    if type_.startswith("carrier."):
        return "carrier"
    if type_ in ("order.received", "order.duplicate_received", "return.requested", "invoice.disputed"):
        return f"channel {channel}"
    if type_.startswith("case."):
        return "workbench"
    return "hub"


DETAIL_KEYS = ("reason", "decision", "action", "actor", "kind", "reference", "state")


def _event_detail(type_: str, payload: dict[str, Any]) -> str:
    if type_ == "order.state_changed":
        return f"{payload.get('from_state') or '∅'} → {payload.get('to_state')}"
    if type_.startswith("case.") and isinstance(payload.get("case"), dict):
        c = payload["case"]
        return f"{c.get('type')} case {c.get('id')}, {c.get('state')}, owner {c.get('owner_team')}"
    parts = [f"{k}: {payload[k]}" for k in DETAIL_KEYS if isinstance(payload.get(k), str | int) and payload.get(k)]
    return "; ".join(parts)[:300]


@dataclass
class Timeline:
    order: OrderRow
    entries: list[Entry] = field(default_factory=list)


def timeline(conn: Connection, order_id: str) -> Timeline | None:
    """Every transition of the order, every event correlated with it (the outbox), its cases with their
    history, and its dead letters, in time order."""
    found = order(conn, order_id)
    if found is None:
        return None
    t = order_transitions.c
    entries = [Entry(aware(r.at) or r.at, "hub", "transition", f"{r.from_state or '∅'} → {r.to_state}", r.cause,
                     order=r.id)
               for r in conn.execute(select(order_transitions).where(t.order_id == order_id).order_by(t.id))]
    ob = outbox.c
    for r in conn.execute(select(ob.seq, ob.type, ob.occurred_at, ob.body, ob.published_at)
                          .where(ob.correlation_id == order_id).order_by(ob.seq)):
        payload = json.loads(r.body).get("payload") or {}
        detail = _event_detail(r.type, payload)
        if r.published_at is None:
            detail = f"{detail} (not relayed yet)".lstrip()
        entries.append(Entry(aware(r.occurred_at) or r.occurred_at, _event_system(r.type, payload, found.channel),
                             "event", r.type, detail, order=r.seq))
    entries += _case_entries(conn, order_id)
    for letter in conn.execute(select(dead_letters).where(dead_letters.c.correlation_id == order_id)).mappings():
        dl = DeadLetter.from_row(letter)
        entries.append(Entry(dl.dead_at, f"consumer {dl.consumer}", "dead letter", f"{dl.type or 'message'} failed",
                             f"{dl.reason}, {dl.attempts} attempt(s), {dl.status}: {dl.error[:200]}",
                             link=f"/ops/dead-letters?ids={dl.id}"))
    entries.sort(key=lambda e: (e.at, e.order))
    return Timeline(found, entries)


def _case_entries(conn: Connection, order_id: str) -> list[Entry]:
    out = []
    for body in conn.execute(select(cases.c.body).where(cases.c.order_id == order_id)).scalars():
        found = ExceptionCase.model_validate_json(body)
        link = f"/ops/cases/{found.id}"
        out += [Entry(e.at, e.actor, "case", f"{found.type.value} case {e.action}", e.comment[:300], link=link)
                for e in found.history]
    return out


# -- dead letters --------------------------------------------------------------------------------------------

def linked_cases(conn: Connection, letter_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Dead letter id -> (case id, case state) of the integration-failure case each one opened."""
    if not letter_ids:
        return {}
    c = cases.c
    rows = conn.execute(select(c.dead_letter_id, c.id, c.state).where(c.dead_letter_id.in_(list(letter_ids))))
    return {r[0]: (r[1], r[2]) for r in rows}
