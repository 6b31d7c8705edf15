"""Time for the double: the hub's own clocks (:mod:`ordersync.domain.clock`), so one clock can drive the
hub and the double together; :class:`ManualClock` (the domain's fake clock, starting on the double's
day) lets tests cross a four-hour webhook retry schedule or refill a leaky bucket without sleeping."""

from __future__ import annotations

import datetime as dt

from ordersync.domain.clock import Clock, FakeClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]


class ManualClock(FakeClock):
    """A clock that moves only when a test calls :meth:`advance`."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        super().__init__(start or dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC))
