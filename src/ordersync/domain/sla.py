"""SLA clocks per order: what each clock measures, its percentiles and its breaches.

Three clocks (DESIGN.md, decision 6):

- **acknowledgment**: the order was received -> the ERP accepted it. Holds count: a buyer waits
  while finance looks at the credit limit too.
- **fulfillment**: accepted -> shipped (the whole order).
- **invoice sync**: an invoice was posted in the ERP -> the buyer can see it in the hub.

A clock that has stopped is a *sample* (its duration counts in the percentiles); a clock still
running is *open* and counts as a breach once it is older than its threshold. A clock that can no
longer stop (an order rejected or cancelled before acceptance) is not produced at all: the flows
decide which clocks exist, this module only does arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class SlaClock(StrEnum):
    ACKNOWLEDGMENT = "acknowledgment"
    FULFILLMENT = "fulfillment"
    INVOICE_SYNC = "invoice_sync"


@dataclass(frozen=True)
class SlaThresholds:
    """Seconds each clock may run before it is a breach (``[sla]`` in the configuration)."""

    acknowledgment: float = 300.0
    fulfillment: float = 2 * 86400.0
    invoice_sync: float = 900.0

    def of(self, clock: SlaClock) -> float:
        seconds: float = getattr(self, clock.value)
        return seconds


@dataclass(frozen=True)
class ClockReading:
    """One clock of one order (or of one invoice, for invoice sync), in a group (an account, a channel,
    or ``all``)."""

    clock: SlaClock
    group: str
    started_at: dt.datetime
    stopped_at: dt.datetime | None = None
    #: False when a time is known to the day only (an ERP that keeps a posting *date*): such a clock is
    #: counted as unmeasured, never as a duration of hours it did not take
    precise: bool = True

    def seconds(self, now: dt.datetime) -> float:
        """How long the clock ran (until now, if it is still running); never negative (clocks of two
        systems can disagree by a little)."""
        return max(0.0, ((self.stopped_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True)
class ClockSummary:
    """Percentiles of stopped clocks; breaches among stopped and among running ones."""

    threshold_seconds: float
    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    breached: int = 0
    open: int = 0
    open_breached: int = 0
    unmeasured: int = 0


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of ascending ``ordered``: always a measured value,
    never an interpolation between two orders."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_clock(readings: Sequence[ClockReading], threshold: float, now: dt.datetime) -> ClockSummary:
    measured = [r for r in readings if r.precise]
    done = sorted(r.seconds(now) for r in measured if r.stopped_at is not None)
    running = [r.seconds(now) for r in measured if r.stopped_at is None]
    return ClockSummary(
        threshold_seconds=threshold, count=len(done), p50=percentile(done, 50), p90=percentile(done, 90),
        p99=percentile(done, 99), breached=sum(1 for s in done if s > threshold), open=len(running),
        open_breached=sum(1 for s in running if s > threshold), unmeasured=len(readings) - len(measured))


def stopped_seconds(readings: Iterable[ClockReading], clock: SlaClock) -> list[float]:
    """Durations of the measured, stopped readings of ``clock`` (for histograms)."""
    return [r.seconds(r.stopped_at) for r in readings
            if r.clock is clock and r.precise and r.stopped_at is not None]


def day_precision(at: dt.datetime) -> bool:
    """A time that is exactly midnight UTC came from a date (what Tryton keeps for a posting)."""
    return at.astimezone(dt.UTC).time() == dt.time(0)


def summarize(readings: Iterable[ClockReading], thresholds: SlaThresholds, now: dt.datetime
              ) -> dict[str, dict[SlaClock, ClockSummary]]:
    """Per group, a summary of every clock (an empty one where the group has no reading of it)."""
    grouped: dict[str, dict[SlaClock, list[ClockReading]]] = defaultdict(lambda: defaultdict(list))
    for r in readings:
        grouped[r.group][r.clock].append(r)
    return {
        group: {clock: summarize_clock(by_clock.get(clock, []), thresholds.of(clock), now) for clock in SlaClock}
        for group, by_clock in sorted(grouped.items())
    }
