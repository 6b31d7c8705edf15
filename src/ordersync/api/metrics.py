"""``GET /metrics``: the hub's state for Prometheus (text exposition format).

No API key, like ``/health``: scrapers rarely carry one, and nothing here names an account, an order or
a case (counts per state, type, consumer and ERP only). Serve it on a network only operators reach.

Everything is read from the store when scraped, so every process of a deployment reports the same
numbers, and nothing has to be kept in memory:

- ``ordersync_orders{state}``: orders per lifecycle state, counted in the orders table (the
  ``order_counters`` projection lags behind by whatever the bus has not delivered yet: during a NATS
  quorum loss it said 0 received with an order in ``received``);
- ``ordersync_sla_seconds{clock}``: a gauge histogram of the SLA clocks that stopped, for the orders
  received in the last ``[sla] window_seconds`` (a rolling window, so its buckets can go down);
  ``ordersync_sla_breached{clock}`` and ``ordersync_sla_open_breached{clock}`` count breaches there;
- ``ordersync_cases_open{type}``, ``ordersync_cases_overdue{type}``;
- ``ordersync_dead_letters{status}``, ``ordersync_dead_letters_by_reason{reason}`` (those not replayed);
- ``ordersync_outbox_unpublished`` and ``ordersync_outbox_lag_seconds`` (age of the oldest unpublished
  event), ``ordersync_deliveries_pending{consumer}``;
- ``ordersync_alert_notifications{channel,state}`` (pending, sent, failed: given up, or a team without a
  route; channel ``digest``, state ``grouped``: told within a digest),
  ``ordersync_alert_send_failures_total{channel}`` (failed attempts, retried ones included) and
  ``ordersync_alert_oldest_pending_seconds`` (how long the oldest unsent alert has waited);
- ``ordersync_erp_circuit{erp,state}`` (1 for the circuit's state, 0 for the others),
  ``ordersync_erp_in_flight{erp}``, ``ordersync_erp_failures_total{erp}``,
  ``ordersync_erp_consecutive_failures{erp}``, ``ordersync_erp_calls_total{erp,lane}`` (port calls) and
  ``ordersync_erp_wire_calls_total{erp,lane}`` (requests on the wire: what the ERP pays for);
- ``ordersync_worker_heartbeat_age_seconds{worker,host}``: seconds since each worker's last heartbeat
  (a worker that stopped cleanly has none; one that died keeps growing until it is forgotten);
- with a NATS bus, as the broker answers this process (each question bounded by ``[health]
  probe_timeout_seconds``): ``ordersync_nats_connected``, ``ordersync_nats_reconnects_total``,
  ``ordersync_nats_stream_leader{stream}`` (1: the stream has a leader), ``ordersync_nats_stream_replicas
  {stream,state}`` (current, behind, down), and per consumer and stream ``ordersync_nats_consumer_pending``,
  ``ordersync_nats_consumer_ack_pending`` and ``ordersync_nats_consumer_redelivered``;
- ``ordersync_gap_repair_republished_total``: events gap repair republished, counted in this process (the
  worker that ran it: scrape the workers' health ports).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Select, func, select
from starlette.requests import Request

from ordersync.api.ops import OPEN_STATES, thresholds
from ordersync.canonical.v1 import CaseType, OrderState
from ordersync.domain.sla import SlaClock, stopped_seconds, summarize
from ordersync.messaging.heartbeat import heartbeats
from ordersync.messaging.nats import NatsTransport
from ordersync.ports.erp import CircuitState
from ordersync.reads.sla import SlaScope, readings
from ordersync.runtime.hub import Hub
from ordersync.store.schema import alert_notifications, cases, dead_letters, deliveries, orders, outbox

router = APIRouter(tags=["health"])

#: histogram buckets in seconds: a minute to a week
BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 2 * 86400.0, 7 * 86400.0)


class HubCollector(Collector):
    """Collects on each scrape (one read transaction, plus each ERP gate's in-memory status)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        now = hub.clock.now()
        with hub.db.read() as conn:
            yield from _orders(conn)
            yield from _sla(conn, hub, now)
            yield from _cases(conn, now)
            yield from _messaging(conn, now)
            yield from _alerts(conn, now)
            yield from _workers(conn, now)
        yield from _erps(hub)
        yield from _bus(hub)


def _orders(conn: Connection) -> Iterator[Metric]:
    counts = _counts(conn, select(orders.c.state, func.count()).group_by(orders.c.state))
    family = GaugeMetricFamily("ordersync_orders", "Orders per lifecycle state", labels=["state"])
    for state in OrderState:
        family.add_metric([state.value], float(counts.get(state.value, 0)))
    yield family


def _sla(conn: Connection, hub: Hub, now: dt.datetime) -> Iterator[Metric]:
    window = hub.settings.sla.window_seconds
    found = readings(conn, SlaScope(since=now - dt.timedelta(seconds=window)))
    limits = thresholds(hub.settings)
    summary = summarize(found, limits, now).get("all", {})
    hist = GaugeHistogramMetricFamily(
        "ordersync_sla_seconds", f"SLA clocks that stopped, orders received in the last {window:.0f} s",
        labels=["clock"])
    breached = GaugeMetricFamily("ordersync_sla_breached", "Stopped SLA clocks over their threshold",
                                 labels=["clock"])
    running = GaugeMetricFamily("ordersync_sla_open_breached", "Running SLA clocks already over their threshold",
                                labels=["clock"])
    threshold = GaugeMetricFamily("ordersync_sla_threshold_seconds", "SLA threshold per clock", labels=["clock"])
    for clock in SlaClock:
        seconds = stopped_seconds(found, clock)
        buckets = [(_le(b), float(sum(1 for s in seconds if s <= b))) for b in BUCKETS]
        hist.add_metric([clock.value], [*buckets, ("+Inf", float(len(seconds)))], gsum_value=sum(seconds))
        stats = summary.get(clock)
        breached.add_metric([clock.value], float(stats.breached if stats else 0))
        running.add_metric([clock.value], float(stats.open_breached if stats else 0))
        threshold.add_metric([clock.value], limits.of(clock))
    yield from (hist, breached, running, threshold)


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


def _counts(conn: Connection, query: Select[Any]) -> dict[str, int]:
    return {str(row[0]): int(row[1]) for row in conn.execute(query)}


def _cases(conn: Connection, now: dt.datetime) -> Iterator[Metric]:
    c = cases.c
    open_ = _counts(conn, select(c.type, func.count()).where(c.state.in_(OPEN_STATES)).group_by(c.type))
    late = _counts(conn, select(c.type, func.count()).where(c.state.in_(OPEN_STATES), c.due_at < now)
                   .group_by(c.type))
    opened = GaugeMetricFamily("ordersync_cases_open", "Open exception cases per type", labels=["type"])
    overdue = GaugeMetricFamily("ordersync_cases_overdue", "Open cases past their due time", labels=["type"])
    for t in CaseType:
        opened.add_metric([t.value], float(open_.get(t.value, 0)))
        overdue.add_metric([t.value], float(late.get(t.value, 0)))
    yield from (opened, overdue)


def _messaging(conn: Connection, now: dt.datetime) -> Iterator[Metric]:
    letters = GaugeMetricFamily("ordersync_dead_letters", "Dead letters per status", labels=["status"])
    by_status = _counts(conn, select(dead_letters.c.status, func.count()).group_by(dead_letters.c.status))
    for status in sorted({"dead", "replayed", *by_status}):
        letters.add_metric([status], float(by_status.get(status, 0)))
    yield letters
    reasons = GaugeMetricFamily("ordersync_dead_letters_by_reason", "Dead letters not replayed yet, per reason "
                                "(malformed, schema_violation: bad input; exhausted: a failing consumer)",
                                labels=["reason"])
    by_reason = _counts(conn, select(dead_letters.c.reason, func.count()).where(dead_letters.c.status == "dead")
                        .group_by(dead_letters.c.reason))
    for reason in sorted({"malformed", "unknown_type", "schema_violation", "exhausted", "rejected", "not_retryable",
                          *by_reason}):
        reasons.add_metric([reason], float(by_reason.get(reason, 0)))
    yield reasons
    count, oldest = conn.execute(select(func.count(), func.min(outbox.c.occurred_at))
                                 .where(outbox.c.published_at.is_(None))).one()
    yield GaugeMetricFamily("ordersync_outbox_unpublished", "Events in the outbox not relayed yet", value=count)
    lag = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    yield GaugeMetricFamily("ordersync_outbox_lag_seconds", "Age of the oldest event not relayed yet",
                            value=max(0.0, lag))
    pending = GaugeMetricFamily("ordersync_deliveries_pending", "Messages queued per consumer", labels=["consumer"])
    for consumer, n in conn.execute(select(deliveries.c.consumer, func.count()).group_by(deliveries.c.consumer)):
        pending.add_metric([consumer], float(n))
    yield pending


def _alerts(conn: Connection, now: dt.datetime) -> Iterator[Metric]:
    n = alert_notifications.c
    states = GaugeMetricFamily("ordersync_alert_notifications", "Alert notifications per channel and state "
                               "(failed: given up, or no route for the team)", labels=["channel", "state"])
    failures = CounterMetricFamily("ordersync_alert_send_failures", "Failed alert sends (each attempt)",
                                   labels=["channel"])
    counts: dict[tuple[str, str], int] = {}
    failed: dict[str, int] = {}
    for channel, state, count, fails in conn.execute(select(n.channel, n.state, func.count(), func.sum(n.failures))
                                                     .group_by(n.channel, n.state)):
        counts[(channel, state)] = int(count)
        failed[channel] = failed.get(channel, 0) + int(fails or 0)
    shown = {(channel, state) for channel in ("webhook", "email") for state in ("pending", "sent", "failed")}
    for channel, state in sorted(shown | set(counts)):
        states.add_metric([channel, state], float(counts.get((channel, state), 0)))
    for channel in sorted({"webhook", "email", *failed}):
        failures.add_metric([channel], float(failed.get(channel, 0)))
    yield from (states, failures)
    oldest = conn.execute(select(func.min(n.created_at)).where(n.state == "pending")).scalar()
    age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    yield GaugeMetricFamily("ordersync_alert_oldest_pending_seconds", "Age of the oldest alert not sent yet",
                            value=max(0.0, age))


def _aware(at: Any) -> dt.datetime:
    """MIN() over a time column comes back as text on SQLite and naive on some drivers: UTC either way."""
    value = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _erps(hub: Hub) -> Iterator[Metric]:
    circuit = GaugeMetricFamily("ordersync_erp_circuit", "ERP circuit breaker state (1 = current)",
                                labels=["erp", "state"])
    in_flight = GaugeMetricFamily("ordersync_erp_in_flight", "ERP calls in flight", labels=["erp"])
    calls = CounterMetricFamily("ordersync_erp_calls", "ERP port calls by priority lane", labels=["erp", "lane"])
    failures = CounterMetricFamily("ordersync_erp_failures", "ERP calls that failed (after the gate's retries)",
                                   labels=["erp"])
    consecutive = GaugeMetricFamily("ordersync_erp_consecutive_failures", "ERP calls failed in a row (the circuit "
                                    "opens at the configured failure_threshold)", labels=["erp"])
    wire = CounterMetricFamily("ordersync_erp_wire_calls", "Requests sent to the ERP (Tryton: JSON-RPC) by lane",
                               labels=["erp", "lane"])
    if hub.erps is not None:
        for name in hub.erps.names():
            status = hub.erps.status(name)
            for state in CircuitState:
                circuit.add_metric([name, state.value], 1.0 if status.circuit is state else 0.0)
            in_flight.add_metric([name], float(status.in_flight))
            failures.add_metric([name], float(status.failures))
            consecutive.add_metric([name], float(status.consecutive_failures))
            for lane, n in sorted(status.lane_calls.items()):
                calls.add_metric([name, lane], float(n))
            for lane, n in sorted(status.wire_calls.items()):
                wire.add_metric([name, lane], float(n))
    yield from (circuit, in_flight, calls, wire, failures, consecutive)


def _workers(conn: Connection, now: dt.datetime) -> Iterator[Metric]:
    age = GaugeMetricFamily("ordersync_worker_heartbeat_age_seconds", "Seconds since each worker's last heartbeat",
                            labels=["worker", "host"])
    for beat in heartbeats(conn):
        age.add_metric([beat.id, beat.host], beat.age(now))
    yield age


def _bus(hub: Hub) -> Iterator[Metric]:
    if hub.gap_repair is not None:
        yield CounterMetricFamily("ordersync_gap_repair_republished", "Events gap repair republished (this process)",
                                  value=hub.gap_repair.republished)
    if not isinstance(hub.transport, NatsTransport):
        return
    bus = hub.transport.probe(hub.settings.health.probe_timeout_seconds)
    yield GaugeMetricFamily("ordersync_nats_connected", "1 while this process is connected to NATS",
                            value=1.0 if bus.connected else 0.0)
    yield CounterMetricFamily("ordersync_nats_reconnects", "Reconnections to NATS (this process)",
                              value=bus.reconnects)
    leader = GaugeMetricFamily("ordersync_nats_stream_leader", "1 when the stream has a leader (quorum)",
                               labels=["stream"])
    replicas = GaugeMetricFamily("ordersync_nats_stream_replicas", "Stream replicas other than the leader, by state",
                                 labels=["stream", "state"])
    for s in bus.streams:
        leader.add_metric([s.name], 0.0 if s.error is not None or s.leader is None else 1.0)
        states = {"current": 0, "behind": 0, "down": 0}
        for p in s.peers:
            states["down" if p.down else "current" if p.current else "behind"] += 1
        for state, n in states.items():
            replicas.add_metric([s.name, state], float(n))
    families = {name: GaugeMetricFamily(f"ordersync_nats_consumer_{name}", text, labels=["consumer", "stream"])
                for name, text in (("pending", "Messages the broker has not delivered to the consumer yet"),
                                   ("ack_pending", "Messages delivered and not acknowledged yet"),
                                   ("redelivered", "Messages delivered more than once and not acknowledged yet"))}
    for d in bus.durables:
        if d.error is None:
            families["pending"].add_metric([d.consumer, d.stream], float(d.pending))
            families["ack_pending"].add_metric([d.consumer, d.stream], float(d.ack_pending))
            families["redelivered"].add_metric([d.consumer, d.stream], float(d.redelivered))
    yield from (leader, replicas, *families.values())


def registry_for(hub: Hub) -> CollectorRegistry:
    """A registry of its own per app (the process-wide default would collect every app's hub)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text exposition (see the module docstring)."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
