"""The sign-in throttle and the device cookies it trusts (:mod:`ordersync.web.signin`): an attacker's
guesses slow down unknown browsers for the address and the source they use, never people who have signed
in from their browser before, and never other addresses from other sources."""

from __future__ import annotations

import os

from ordersync.web import signin
from ordersync.web.signin import PAIR_FAILURES, SigninThrottle, device_cookie, device_for, remember_device

os.environ.setdefault("ORDERSYNC_WEB_SECRET", "unit-tests")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_guessing_source_waits_per_address_then_for_every_address_it_tries() -> None:
    clock = Clock()
    throttle = SigninThrottle(per_source=20, per_person=10, clock=clock)
    for _ in range(PAIR_FAILURES):
        assert throttle.wait("10.0.0.9", "rita@alpen.example", None) == 0
        throttle.failed("10.0.0.9", "rita@alpen.example", None)
    assert throttle.wait("10.0.0.9", "rita@alpen.example", None) > 0  # this source, this address
    assert throttle.wait("10.0.0.7", "rita@alpen.example", None) == 0  # another source: not yet
    assert throttle.wait("10.0.0.9", "sam@alpen.example", None) == 0  # another address: not yet
    for i in range(20):  # credential stuffing: many addresses from one source
        throttle.failed("10.0.0.9", f"user{i}@x.example", None)
    assert throttle.wait("10.0.0.9", "sam@alpen.example", None) > 0  # unknown browsers there now wait
    assert throttle.wait("10.0.0.7", "sam@alpen.example", None) == 0  # elsewhere nobody does
    clock.now += signin.WINDOW_SECONDS + 1
    assert throttle.wait("10.0.0.9", "sam@alpen.example", None) == 0  # the window passed


def test_many_sources_guessing_one_address_slow_unknown_browsers_but_not_its_owners_device() -> None:
    clock = Clock()
    throttle = SigninThrottle(per_source=100, per_person=10, clock=clock)
    for i in range(10):
        throttle.failed(f"203.0.113.{i}", "rita@alpen.example", None)
    assert throttle.wait("198.51.100.1", "rita@alpen.example", None) > 0
    assert throttle.wait("198.51.100.1", "rita@alpen.example", "rita-device") == 0  # her own browser


def test_a_device_that_fails_too_often_loses_its_standing() -> None:
    throttle = SigninThrottle(clock=Clock())
    for _ in range(signin.DEVICE_FAILURES):
        assert throttle.wait("10.0.0.1", "rita@alpen.example", "stolen-laptop") == 0
        throttle.failed("10.0.0.1", "rita@alpen.example", "stolen-laptop")
    for _ in range(PAIR_FAILURES):  # now counted as any unknown browser
        throttle.failed("10.0.0.1", "rita@alpen.example", "stolen-laptop")
    assert throttle.wait("10.0.0.1", "rita@alpen.example", "stolen-laptop") > 0


def test_a_success_clears_the_pair_but_not_the_address_or_source_counts() -> None:
    throttle = SigninThrottle(per_person=3, clock=Clock())
    for _ in range(3):
        throttle.failed("10.0.0.1", "rita@alpen.example", None)
    throttle.succeeded("10.0.0.1", "rita@alpen.example")
    assert throttle.wait("10.0.0.2", "rita@alpen.example", None) > 0  # still 3 failures for the address


def test_device_cookies_name_one_person_are_signed_and_expire() -> None:
    cookie = device_cookie("Rita@Alpen.example", now=1000.0)
    assert device_for(cookie, "rita@alpen.example", now=2000.0) is not None
    assert device_for(cookie, "sam@alpen.example", now=2000.0) is None  # another person's browser
    assert device_for(cookie, "rita@alpen.example", now=1000.0 + 181 * 86400) is None  # expired
    forged = cookie.rsplit(".", 1)[0] + ".AAAA"
    assert device_for(forged, "rita@alpen.example", now=2000.0) is None
    both = remember_device(device_cookie("rita@alpen.example"), "sam@alpen.example")
    assert device_for(both, "rita@alpen.example") and device_for(both, "sam@alpen.example")
    assert "rita" not in both and "alpen" not in both  # no address in the clear
