"""Helpers shared by the benchmarks: timing, medians, percentiles, a PostgreSQL scratch database, and
the figures each benchmark reports for ``python -m bench.all``'s table."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TypeVar

T = TypeVar("T")

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@contextmanager
def scratch_pg() -> Iterator[str]:
    import psycopg

    name = f"ordersync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: set by ``bench.all``: the file each benchmark appends its figures to (JSON lines)
FIGURES_ENV = "ORDERSYNC_BENCH_FIGURES"


@dataclass
class Figure:
    """One figure a benchmark reports: its value, the baseline measured in the same run (if it has one),
    and the goal it is held to (``goal`` is a bound, ``higher`` says which side of it is good)."""

    bench: str
    name: str
    value: float
    unit: str = ""
    baseline: float | None = None
    baseline_name: str = ""
    goal: float | None = None
    higher: bool = False  # True: at least ``goal`` is good (a rate); False: at most (a latency)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.higher else self.value <= self.goal

    def verdict(self) -> str:
        return {None: "", True: "met", False: "MISSED"}[self.met]


def emit(figures: list[Figure]) -> None:
    """Hand the figures to ``bench.all`` (when it runs this benchmark); a benchmark run on its own
    prints its own lines and this does nothing."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for figure in figures:
            out.write(json.dumps(asdict(figure)) + "\n")
