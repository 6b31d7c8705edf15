"""SLA clocks read from the store: which clocks each order has, when they started and stopped.

- **acknowledgment** and **fulfillment** come from ``order_transitions``: the first time the order was
  received, accepted and shipped. An order rejected or cancelled before acceptance has no acknowledgment
  clock (it can no longer stop), one cancelled or closed before shipping has no fulfillment clock. The
  acknowledgment clock stands still while the order is ``on_hold`` (a person decides, not the hub): the
  holds are read from the same transitions (:func:`holds`) and measured apart.
- **invoice sync** comes from what the fulfillment flow stamps on the order (per invoice
  ``fulfillment.invoices[*]`` with ``posted_at``/``visible_at``, else the order's
  ``fulfillment.invoice_posted_at``/``invoice_visible_at``). For orders without those stamps, the ``invoices`` table
  stands in: the ERP's posting time in the invoice, and the row's ``updated_at`` for an invoice still
  ``posted`` (the time the hub recorded it; a later change, such as paid, would move it, so those are
  left out). An ERP that keeps only a posting *date* (Tryton: midnight UTC) gives an unmeasured
  clock, counted but not timed. An invoice the hub has not seen yet has no clock: its delay shows when
  it arrives.

Which clocks an ERP can time at all (:func:`untimed_clocks`): Tryton keeps an invoice's posting *date*
(``invoice_date``) and no posting time, and its twin does the same, so on such a hub invoice sync is never
timed; the dashboard hides the clock and says why rather than showing a zero.

Groups are accounts, channels, or ``all``. Nothing here is cached: one query per source, bounded by the
orders received since ``since``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, select

from ordersync.canonical.v1 import Invoice, InvoiceState, OrderState
from ordersync.domain.order.parts import FulfillmentTimes, load_parts
from ordersync.domain.sla import (
    ClockReading,
    ClockSummary,
    HoldSpan,
    SlaClock,
    SlaThresholds,
    day_precision,
    summarize,
)
from ordersync.store.db import Database
from ordersync.store.schema import invoices, order_transitions, orders

GroupBy = Literal["account", "channel"]
S = OrderState
_STATES = (S.RECEIVED, S.ACCEPTED, S.SHIPPED, S.REJECTED, S.CANCELLED, S.CLOSED)


@dataclass(frozen=True)
class SlaScope:
    """Which orders: received at or after ``since`` (None: all), of one account (None: every account)."""

    since: dt.datetime | None = None
    account_id: str | None = None
    group_by: GroupBy | None = None


def _scoped(query: Select[Any], scope: SlaScope) -> Select[Any]:
    if scope.since is not None:
        query = query.where(orders.c.received_at >= scope.since)
    if scope.account_id is not None:
        query = query.where(orders.c.account_id == scope.account_id)
    return query


def _group(scope: SlaScope, account_id: str, channel: str) -> str:
    if scope.group_by == "account":
        return account_id
    if scope.group_by == "channel":
        return channel
    return "all"


#: clocks an ERP kind cannot time, and why (said on the dashboard in place of the clock)
UNTIMED_BY_ERP: dict[str, dict[SlaClock, str]] = {
    "tryton": {SlaClock.INVOICE_SYNC: "Tryton keeps an invoice's posting date (invoice_date), not the time it "
                                      "was posted, so the hub cannot time posted -> visible to the buyer"},
    "memory": {SlaClock.INVOICE_SYNC: "the ERP twin keeps an invoice's posting date only, as Tryton does, so "
                                      "the hub cannot time posted -> visible to the buyer"},
}


def untimed_clocks(erp_kinds: Iterable[str], summary: Mapping[SlaClock, ClockSummary]) -> dict[SlaClock, str]:
    """Clocks no configured ERP can time, with the reason: every ERP's kind keeps only a date for it and
    nothing was timed in the window, or (whatever the kinds) every reading of it was a date."""
    kinds = sorted(set(erp_kinds))
    out: dict[SlaClock, str] = {}
    for clock in SlaClock:
        s = summary.get(clock)
        timed = s is not None and (s.count or s.open)
        reasons = [UNTIMED_BY_ERP.get(k, {}).get(clock) for k in kinds]
        if kinds and all(reasons) and not timed:
            out[clock] = "; ".join(dict.fromkeys(r for r in reasons if r))
        elif s is not None and s.unmeasured and not timed:
            out[clock] = f"all {s.unmeasured} readings carry a date without a time, so none can be timed"
    return out


def order_clocks(first: dict[OrderState, dt.datetime], group: str,
                 held: tuple[HoldSpan, ...] = ()) -> list[ClockReading]:
    """The acknowledgment and fulfillment clocks of one order from the first time it reached each state;
    the acknowledgment clock stands still during the order's holds."""
    out = []
    received, accepted, shipped = first.get(S.RECEIVED), first.get(S.ACCEPTED), first.get(S.SHIPPED)
    if received is not None and (accepted is not None or not {S.REJECTED, S.CANCELLED} & first.keys()):
        paused = tuple((h.started_at, h.ended_at) for h in held)
        out.append(ClockReading(SlaClock.ACKNOWLEDGMENT, group, received, accepted, paused=paused))
    if accepted is not None and (shipped is not None or not {S.CANCELLED, S.CLOSED} & first.keys()):
        out.append(ClockReading(SlaClock.FULFILLMENT, group, accepted, shipped))
    return out


def stamped_invoice_clocks(times: FulfillmentTimes, group: str) -> list[ClockReading] | None:
    """Invoice sync clocks from the fulfillment flow's stamps; None if the order has none."""
    pairs = [(i.posted_at, i.visible_at) for i in times.invoices.values() if i.visible_at]
    if not pairs and times.invoice_visible_at:
        pairs = [(times.invoice_posted_at, times.invoice_visible_at)]
    if not pairs:
        return None
    return [ClockReading(SlaClock.INVOICE_SYNC, group, posted, visible, precise=not day_precision(posted))
            for posted, visible in pairs if posted is not None and visible is not None]


def table_invoice_clock(body: str, state: str, updated_at: dt.datetime, group: str) -> ClockReading | None:
    """The stand-in clock of an invoice row (see the module docstring)."""
    posted = Invoice.model_validate_json(body).posted_at
    if posted is None or state != InvoiceState.POSTED.value:
        return None
    return ClockReading(SlaClock.INVOICE_SYNC, group, posted, updated_at, precise=not day_precision(posted))


def _groups(conn: Connection, scope: SlaScope) -> dict[str, str]:
    o = orders.c
    return {r.id: _group(scope, r.account_id, r.channel)
            for r in conn.execute(_scoped(select(o.id, o.account_id, o.channel), scope))}


def _hold_spans(conn: Connection, scope: SlaScope, groups: dict[str, str]) -> dict[str, list[HoldSpan]]:
    """Per order, its holds: each move into ``on_hold`` paired with the next move out of it."""
    t = order_transitions.c
    held = OrderState.ON_HOLD.value
    query = (select(t.order_id, t.from_state, t.to_state, t.at, t.cause).join(orders, orders.c.id == t.order_id)
             .where((t.to_state == held) | (t.from_state == held)).order_by(t.order_id, t.id))
    out: dict[str, list[HoldSpan]] = defaultdict(list)
    for r in conn.execute(_scoped(query, scope)):
        if r.order_id not in groups:
            continue
        spans = out[r.order_id]
        if r.from_state == held and spans and spans[-1].ended_at is None:
            last = spans[-1]
            spans[-1] = HoldSpan(last.group, last.kind, last.started_at, r.at)
        if r.to_state == held:
            spans.append(HoldSpan(groups[r.order_id], str(r.cause).split(":", 1)[0], r.at))
    return out


def holds(conn: Connection, scope: SlaScope) -> list[HoldSpan]:
    """Every hold of the orders in ``scope`` (people's time, measured apart from the hub's)."""
    return [h for spans in _hold_spans(conn, scope, _groups(conn, scope)).values() for h in spans]


def readings(conn: Connection, scope: SlaScope) -> list[ClockReading]:
    """Every clock of the orders in ``scope``."""
    o, t, i = orders.c, order_transitions.c, invoices.c
    groups = _groups(conn, scope)
    held = _hold_spans(conn, scope, groups)
    firsts: dict[str, dict[OrderState, dt.datetime]] = defaultdict(dict)
    query = (select(t.order_id, t.to_state, func.min(t.at).label("at")).join(orders, orders.c.id == t.order_id)
             .where(t.to_state.in_([s.value for s in _STATES])).group_by(t.order_id, t.to_state))
    for r in conn.execute(_scoped(query, scope)):
        firsts[r.order_id][OrderState(r.to_state)] = r.at
    out = [c for order_id, first in firsts.items() if order_id in groups
           for c in order_clocks(first, groups[order_id], tuple(held.get(order_id, ())))]
    invoiced = _scoped(select(o.id, o.data).where(o.id.in_(select(i.order_id))), scope)
    unstamped = set()
    for r in conn.execute(invoiced):
        stamped = stamped_invoice_clocks(load_parts(r.data).fulfillment, groups.get(r.id, "all"))
        if stamped is None:
            unstamped.add(r.id)
        else:
            out += stamped
    if unstamped:
        rows = conn.execute(_scoped(select(i.order_id, i.body, i.state, i.updated_at)
                                    .join(orders, orders.c.id == i.order_id), scope))
        out += [c for r in rows if r.order_id in unstamped
                and (c := table_invoice_clock(r.body, r.state, r.updated_at, groups[r.order_id]))]
    return out


def report(db: Database, scope: SlaScope, thresholds: SlaThresholds, now: dt.datetime
           ) -> dict[str, dict[SlaClock, ClockSummary]]:
    """Percentiles and breaches per group and clock, for the orders in ``scope``."""
    with db.read() as conn:
        found = readings(conn, scope)
    return summarize(found, thresholds, now)
