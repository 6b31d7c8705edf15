"""SLA clocks read from the store: which clocks each order has, when they started and stopped.

- **acknowledgment** and **fulfillment** come from ``order_transitions``: the first time the order was
  received, accepted and shipped. An order rejected or cancelled before acceptance has no acknowledgment
  clock (it can no longer stop), one cancelled or closed before shipping has no fulfillment clock.
- **invoice sync** comes from what the fulfillment flow stamps on the order (per invoice
  ``fulfillment.invoices[*]`` with ``posted_at``/``visible_at``, else the order's
  ``fulfillment.invoice_posted_at``/``invoice_visible_at``). For orders without those stamps, the ``invoices`` table
  stands in: the ERP's posting time in the invoice, and the row's ``updated_at`` for an invoice still
  ``posted`` (the time the hub recorded it; a later change, such as paid, would move it, so those are
  left out). An ERP that keeps only a posting *date* (Tryton: midnight UTC) gives an unmeasured
  clock, counted but not timed. An invoice the hub has not seen yet has no clock: its delay shows when
  it arrives.

Groups are accounts, channels, or ``all``. Nothing here is cached: one query per source, bounded by the
orders received since ``since``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, select

from ordersync.canonical.v1 import Invoice, InvoiceState, OrderState
from ordersync.domain.order.parts import FulfillmentTimes, load_parts
from ordersync.domain.sla import ClockReading, ClockSummary, SlaClock, SlaThresholds, day_precision, summarize
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


def order_clocks(first: dict[OrderState, dt.datetime], group: str) -> list[ClockReading]:
    """The acknowledgment and fulfillment clocks of one order from the first time it reached each state."""
    out = []
    received, accepted, shipped = first.get(S.RECEIVED), first.get(S.ACCEPTED), first.get(S.SHIPPED)
    if received is not None and (accepted is not None or not {S.REJECTED, S.CANCELLED} & first.keys()):
        out.append(ClockReading(SlaClock.ACKNOWLEDGMENT, group, received, accepted))
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


def readings(conn: Connection, scope: SlaScope) -> list[ClockReading]:
    """Every clock of the orders in ``scope``."""
    o, t, i = orders.c, order_transitions.c, invoices.c
    groups = {r.id: _group(scope, r.account_id, r.channel)
              for r in conn.execute(_scoped(select(o.id, o.account_id, o.channel), scope))}
    firsts: dict[str, dict[OrderState, dt.datetime]] = defaultdict(dict)
    query = (select(t.order_id, t.to_state, func.min(t.at).label("at")).join(orders, orders.c.id == t.order_id)
             .where(t.to_state.in_([s.value for s in _STATES])).group_by(t.order_id, t.to_state))
    for r in conn.execute(_scoped(query, scope)):
        firsts[r.order_id][OrderState(r.to_state)] = r.at
    out = [c for order_id, first in firsts.items() if order_id in groups for c in order_clocks(first, groups[order_id])]
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
