"""Retry policy: exponential backoff with jitter and a maximum number of attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(n)`` is the wait after the n-th failed attempt: ``base * factor**(n-1)``, capped, then
    multiplied by a random factor in ``[1 - jitter, 1]`` so that retries of many messages spread out."""

    max_attempts: int = 5
    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 300.0
    jitter: float = 0.5
    #: waits while a remote system is unavailable do not use up attempts; they back off up to this cap
    wait_cap_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap_seconds, self.base_seconds * self.factor ** max(0, failed_attempts - 1))
        spread = (rng or random).uniform(1 - self.jitter, 1.0)
        return raw * spread

    def wait_delay(self, waits: int, rng: random.Random | None = None) -> float:
        return min(self.wait_cap_seconds, self.delay(waits, rng))

    def exhausted(self, failed_attempts: int) -> bool:
        return failed_attempts >= self.max_attempts
