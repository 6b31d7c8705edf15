"""The order submission process against a real Tryton: every branch, duplicates under real
concurrency, and exactly one ERP sale per hub order and plant."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordersync.bootstrap import build_hub
from ordersync.canonical.v1 import CaseType
from ordersync.config import Settings
from ordersync.devkit import demo_data
from ordersync.flows.services.holds import release_hold
from ordersync.ports.erp import order_reference
from tests.support.hub import order, place, record, settle, state
from tests.support.tryton import erp_settings, sales_by_reference

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]
MAIN = demo_data.profile("main")


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


@pytest.fixture
def hub(tryton: Any, tmp_path: Path) -> Any:
    h = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1)]))
    yield h
    h.close()


def until_settled(hub: Any, order_ids: list[str], rounds: int = 400,
                  settled: frozenset[str] = frozenset({"accepted", "rejected", "on_hold", "cancelled"})) -> None:
    """Run the worker until every order is in one of the ``settled`` states (ERP waits and retries
    can make one drain end before the flow has)."""
    import time

    for _ in range(rounds):
        settle(hub)
        if all(state(hub, o) in settled for o in order_ids):
            return
        time.sleep(0.05)
    raise AssertionError({o: state(hub, o) for o in order_ids})


def one_sale_per_plant(tryton: Any, hub: Any, order_id: str) -> dict[str, list[str]]:
    r = record(hub, order_id)
    plants = r.plants()
    sales = sales_by_reference(tryton, f"OS-{order_id}")
    assert sorted(sales) == [order_reference(order_id, p) for p in plants]
    assert all(len(states) == 1 for states in sales.values()), sales
    return sales


def test_orders_take_every_branch_against_real_tryton(hub: Any, tryton: Any) -> None:
    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    shown_wrong = demo_data.contract_price(MAIN, "C-1002", "SEN-PT-0-10B", 2) * Decimal("0.8")
    normal = place(hub, order("C-1001", ("BRG-6204-2RS", 10), ("part:RIS-220-0412", 20), external="T-1",
                              ship_to="RIS-DUS"))
    split = place(hub, order("C-1001", ("BRG-6204-2RS", home + 30), external="T-2", ship_to="RIS-DUS"))
    backorder = place(hub, order("C-1003", ("BRG-7205-BEP", 4), ("SEN-PX-M12-NPN", 10), external="T-3"))
    credit = place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="T-4"))
    unknown = place(hub, order("C-1002", ("SEN-PX-M12-NPN", 5), ("BRG-9999-XX", 4), external="T-5"))
    mismatch = place(hub, order("C-1002", ("SEN-PT-0-10B", 2, shown_wrong.quantize(Decimal("0.01"))),
                                external="T-6"))
    ids = [r.order_id for r in (normal, split, backorder, credit, unknown, mismatch)]
    until_settled(hub, ids)

    assert state(hub, normal.order_id) == "accepted"
    assert list(one_sale_per_plant(tryton, hub, normal.order_id).values()) == [["processing"]]

    assert state(hub, split.order_id) == "accepted"
    assert len(one_sale_per_plant(tryton, hub, split.order_id)) == 2

    assert state(hub, backorder.order_id) == "accepted"
    assert record(hub, backorder.order_id).is_backordered
    one_sale_per_plant(tryton, hub, backorder.order_id)

    assert state(hub, unknown.order_id) == "rejected"
    assert sales_by_reference(tryton, f"OS-{unknown.order_id}") == {}

    assert state(hub, mismatch.order_id) == "on_hold"
    assert state(hub, credit.order_id) == "on_hold"
    with hub.uow() as uow:
        [credit_case] = uow.cases.open_for_order(credit.order_id)
        [price_case] = uow.cases.open_for_order(mismatch.order_id)
    assert credit_case.type is CaseType.CREDIT_HOLD and price_case.type is CaseType.PRICE_MISMATCH
    with hub.uow() as uow:
        release_hold(uow, credit_case.id, decision="release", actor="finance")
    with hub.uow() as uow:
        release_hold(uow, price_case.id, decision="accept_erp_price", actor="commerce")
    # released orders still say on_hold until the resumed flow moves them on
    until_settled(hub, [credit.order_id, mismatch.order_id], settled=frozenset({"accepted", "rejected", "cancelled"}))
    assert state(hub, credit.order_id) == "accepted" and state(hub, mismatch.order_id) == "accepted"
    one_sale_per_plant(tryton, hub, credit.order_id)
    one_sale_per_plant(tryton, hub, mismatch.order_id)
    # the prices Tryton holds are the ones the hub recorded
    for order_id in (normal.order_id, split.order_id, mismatch.order_id):
        r = record(hub, order_id)
        for erp_order in hub.erps.erp("main").orders_for(order_id):
            for line in erp_order.lines:
                assert line.unit_price == r.line(line.line_no).unit_price  # type: ignore[union-attr]


def test_concurrent_duplicate_deliveries_create_one_erp_order(hub: Any, tryton: Any) -> None:
    """Eight threads deliver the same order at the same moment (four as retries of one request, four as
    re-sends with their own keys) while the worker runs; Tryton ends up with exactly one sale."""
    barrier = threading.Barrier(8)
    receipts: list[Any] = []
    stop = threading.Event()
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    worker.start()

    def deliver(i: int) -> None:
        o = order("C-1001", ("SEN-PX-M12-NPN", 12), external="SHOP-4711")
        barrier.wait()
        receipts.append(place(hub, o, key="same-key" if i < 4 else f"key-{i}", delivery=f"d-{i}"))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    order_id = receipts[0].order_id
    assert {r.order_id for r in receipts} == {order_id}
    import time

    deadline = time.monotonic() + 120
    while state(hub, order_id) != "accepted":
        assert time.monotonic() < deadline, state(hub, order_id)
        time.sleep(0.1)
    stop.set()
    worker.join()
    assert list(one_sale_per_plant(tryton, hub, order_id).values()) == [["processing"]]
