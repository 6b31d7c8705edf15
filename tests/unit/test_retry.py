from __future__ import annotations

import random

import pytest

from ordersync.messaging.retry import RetryPolicy


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1, factor=2, cap_seconds=30, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (9, 30)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling * 0.5
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling * 0.3  # jitter actually spreads retries


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"jitter": 1.5}])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
