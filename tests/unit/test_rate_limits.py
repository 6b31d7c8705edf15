"""The API's token bucket per key, alone and as one of several API processes (serve --workers N)."""

from __future__ import annotations

from ordersync.api.auth import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, n: int) -> int:
    return sum(limiter.take("key", 600) == 0 for _ in range(n))


def test_a_key_gets_a_burst_of_a_tenth_of_its_minute_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert allowed(limiter, 100) == 60  # 600/min: bursts of 60
    clock.now += 1.0
    assert allowed(limiter, 100) == 10  # then 10 per second
    assert limiter.take("key", 600) > 0  # and the caller is told how long to wait


def test_one_of_two_api_processes_gives_a_key_half_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, share=0.5)
    assert allowed(limiter, 100) == 30
    clock.now += 1.0
    assert allowed(limiter, 100) == 5
