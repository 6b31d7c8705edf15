"""SLA clocks per order: what each clock measures, its percentiles and its breaches.

Three clocks (DESIGN.md, decision 6):

- **acknowledgment**: the order was received -> the ERP accepted it, *the hub's own latency*: time the
  order spent on hold (a credit or price hold waiting for a person) is not counted. A released hold used
  to count as the hub's breach (one credit hold put the p99 at ten minutes, in red); people's time is
  measured apart, as **holds** (:class:`HoldSpan`, :func:`summarize_holds`), never as the hub's breach.
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
    #: spans (start, end; None: still on hold) during which the clock stood still: the order waited for a
    #: person, not for the hub
    paused: tuple[tuple[dt.datetime, dt.datetime | None], ...] = ()

    def seconds(self, now: dt.datetime) -> float:
        """How long the clock ran (until now, if it is still running), less the paused spans; never
        negative (clocks of two systems can disagree by a little)."""
        end = self.stopped_at or now
        ran = (end - self.started_at).total_seconds()
        return max(0.0, ran - sum(overlap(self.started_at, end, a, b or now) for a, b in self.paused))


def overlap(start: dt.datetime, end: dt.datetime, a: dt.datetime, b: dt.datetime) -> float:
    """Seconds that [a, b] and [start, end] share."""
    return max(0.0, (min(end, b) - max(start, a)).total_seconds())


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


# -- holds: people's time, apart from the hub's -------------------------------------------------------------

@dataclass(frozen=True)
class HoldSpan:
    """One hold of one order: from going on hold to its release (None: still held). ``kind`` is the case
    type that holds it (credit_hold, price_mismatch, ...)."""

    group: str
    kind: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None

    def seconds(self, now: dt.datetime) -> float:
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True)
class HoldSummary:
    """Released holds (percentiles of how long people took) and the holds still waiting."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    open: int = 0
    oldest_open: float | None = None


def summarize_holds(spans: Sequence[HoldSpan], now: dt.datetime) -> HoldSummary:
    done = sorted(s.seconds(now) for s in spans if s.ended_at is not None)
    waiting = [s.seconds(now) for s in spans if s.ended_at is None]
    return HoldSummary(count=len(done), p50=percentile(done, 50), p90=percentile(done, 90),
                       p99=percentile(done, 99), open=len(waiting), oldest_open=max(waiting, default=None))


# -- over time --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HourPercentiles:
    """p50/p90/p99 of the durations that ended in the hour starting at ``start`` (None: nothing ended)."""

    start: dt.datetime
    count: int
    p50: float | None
    p90: float | None
    p99: float | None


def hourly_percentiles(samples: Iterable[tuple[dt.datetime, float]], starts: Sequence[dt.datetime]
                       ) -> list[HourPercentiles]:
    """Percentiles per hour of ``(ended at, seconds)`` samples, for the hours beginning at ``starts``
    (ascending, an hour apart); samples outside them are left out."""
    by_hour: dict[dt.datetime, list[float]] = defaultdict(list)
    first, last = (starts[0], starts[-1] + dt.timedelta(hours=1)) if starts else (None, None)
    for at, seconds in samples:
        if first is not None and last is not None and first <= at < last:
            by_hour[at.replace(minute=0, second=0, microsecond=0)].append(seconds)
    out = []
    for start in starts:
        values = sorted(by_hour.get(start, []))
        out.append(HourPercentiles(start, len(values), percentile(values, 50), percentile(values, 90),
                                   percentile(values, 99)))
    return out


def acknowledgment_samples(readings: Iterable[ClockReading]) -> list[tuple[dt.datetime, float]]:
    """(accepted at, the hub's own seconds) of every measured, stopped acknowledgment clock."""
    return [(r.stopped_at, r.seconds(r.stopped_at)) for r in readings
            if r.clock is SlaClock.ACKNOWLEDGMENT and r.precise and r.stopped_at is not None]


def hold_samples(spans: Iterable[HoldSpan]) -> list[tuple[dt.datetime, float]]:
    """(released at, seconds on hold) of every released hold."""
    return [(s.ended_at, s.seconds(s.ended_at)) for s in spans if s.ended_at is not None]
