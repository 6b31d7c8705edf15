"""The in-memory ERP as a fault injector for the hub's resilience tests (no contract: memory only)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.devkit import demo_data
from ordersync.domain.errors import ProtocolError, Unavailable
from ordersync.ports.erp import SalesOrderLine, SalesOrderRequest, SubmitOutcome, order_reference


def _request() -> SalesOrderRequest:
    order_id = f"mf{uuid.uuid4().hex[:8]}"
    return SalesOrderRequest(
        reference=order_reference(order_id, "PLANT-N"), order_id=order_id, account_id="C-1001", plant="PLANT-N",
        currency="EUR", lines=(SalesOrderLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(3),
                                              unit_price=Decimal("6.63")),))


def test_the_next_calls_fail_as_injected_then_work_again() -> None:
    erp = MemoryErp()
    erp.fail_next(2)
    for _ in range(2):
        with pytest.raises(Unavailable):
            erp.plants()
    assert [p.code for p in erp.plants()] == ["PLANT-N", "PLANT-S"]
    assert erp.calls["plants"] == 3


def test_an_injected_failure_can_target_one_method_and_any_exception() -> None:
    erp = MemoryErp()
    erp.fail_next(1, ProtocolError("garbage"), methods=["prices"])
    assert erp.accounts()  # not targeted
    with pytest.raises(ProtocolError):
        erp.prices("C-1001", [("BRG-6204-2RS", Decimal(1))])
    assert erp.prices("C-1001", [("BRG-6204-2RS", Decimal(1))])[0].unit_price == Decimal("6.63")


def test_a_failure_after_the_effect_leaves_the_order_for_the_retry_to_find() -> None:
    erp = MemoryErp()
    request = _request()
    erp.fail_next(1, after=True, methods=["submit_orders"])  # a timeout after the ERP committed

    with pytest.raises(Unavailable):
        erp.submit_orders([request])
    (retry,) = erp.submit_orders([request])

    assert retry.outcome is SubmitOutcome.ACCEPTED and retry.reconciled
    assert len(erp.sales_with_reference(request.reference)) == 1


def test_a_down_erp_refuses_every_call_and_reports_unhealthy() -> None:
    erp = MemoryErp()
    erp.down = True
    with pytest.raises(Unavailable):
        erp.submit_orders([_request()])
    assert not erp.health().ok
    erp.down = False
    assert erp.health().ok


def test_latency_is_spent_in_the_injected_sleep() -> None:
    slept: list[float] = []
    erp = MemoryErp(sleep=slept.append)
    erp.latency = 0.25
    erp.availability(["BRG-6204-2RS"])
    erp.credit("C-1004")
    assert slept == [0.25, 0.25]


def test_the_twin_can_be_built_from_a_profile_name_with_its_own_name() -> None:
    erp = MemoryErp.from_profile("acquired", name="erp-us")
    assert erp.name == "erp-us"
    assert {a.id for a in erp.accounts()} == {c["code"] for c in demo_data.ACQUIRED["customers"]}
    assert all(a.erp == "erp-us" and a.currency == "USD" for a in erp.accounts())
