"""The overview's charts and tiles: what they count, read from the store (the SVG is :mod:`web.charts`).

Why a module of its own: the overview's figures change with its charts, the workbench's queries in
``ops_data`` change with the workbench, and neither should wait for the other. Every figure is read when
the page is asked for (the page polls every 10 s), in the read transaction of the page, with bounded
queries: counts grouped in the database, one conditional sum per hour or per age bucket.

What counts:

- **orders per hour**: orders received per clock hour (UTC), the last 24 h, the current hour last;
- **backlog**: orders not settled (every state but closed, cancelled and rejected), per state;
- **ageing**: the same orders by age since received, and open cases by age since opened, in buckets
  :data:`AGE_BUCKETS`; **cases by team** splits the open cases by owner team and the same buckets;
- **SLA over time**: p50/p90/p99 per hour of the hub's own acknowledgment latency (received -> accepted,
  holds not counted, by the hour the ERP accepted), and apart from it how long holds waited for people
  (by the hour they were released); the table of clocks hides a clock no configured ERP can time and says
  why (:func:`ordersync.reads.sla.untimed_clocks`);
- **dead letters**: letters that died per hour (whatever became of them since), by consumer and type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection, and_, case, func, select

from ordersync.canonical.v1 import OrderState
from ordersync.domain.lifecycle import TERMINAL
from ordersync.domain.sla import (
    ClockSummary,
    HoldSummary,
    SlaClock,
    SlaThresholds,
    acknowledgment_samples,
    hold_samples,
    hourly_percentiles,
    summarize,
    summarize_holds,
)
from ordersync.reads.sla import SlaScope, holds, readings, untimed_clocks
from ordersync.runtime.hub import Hub
from ordersync.store.schema import cases, dead_letters, orders
from ordersync.web import charts
from ordersync.web.charts import Series, count_label, seconds_label

HOURS = 24
OPEN_CASE_STATES = ("open", "in_progress", "escalated")
#: age buckets: (label, lower bound in hours, upper bound in hours or None)
AGE_BUCKETS: tuple[tuple[str, float, float | None], ...] = (
    ("<1h", 0, 1), ("1-4h", 1, 4), ("4-24h", 4, 24), ("1-3d", 24, 72), (">3d", 72, None))
BACKLOG_STATES = tuple(s for s in OrderState if s not in TERMINAL)
#: dead letters: this many consumer/type series, the rest together as "other"
DLQ_SERIES = 4


@dataclass(frozen=True)
class Figure:
    """One chart of the page: its id (the swapped containers are ``<id>-figure`` and ``<id>-data``), the
    SVG, the legend (multi-series charts) and the same numbers as a table."""

    id: str
    svg: Markup
    table: Markup
    legend: Markup | None = None
    note: str = ""


@dataclass(frozen=True)
class ClockRow:
    clock: str
    title: str
    threshold: str
    summary: ClockSummary


@dataclass(frozen=True)
class Hidden:
    clock: str
    title: str
    reason: str


@dataclass(frozen=True)
class Sla:
    since: dt.datetime
    rows: list[ClockRow]
    hidden: list[Hidden]
    holds: HoldSummary


@dataclass(frozen=True)
class Tile:
    id: str
    label: str
    href: str
    value: str
    count: int
    bad: bool = False
    note: str = ""


@dataclass(frozen=True)
class Overview:
    tiles: list[Tile]
    figures: dict[str, Figure]
    sla: Sla
    total_24h: int


def hour_starts(now: dt.datetime, hours: int = HOURS) -> list[dt.datetime]:
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - dt.timedelta(hours=hours - 1 - i) for i in range(hours)]


def _hour_labels(starts: Sequence[dt.datetime]) -> list[str]:
    return [s.strftime("%H:00") for s in starts]


def _per_hour(column: Any, starts: Sequence[dt.datetime], now: dt.datetime) -> list[Any]:
    ends = [*starts[1:], now + dt.timedelta(seconds=1)]
    return [func.sum(case((and_(column >= a, column < b), 1), else_=0)) for a, b in zip(starts, ends, strict=True)]


def _per_age(column: Any, now: dt.datetime) -> list[Any]:
    """A conditional count per age bucket of a time column."""
    sums = []
    for _, low, high in AGE_BUCKETS:
        newest = now - dt.timedelta(hours=low)
        cond = column <= newest if high is None else and_(column <= newest, column > now - dt.timedelta(hours=high))
        sums.append(func.sum(case((cond, 1), else_=0)))
    return sums


# -- the queries ------------------------------------------------------------------------------------------------

def orders_per_hour(conn: Connection, now: dt.datetime) -> tuple[list[dt.datetime], list[int]]:
    starts = hour_starts(now)
    received = orders.c.received_at
    row = conn.execute(select(*_per_hour(received, starts, now)).where(received >= starts[0])).one()
    return starts, [int(v or 0) for v in row]


def backlog(conn: Connection) -> dict[str, int]:
    o = orders.c
    found = {r[0]: int(r[1]) for r in conn.execute(
        select(o.state, func.count()).where(o.state.in_([s.value for s in BACKLOG_STATES])).group_by(o.state))}
    return {s.value: found.get(s.value, 0) for s in BACKLOG_STATES}


def order_ages(conn: Connection, now: dt.datetime) -> list[int]:
    o = orders.c
    row = conn.execute(select(*_per_age(o.received_at, now))
                       .where(o.state.in_([s.value for s in BACKLOG_STATES]))).one()
    return [int(v or 0) for v in row]


def case_ages_by_team(conn: Connection, now: dt.datetime) -> dict[str, list[int]]:
    c = cases.c
    rows = conn.execute(select(c.owner_team, *_per_age(c.opened_at, now)).where(c.state.in_(OPEN_CASE_STATES))
                        .group_by(c.owner_team).order_by(c.owner_team))
    return {str(r[0]): [int(v or 0) for v in r[1:]] for r in rows}


def dead_letters_per_hour(conn: Connection, now: dt.datetime) -> tuple[list[dt.datetime], dict[str, list[int]]]:
    """Letters that died per hour, per ``consumer · type`` (the biggest :data:`DLQ_SERIES`, then other)."""
    starts = hour_starts(now)
    d = dead_letters.c
    rows = conn.execute(select(d.consumer, d.type, *_per_hour(d.dead_at, starts, now))
                        .where(d.dead_at >= starts[0]).group_by(d.consumer, d.type))
    found = {f"{r[0]} · {r[1] or 'unreadable'}": [int(v or 0) for v in r[2:]] for r in rows}
    ranked = sorted(found, key=lambda k: (-sum(found[k]), k))
    out = {k: found[k] for k in ranked[:DLQ_SERIES]}
    if len(ranked) > DLQ_SERIES:
        out["other"] = [sum(found[k][i] for k in ranked[DLQ_SERIES:]) for i in range(len(starts))]
    return starts, out


# -- the figures ----------------------------------------------------------------------------------------------

def _pct(values: Sequence[float | None]) -> tuple[float | None, ...]:
    return tuple(values)


def throughput_figure(starts: Sequence[dt.datetime], counts: Sequence[int]) -> Figure:
    labels = _hour_labels(starts)
    total = sum(counts)
    busiest = max(range(len(counts)), key=lambda i: (counts[i], i)) if counts else 0
    summary = (f"{total} orders in the last 24 hours; busiest hour {labels[busiest]} with {counts[busiest]}."
               if total else "No orders in the last 24 hours.")
    series = [Series("Orders", tuple(float(n) for n in counts))]
    svg = charts.columns("throughput-chart", "Orders received per hour, last 24 hours (UTC)", summary, labels,
                         series, unit="orders", label_every=6, data_name="hour", empty="No orders in 24 h",
                         keys=[s.isoformat() for s in starts])
    svg = Markup(str(svg).replace('role="img"', f'role="img" data-total="{total}"', 1))
    return Figure("throughput", svg, charts.table("Orders received per hour", "Hour (UTC)", labels, series))


def backlog_figure(counts: dict[str, int]) -> Figure:
    labels = [s.replace("_", " ") for s in counts]
    total = sum(counts.values())
    biggest = max(counts, key=lambda s: counts[s]) if total else ""
    summary = (f"{total} orders not settled; most in {biggest.replace('_', ' ')} ({counts[biggest]})."
               if total else "No order is waiting: every order is settled.")
    series = [Series("Orders", tuple(float(n) for n in counts.values()))]
    svg = charts.bars("backlog-chart", "Orders not settled, by state", summary, labels, series, unit="orders",
                      data_name="state", keys=list(counts))
    return Figure("backlog", svg, charts.table("Orders not settled, by state", "State", labels, series))


def ageing_figure(order_counts: Sequence[int], case_counts: Sequence[int]) -> Figure:
    labels = [b[0] for b in AGE_BUCKETS]
    series = [Series("Open orders", tuple(float(n) for n in order_counts)),
              Series("Open cases", tuple(float(n) for n in case_counts))]
    old_orders, old_cases = sum(order_counts[3:]), sum(case_counts[3:])
    summary = (f"{sum(order_counts)} open orders and {sum(case_counts)} open cases; older than a day: "
               f"{old_orders} orders, {old_cases} cases.")
    svg = charts.columns("ageing-chart", "Open orders and open cases by age", summary, labels, series,
                         unit="count", stacked=False, data_name="bucket")
    return Figure("ageing", svg, charts.table("Open orders and cases by age", "Age", labels, series),
                  charts.legend(series))


def cases_figure(by_team: dict[str, list[int]]) -> Figure:
    teams = list(by_team)
    labels = [b[0] for b in AGE_BUCKETS]
    series = [Series(label, tuple(float(by_team[t][i]) for t in teams)) for i, label in enumerate(labels)]
    total = sum(sum(v) for v in by_team.values())
    summary = (f"{total} open cases in {len(teams)} team{'s' if len(teams) != 1 else ''}: "
               + ", ".join(f"{t} {sum(by_team[t])}" for t in teams) + "." if total else "No open case.")
    svg = charts.bars("cases-chart", "Open cases by owner team and age", summary, teams or ["no open case"],
                      series if teams else [Series(s.name, (0.0,)) for s in series], unit="cases",
                      data_name="team", keys=teams or ["none"])
    table = charts.table("Open cases by team and age", "Team", teams, series, total=True)
    return Figure("cases", svg, table, charts.legend(series))


def dead_letters_figure(starts: Sequence[dt.datetime], by_series: dict[str, list[int]]) -> Figure:
    labels = _hour_labels(starts)
    names = list(by_series) or ["none"]
    series = [Series(n, tuple(float(v) for v in by_series.get(n, [0] * len(starts)))) for n in names]
    total = sum(sum(v) for v in by_series.values())
    summary = (f"{total} dead letters in the last 24 hours: "
               + ", ".join(f"{n} {sum(by_series[n])}" for n in by_series) + "."
               if total else "No dead letter in the last 24 hours.")
    svg = charts.columns("dead-letters-chart", "Dead letters per hour, by consumer and type (UTC)", summary,
                         labels, series, unit="letters", label_every=6, data_name="dead-hour",
                         empty="No dead letters in 24 h", keys=[s.isoformat() for s in starts])
    table = charts.table("Dead letters per hour", "Hour (UTC)", labels, series if by_series else [], total=True)
    return Figure("dead-letters", svg, table, charts.legend(series) if by_series else None)


def latency_figure(starts: Sequence[dt.datetime], samples: list[tuple[dt.datetime, float]], threshold: float
                   ) -> Figure:
    labels = _hour_labels(starts)
    hours = hourly_percentiles(samples, starts)
    series = [Series("p50", _pct([h.p50 for h in hours])), Series("p90", _pct([h.p90 for h in hours])),
              Series("p99", _pct([h.p99 for h in hours]))]
    timed = sum(h.count for h in hours)
    worst = max((h.p99 for h in hours if h.p99 is not None), default=None)
    summary = (f"{timed} orders acknowledged in the last 24 hours; worst hourly p99 {seconds_label(worst)} "
               f"against a threshold of {seconds_label(threshold)}." if worst is not None
               else "No order was acknowledged in the last 24 hours.")
    svg = charts.lines("latency-chart", "Hub acknowledgment latency per hour (received to accepted, holds "
                       "not counted)", summary, labels, series, unit="time", fmt=seconds_label, seconds=True,
                       label_every=6, threshold=("Threshold", threshold), empty="No order accepted in 24 h")
    table = charts.table("Hub acknowledgment latency per hour", "Hour (UTC)", labels, series, fmt=seconds_label)
    return Figure("latency", svg, table, charts.legend(series, f"Threshold {seconds_label(threshold)}"))


def holds_figure(starts: Sequence[dt.datetime], samples: list[tuple[dt.datetime, float]], summary_: HoldSummary
                 ) -> Figure:
    labels = _hour_labels(starts)
    hours = hourly_percentiles(samples, starts)
    series = [Series("p50", _pct([h.p50 for h in hours])), Series("p90", _pct([h.p90 for h in hours]))]
    released = sum(h.count for h in hours)
    waiting = (f"; {summary_.open} still on hold, the oldest for {seconds_label(summary_.oldest_open)}"
               if summary_.open and summary_.oldest_open is not None else "; none on hold now")
    summary = f"{released} holds released in the last 24 hours{waiting}."
    svg = charts.lines("holds-chart", "Time on hold per hour (people's decisions, by hour released)", summary,
                       labels, series, unit="time", fmt=seconds_label, seconds=True, label_every=6,
                       empty="No hold released in 24 h")
    table = charts.table("Time on hold per hour", "Hour (UTC)", labels, series, fmt=seconds_label)
    return Figure("holds", svg, table, charts.legend(series), note=summary)


# -- SLA -------------------------------------------------------------------------------------------------------

TITLES = {SlaClock.ACKNOWLEDGMENT: "Acknowledgment (hub: received to accepted, holds apart)",
          SlaClock.FULFILLMENT: "Fulfillment (accepted to shipped)",
          SlaClock.INVOICE_SYNC: "Invoice sync (posted in the ERP to visible to the buyer)"}


def sla_table(hub: Hub, found: Any, held: Any, since: dt.datetime, now: dt.datetime) -> Sla:
    limits = hub.settings.sla
    thresholds = {SlaClock.ACKNOWLEDGMENT: limits.ack_seconds, SlaClock.FULFILLMENT: limits.fulfillment_seconds,
                  SlaClock.INVOICE_SYNC: limits.invoice_sync_seconds}
    report = summarize(found, SlaThresholds(**{c.value: t for c, t in thresholds.items()}), now).get("all", {})
    untimed = untimed_clocks([e.kind for e in hub.settings.erp], report)
    rows, hidden = [], []
    for clock in SlaClock:
        if clock in untimed:
            hidden.append(Hidden(clock.value, TITLES[clock], untimed[clock]))
            continue
        rows.append(ClockRow(clock.value, TITLES[clock], seconds_label(thresholds[clock]),
                             report.get(clock) or ClockSummary(threshold_seconds=thresholds[clock])))
    return Sla(since, rows, hidden, summarize_holds(held, now))


# -- the page ----------------------------------------------------------------------------------------------------

def overview(hub: Hub, conn: Connection, now: dt.datetime) -> Overview:
    """Every chart, the SLA table and the tiles of the overview."""
    starts, counts = orders_per_hour(conn, now)
    states = backlog(conn)
    order_buckets = order_ages(conn, now)
    by_team = case_ages_by_team(conn, now)
    case_buckets = [sum(v[i] for v in by_team.values()) for i in range(len(AGE_BUCKETS))]
    dlq_starts, dlq = dead_letters_per_hour(conn, now)
    window = dt.timedelta(seconds=hub.settings.sla.window_seconds)
    since = now - window
    scope = SlaScope(since=min(since, starts[0]))
    found = readings(conn, scope)
    held = holds(conn, scope)
    in_window = [r for r in found if r.started_at >= since]
    sla = sla_table(hub, in_window, [h for h in held if h.started_at >= since], since, now)
    figures = [throughput_figure(starts, counts), backlog_figure(states), ageing_figure(order_buckets, case_buckets),
               latency_figure(starts, acknowledgment_samples(found), hub.settings.sla.ack_seconds),
               holds_figure(starts, hold_samples(held), summarize_holds(held, now)), cases_figure(by_team),
               dead_letters_figure(dlq_starts, dlq)]
    open_cases = sum(case_buckets)
    on_hold = states.get(OrderState.ON_HOLD.value, 0)
    dlq_total = sum(sum(v) for v in dlq.values())
    tiles = [
        Tile("tile-orders", "Orders, last 24 h", "/ops/orders", count_label(sum(counts)), sum(counts)),
        Tile("tile-backlog", "Not settled", "/ops/orders", count_label(sum(states.values())), sum(states.values())),
        Tile("tile-holds", "On hold for people", "/ops/orders?state=on_hold", count_label(on_hold), on_hold,
             note=f"oldest {seconds_label(sla.holds.oldest_open)}" if sla.holds.oldest_open is not None else ""),
        Tile("tile-cases", "Open cases", "/ops/cases", count_label(open_cases), open_cases,
             note=f"{sum(case_buckets[2:])} older than 4 h" if open_cases else ""),
        Tile("tile-dead-letters", "Dead letters, last 24 h", "/ops/dead-letters", count_label(dlq_total), dlq_total,
             bad=dlq_total > 0),
    ]
    return Overview(tiles=tiles, figures={f.id: f for f in figures}, sla=sla, total_24h=sum(counts))


def refreshed_ids(view: Overview, states: Sequence[str]) -> list[str]:
    """The ids of every part the page's poll swaps (never one holding a link or a control)."""
    ids = ["sla-body", "sla-hidden", "sla-holds", "connectors-erps", "outbox-lag", "dead-letter-count", "open-cases",
           "queues-body"]
    ids += [f"{t.id}-value" for t in view.tiles] + [f"{t.id}-note" for t in view.tiles]
    ids += [f"{f}-{part}" for f in view.figures for part in ("figure", "data", "legend")]
    ids += [f"pipeline-{s}-{part}" for s in states for part in ("count", "oldest", "unchanged")]
    return ids

