"""A hub joining an ERP with history (``[[erp]] start_from = "now"``) follows its changes from now on: no
events and no cases for the shipments and invoices of orders it never held, while its own orders are
followed as always. On the ERP twin, whose history another hub made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import CaseType
from ordersync.config import ErpSettings
from ordersync.ports.erp import order_reference
from ordersync.store.schema import cases, outbox
from tests.support.hub import erp_hub, order, place, settle, state


@pytest.fixture
def erp_with_history(tmp_path: Path) -> MemoryErp:
    """The twin after another hub sent it two orders, both shipped and invoiced."""
    erp = MemoryErp.from_profile("main", name="main")
    earlier = erp_hub(tmp_path / "earlier", {"main": erp})
    try:
        for external in ("OLD-1", "OLD-2"):
            receipt = place(earlier, order("C-1001", ("BRG-6204-2RS", 5), external=external, ship_to="RIS-DUS"))
            settle(earlier)
            assert state(earlier, receipt.order_id) == "accepted"
            reference = order_reference(receipt.order_id, "PLANT-N")
            erp.ship(reference)
            erp.post_invoices(reference)
    finally:
        earlier.close()
    return erp


def joined(tmp_path: Path, erp: MemoryErp, start_from: str) -> Any:
    hub = erp_hub(tmp_path / f"new-{start_from}", {"main": erp},
                  erp=[ErpSettings(name="main", kind="memory", retries=1, reset_timeout=0.2, start_from=start_from)])
    hub.poller.poll_all()
    settle(hub)
    return hub


def discrepancies(hub: Any) -> list[str]:
    with hub.db.read() as conn:
        return list(conn.execute(select(cases.c.id).where(
            cases.c.type == CaseType.FULFILLMENT_DISCREPANCY.value)).scalars())


def erp_events(hub: Any) -> list[str]:
    with hub.db.read() as conn:
        return list(conn.execute(select(outbox.c.type).where(
            outbox.c.type.in_(["erp.shipment_changed", "erp.invoice_posted"]))).scalars())


def test_a_hub_joining_from_history_opens_cases_for_orders_it_never_held(tmp_path: Path,
                                                                         erp_with_history: MemoryErp) -> None:
    hub = joined(tmp_path, erp_with_history, "history")  # what happened before start_from existed
    try:
        assert len(discrepancies(hub)) >= 2 and erp_events(hub)
    finally:
        hub.close()


def test_a_hub_joining_from_now_opens_no_cases_for_the_past_and_follows_its_own_orders(
    tmp_path: Path, erp_with_history: MemoryErp
) -> None:
    hub = joined(tmp_path, erp_with_history, "now")
    try:
        assert discrepancies(hub) == [] and erp_events(hub) == []
        hub.poller.poll_all()  # the next polls do not bring the past back
        settle(hub)
        assert discrepancies(hub) == [] and erp_events(hub) == []

        receipt = place(hub, order("C-1001", ("BRG-6204-2RS", 3), external="NEW-1", ship_to="RIS-DUS"))
        settle(hub)
        assert state(hub, receipt.order_id) == "accepted"
        erp_with_history.ship(order_reference(receipt.order_id, "PLANT-N"))
        hub.poller.poll_all()
        settle(hub)
        assert state(hub, receipt.order_id) == "shipped"
        assert erp_events(hub) == ["erp.shipment_changed"] and discrepancies(hub) == []
    finally:
        hub.close()
