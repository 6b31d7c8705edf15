"""SLA breaches per order, for the alert job (:mod:`ordersync.runtime.alerts`): every running
acknowledgment or fulfillment clock of an order still on its way, with the alerts it has earned.

Only orders not yet shipped, closed, cancelled or rejected can have a running clock, and only those
received longer ago than the shortest threshold can have broken one: the query asks for those, oldest
first, at most ``limit``. The clocks are the ones ``/metrics`` and the SLA report measure
(:func:`ordersync.reads.sla.order_clocks`), holds included: an order waiting for a person does not
breach the hub's acknowledgment clock.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import Connection, func, select

from ordersync.canonical.v1 import OrderState
from ordersync.domain.alerts import Alert, AlertPolicy, sla_alerts
from ordersync.domain.sla import HoldSpan, SlaThresholds
from ordersync.reads.sla import order_clocks
from ordersync.store.schema import order_transitions, orders

S = OrderState
#: orders in these states have no running clock left
DONE = (S.SHIPPED, S.INVOICED, S.CLOSED, S.CANCELLED, S.REJECTED)
_FIRSTS = (S.RECEIVED, S.ACCEPTED, S.SHIPPED, S.REJECTED, S.CANCELLED, S.CLOSED)


def sla_breaches(conn: Connection, now: dt.datetime, thresholds: SlaThresholds, policy: AlertPolicy, *,
                 limit: int = 2000) -> list[Alert]:
    """The alerts every running, breached clock has earned by ``now`` (each level up to the current one)."""
    shortest = min(thresholds.acknowledgment, thresholds.fulfillment)
    o, t = orders.c, order_transitions.c
    found = {r.id: r.account_id for r in conn.execute(
        select(o.id, o.account_id).where(o.state.not_in([s.value for s in DONE]),
                                         o.received_at < now - dt.timedelta(seconds=shortest))
        .order_by(o.received_at).limit(limit))}
    if not found:
        return []
    ids = list(found)
    firsts: dict[str, dict[OrderState, dt.datetime]] = defaultdict(dict)
    for r in conn.execute(select(t.order_id, t.to_state, func.min(t.at).label("at"))
                          .where(t.order_id.in_(ids), t.to_state.in_([s.value for s in _FIRSTS]))
                          .group_by(t.order_id, t.to_state)):
        firsts[r.order_id][OrderState(r.to_state)] = r.at
    held = _holds(conn, ids)
    out: list[Alert] = []
    for order_id, first in firsts.items():
        for reading in order_clocks(first, order_id, tuple(held.get(order_id, ()))):
            out += sla_alerts(order_id, found[order_id], reading, thresholds, policy, now)
    return out


def _holds(conn: Connection, ids: list[str]) -> dict[str, list[HoldSpan]]:
    """Per order, each move into ``on_hold`` paired with the next move out of it."""
    t = order_transitions.c
    held = S.ON_HOLD.value
    out: dict[str, list[HoldSpan]] = defaultdict(list)
    rows = conn.execute(select(t.order_id, t.from_state, t.to_state, t.at, t.cause)
                        .where(t.order_id.in_(ids), (t.to_state == held) | (t.from_state == held))
                        .order_by(t.order_id, t.id))
    for r in rows:
        spans = out[r.order_id]
        if r.from_state == held and spans and spans[-1].ended_at is None:
            last = spans[-1]
            spans[-1] = HoldSpan(last.group, last.kind, last.started_at, r.at)
        if r.to_state == held:
            spans.append(HoldSpan(r.order_id, str(r.cause).split(":", 1)[0], r.at))
    return out
