"""Benchmark: events per second through outbox -> relay -> idempotent consumer, next to the raw
single-row commit rate of the same database, measured in the same run.

    .venv/bin/python -m bench.bus [--events 20000] [--repeat 3] [--stores sqlite,postgresql]

For each store it prints the median of ``--repeat`` runs of:
- raw commits/s: one-row INSERT + COMMIT through the bare driver (sqlite3 / psycopg), the ceiling a
  naive one-transaction-per-event design would hit;
- pipeline events/s: the outbox already filled, relay + consumer (inbox row + a counter update per
  event, each in the consumer's transaction) until every event is processed;
- end-to-end events/s: a producer thread writes events in transactions of 50 (as flows do: one state
  change, several events) while the worker runs in another thread; from first write to last event
  processed.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from bench._common import median, pg_available, scratch_pg
from ordersync.bootstrap import Hub, build_hub
from ordersync.config import Settings
from ordersync.domain.events import Event, register
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store.schema import inbox, order_counters
from ordersync.store.sql import upsert_add, upsert_add_many
from ordersync.store.uow import UnitOfWork


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
        with hub.uow() as uow:
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

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw_bench (id BIGSERIAL PRIMARY KEY, body TEXT)")
        conn.commit()
        start = time.perf_counter()
        for i in range(rows):
            conn.execute("INSERT INTO raw_bench (body) VALUES (%s)", (f"row {i}",))
            conn.commit()
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
    raw, pipe, e2e = [], [], []
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--per-message", action="store_true",
                        help="consumer updates its counter once per message instead of once per batch")
    args = parser.parse_args()
    global BATCHED
    BATCHED = not args.per_message
    handler = "per-message handler" if args.per_message else "batched handler (one write per counter per batch)"
    print(f"bus benchmark: {args.events} events per run, median of {args.repeat} runs, {handler}")
    print(f"{'store':<11} {'raw commits/s':>14} {'pipeline ev/s':>14} {'end-to-end ev/s':>16} "
          f"{'e2e / raw':>10} {'goal':>12}")
    for kind in args.stores.split(","):
        if kind == "postgresql" and not pg_available():
            print(f"{kind:<11} skipped: no PostgreSQL at 127.0.0.1:5432")
            continue
        r = run_store(kind, args.events, args.repeat)
        goal = ("met" if r["e2e"] >= 5000 else "MISSED") + " (5000)" if kind == "sqlite" else "-"
        print(f"{kind:<11} {r['raw']:>14,.0f} {r['pipeline']:>14,.0f} {r['e2e']:>16,.0f} "
              f"{r['e2e'] / r['raw']:>9.2f}x {goal:>12}", flush=True)


if __name__ == "__main__":
    main()
