"""Readiness: what ``/ready`` answers, on the API's port and on a worker's health port.

:func:`observe` looks (the store, each ERP's circuit, the bus: NATS connection, every stream's leader and
replicas, every durable's backlog; worker heartbeats; the outbox), :func:`assess` decides (pure, unit
tested):

- **not ready** (HTTP 503), with the reasons: the store does not answer; the NATS connection is down or
  the process refused to start (streams differ from its configuration); a stream has no leader or does
  not answer (quorum lost); no worker has beaten within ``[health] worker_stale_seconds``;
- **degraded** (200), saying which: an ERP circuit not closed; a NATS node holding a replica offline or
  behind (one node down); a worker missing (its beat old, not yet forgotten); the outbox's oldest
  unpublished event or a consumer's broker backlog over its threshold;
- **ready** otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, select, text

from ordersync.config import HealthSettings
from ordersync.messaging.heartbeat import WorkerBeat, heartbeats
from ordersync.messaging.nats import NatsTransport
from ordersync.messaging.streams import BusState
from ordersync.runtime.hub import Hub
from ordersync.store.schema import outbox

Status = Literal["ready", "degraded", "not ready"]


@dataclass(frozen=True)
class Observations:
    now: dt.datetime
    store_error: str | None = None
    #: ERP name -> its gate's status (``circuit``, ``last_error`` ...)
    erps: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: None: the embedded bus (queues in the store)
    bus: BusState | None = None
    workers: tuple[WorkerBeat, ...] = ()
    outbox_unpublished: int = 0
    outbox_lag_seconds: float = 0.0


@dataclass(frozen=True)
class Readiness:
    status: Status
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    body: dict[str, Any]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "not ready" else 200


def assess(seen: Observations, limits: HealthSettings) -> Readiness:
    """The verdict on what :func:`observe` saw (see the module docstring)."""
    reasons: list[str] = []
    warnings: list[str] = []
    body: dict[str, Any] = {"store": "ok" if seen.store_error is None else seen.store_error, "erps": seen.erps}
    if seen.store_error is not None:
        reasons.append(f"store: {seen.store_error}")
    for name, erp in seen.erps.items():
        if erp.get("circuit") != "closed":
            warnings.append(f"ERP {name}: circuit {erp.get('circuit')}"
                            + (f" ({erp['last_error']})" if erp.get("last_error") else ""))
    body["bus"] = _bus(seen.bus, limits, reasons, warnings)
    if seen.store_error is None:
        body["workers"] = _workers(seen, limits, reasons, warnings)
        lag = round(seen.outbox_lag_seconds, 1)
        body["outbox"] = {"unpublished": seen.outbox_unpublished, "lag_seconds": lag}
        if lag > limits.outbox_lag_seconds:
            warnings.append(f"outbox: the oldest unpublished event is {lag:g} s old "
                            f"(threshold {limits.outbox_lag_seconds:g} s)")
    status: Status = "not ready" if reasons else "degraded" if warnings else "ready"
    return Readiness(status, tuple(reasons), tuple(warnings),
                     {"status": status, "reasons": reasons, "warnings": warnings, **body})


def _bus(bus: BusState | None, limits: HealthSettings, reasons: list[str], warnings: list[str]) -> dict[str, Any]:
    if bus is None:
        return {"kind": "embedded"}
    out: dict[str, Any] = {"kind": "nats", "connected": bus.connected, "server": bus.server,
                           "reconnects": bus.reconnects}
    if bus.error is not None:
        out["error"] = bus.error
        reasons.append(f"NATS: {bus.error}")
        return out
    if not bus.connected:
        reasons.append("NATS: not connected (reconnecting)")
    streams: dict[str, Any] = {}
    leaderless: list[str] = []
    down: dict[str, list[str]] = {}  # node -> streams it holds a replica of and is offline for
    behind: dict[str, list[str]] = {}
    for s in bus.streams:
        if s.error is not None or s.leader is None:
            leaderless.append(s.name)
            streams[s.name] = {"replicas": s.replicas, "leader": None, "error": s.error or "no leader"}
            continue
        streams[s.name] = {"replicas": s.replicas, "leader": s.leader, "messages": s.messages,
                           "peers": {p.name: _down(p.seen_seconds_ago) if p.down else
                                     "current" if p.current else f"behind by {p.lag}" for p in s.peers}}
        for p in s.peers:
            if p.down:
                down.setdefault(p.name, []).append(s.name)
            elif not p.current:
                behind.setdefault(p.name, []).append(s.name)
    out["streams"] = streams
    if leaderless:
        why = next((s.error for s in bus.streams if s.name in leaderless and s.error), "no leader")
        reasons.append(f"NATS: quorum lost: {len(leaderless)} stream(s) without a leader "
                       f"({', '.join(leaderless[:3])}{' ...' if len(leaderless) > 3 else ''}: {why})")
    for node, names in sorted(down.items()):
        warnings.append(f"NATS node {node} is down (it holds a replica of {len(names)} stream(s))")
    for node, names in sorted(behind.items()):
        warnings.append(f"NATS node {node} is catching up on {len(names)} stream(s)")
    consumers: dict[str, dict[str, int]] = {}
    for d in bus.durables:
        if d.error is not None:
            continue  # a durable that does not answer: its stream's state says why
        c = consumers.setdefault(d.consumer, {"pending": 0, "ack_pending": 0, "redelivered": 0})
        c["pending"] += d.pending
        c["ack_pending"] += d.ack_pending
        c["redelivered"] += d.redelivered
    for consumer, c in sorted(consumers.items()):
        if c["pending"] > limits.consumer_pending:
            warnings.append(f"consumer {consumer}: {c['pending']} messages waiting at the broker "
                            f"(threshold {limits.consumer_pending})")
    out["consumers"] = consumers
    return out


def _down(seen_seconds_ago: float | None) -> str:
    return "down (not heard from)" if seen_seconds_ago is None else f"down (last seen {seen_seconds_ago:.0f} s ago)"


def _workers(seen: Observations, limits: HealthSettings, reasons: list[str], warnings: list[str]) -> dict[str, Any]:
    live = [w for w in seen.workers if w.age(seen.now) <= limits.worker_stale_seconds]
    missing = [w for w in seen.workers if limits.worker_stale_seconds < w.age(seen.now) <= limits.forget_after_seconds]

    def shown(w: WorkerBeat) -> dict[str, Any]:
        return {"id": w.id, "host": w.host, "pid": w.pid, "started_at": w.started_at.isoformat(),
                "last_beat_seconds": round(w.age(seen.now), 1), "consumers": len(w.consumers),
                "health_port": w.health_port}

    if not live and limits.require_worker:
        last = min(missing, key=lambda w: w.age(seen.now), default=None)
        reasons.append("no live worker" + (f" (the last beat, of {last.id}, is {last.age(seen.now):.0f} s old)"
                                           if last else ": none has run since the store was set up"))
    for w in missing:
        warnings.append(f"worker {w.id} is missing: its last beat is {w.age(seen.now):.0f} s old "
                        f"(threshold {limits.worker_stale_seconds:g} s)")
    return {"live": [shown(w) for w in live], "missing": [shown(w) for w in missing]}


def observe(hub: Hub) -> Observations:
    """Look at everything :func:`assess` judges; each look is bounded (``probe_timeout_seconds``)."""
    now = hub.clock.now()
    erps: dict[str, dict[str, Any]] = {}
    if hub.erps is not None:
        for name in hub.erps.names():
            status = hub.erps.status(name)
            erps[name] = {"circuit": status.circuit.value, "last_error": status.last_error,
                          "in_flight": status.in_flight, "max_concurrency": status.max_concurrency,
                          "budget_scope": status.scope}
    bus = None
    if isinstance(hub.transport, NatsTransport):
        bus = hub.transport.probe(hub.settings.health.probe_timeout_seconds)
    try:
        with hub.db.read() as conn:
            conn.execute(text("SELECT 1"))
            workers = tuple(heartbeats(conn))
            count, oldest = conn.execute(select(func.count(), func.min(outbox.c.occurred_at))
                                         .where(outbox.c.published_at.is_(None))).one()
    except Exception as exc:  # the answer is the diagnosis
        return Observations(now=now, store_error=f"{type(exc).__name__}: {exc}"[:300], erps=erps, bus=bus)
    lag = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    return Observations(now=now, erps=erps, bus=bus, workers=workers, outbox_unpublished=int(count),
                        outbox_lag_seconds=max(0.0, lag))


def readiness(hub: Hub) -> Readiness:
    return assess(observe(hub), hub.settings.health)


def _aware(at: Any) -> dt.datetime:
    """MIN() over a time column comes back as text on SQLite and naive on some drivers: UTC either way."""
    value = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


__all__ = ["Observations", "Readiness", "assess", "observe", "readiness"]
