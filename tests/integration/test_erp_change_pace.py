"""Change detection's pace against the ERP twin: one cheap question per turn while nothing changes, a
full read only when the answer moves, the interval back to fast after a change and doubling to the
idle cap, and a full sweep now and then whatever the probe says."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.domain.clock import FakeClock
from ordersync.ports.erp import Lane
from ordersync.runtime.erp_changes import Cadence
from tests.support.hub import erp_hub, events, order, place, settle, state


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Any:
    clock = FakeClock()
    h = erp_hub(tmp_path, {"main": erp}, clock=clock)
    h.poller.cadence = {"main": Cadence(fast=0.5, idle=2.0, sweep=60.0)}
    yield h
    h.close()


def turns(hub: Any, erp: MemoryErp, seconds: float, step: float = 0.25) -> tuple[int, int, list[float]]:
    """Run the periodic job every ``step`` for ``seconds`` of the fake clock: (probes, full reads, intervals)."""
    before = (erp.calls["change_probe"], erp.calls["changes_since"])
    intervals = []
    for _ in range(int(seconds / step)):
        hub.poller.poll_due()
        intervals.append(hub.poller.interval("main"))
        hub.clock.advance(step)
    return erp.calls["change_probe"] - before[0], erp.calls["changes_since"] - before[1], intervals


def test_a_quiet_erp_is_asked_one_question_per_idle_interval_and_read_in_full_only_by_the_sweep(
        hub: Any, erp: MemoryErp) -> None:
    turns(hub, erp, 10)  # the first turns read in full (no earlier answer to compare with)
    probes, reads, intervals = turns(hub, erp, 40)
    assert 19 <= probes <= 21  # one per 2 s
    assert reads == 0
    assert set(intervals) == {2.0}
    _, reads, _ = turns(hub, erp, 30)  # the sweep (every 60 s of the clock) falls due
    assert reads == 1


def test_a_change_is_read_at_the_next_turn_and_the_pace_quickens(hub: Any, erp: MemoryErp) -> None:
    turns(hub, erp, 20)
    stock_events = len(events(hub, "erp.stock_changed"))
    erp.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", Decimal(263))
    _probes, reads, intervals = turns(hub, erp, 2.0)
    assert reads >= 1 and 0.5 in intervals  # seen within one idle interval, then fast again
    changed = [json.loads(body) for body in events(hub, "erp.stock_changed")[stock_events:]]
    assert [p["on_hand"] for c in changed for p in c["payload"]["positions"]
            if p["sku"] == "SEL-GSK-DN50-PTFE" and p["plant"] == "PLANT-N"] == ["263"]
    settle(hub)
    _, reads_later, intervals_later = turns(hub, erp, 20)
    assert reads_later <= 2 and intervals_later[-1] == 2.0  # and quiet again: back to the idle pace


def test_while_the_hub_sends_orders_changes_are_read_at_the_busy_pace(hub: Any, erp: MemoryErp) -> None:
    """The hub's own orders move stock in the ERP: at the fast pace every turn would read in full and
    take capacity from the orders, so while the orders lane is busy the interval stays at ``busy``."""
    hub.poller.cadence = {"main": Cadence(fast=0.5, idle=2.0, sweep=60.0, busy=1.5)}
    turns(hub, erp, 20)
    orders_erp = hub.erps.in_lane(Lane.ORDERS).erp("main")
    quantity = 300
    intervals = []
    for _ in range(12):  # an order's credit check and a stock change in the ERP every half second
        orders_erp.credit("C-1001")
        quantity += 1
        erp.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", Decimal(quantity))
        _, _, seen = turns(hub, erp, 0.5)
        intervals += seen
    assert min(intervals[2:]) >= 1.5, intervals  # never the fast pace while orders flow
    turns(hub, erp, 4.0)  # no orders: a change is followed at the fast pace again
    erp.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", Decimal(quantity + 1))
    _, _, after = turns(hub, erp, 2.0)
    assert 0.5 in after, after


def test_order_preparation_takes_stock_from_the_read_model_while_the_poller_follows_the_erp(
        hub: Any, erp: MemoryErp) -> None:
    """While the change poller follows the ERP, the stock it keeps in the read model allocates orders (the
    ERP is not asked); once it has not turned for a while, the ERP is asked again. The credit check uses
    the credit the account read brought."""
    turns(hub, erp, 2)  # the first turns read everything; the events fill the read model
    settle(hub)
    before = {m: erp.calls[m] for m in ("availability", "credit", "account")}
    first = place(hub, order("C-1001", ("BRG-6204-2RS", 4), external="RM-1"))
    settle(hub)
    assert state(hub, first.order_id) == "accepted"
    assert {m: erp.calls[m] - before[m] for m in before} == {"availability": 0, "credit": 0, "account": 1}

    hub.clock.advance(60)  # no turn for a minute: the read model may be behind the ERP
    assert not hub.poller.following("main")
    # (the worker's rounds below would take a turn first: hold the read model to "not following")
    hub.readmodel.follows = lambda erp: False
    second = place(hub, order("C-1001", ("BRG-6204-2RS", 4), external="RM-2"))
    settle(hub)
    assert state(hub, second.order_id) == "accepted"
    assert erp.calls["availability"] - before["availability"] == 1


def test_with_push_a_quiet_erp_is_asked_once_a_minute_and_a_signalled_change_is_read_at_once(
        hub: Any, erp: MemoryErp) -> None:
    hub.poller.cadence = {"main": Cadence(fast=0.5, idle=2.0, sweep=600.0, push=True, push_idle=60.0)}
    assert hub.poller.pushes() == ["main"]
    stop = threading.Event()
    listener = threading.Thread(target=hub.poller.listen, args=("main", stop), daemon=True)
    listener.start()
    try:
        wait_for(lambda: hub.poller.pushing("main"))
        turns(hub, erp, 10)  # the catch-up turn after subscribing, the first sweep
        probes, reads, intervals = turns(hub, erp, 50)
        assert (probes, reads) == (0, 0) and set(intervals) == {60.0}  # nothing asked while nothing moved
        assert hub.poller.following("main")  # order preparation still trusts the read model's stock
        erp.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", Decimal(263))
        wait_for(lambda: hub.poller._pace["main"].signalled)
        stock_events = len(events(hub, "erp.stock_changed"))
        _, reads, _ = turns(hub, erp, 0.5)
        assert reads == 1 and len(events(hub, "erp.stock_changed")) == stock_events + 1
        # one safety probe per push_idle, for a signal that got lost; the first of a new window (the read
        # moved the watermark) has no answer to compare with and reads in full once more
        assert turns(hub, erp, 60)[:2] == (1, 1)
        assert turns(hub, erp, 60)[:2] == (1, 0)
    finally:
        stop.set()
        hub.poller.unsubscribe("main")
        listener.join(timeout=5)
    assert not listener.is_alive() and not hub.poller.pushing("main")


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
