"""Reconciliation against a real Tryton: orders flow into Tryton, then people change Tryton behind the
hub's back (a line quantity through Tryton's amendment, a sale deleted from its database, a sale with our
reference the hub never made), and reconciliation opens exactly one case for each, none on the clean run
before, and none more when it runs again."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ordersync.adapters.erp.factory import make_erp
from ordersync.bootstrap import build_hub
from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase
from ordersync.config import ReconcileSettings, Settings
from ordersync.devkit import demo_data
from ordersync.ports.erp import (
    AmendmentRequest,
    ErpPort,
    LineChange,
    SalesOrderLine,
    SalesOrderRequest,
    SubmitOutcome,
    order_reference,
)
from ordersync.store.schema import cases
from tests.contract.drivers import TrytonDriver
from tests.support.hub import order, place, settle, state
from tests.support.tryton import admin, erp_settings

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]
MAIN = demo_data.profile("main")
D = Decimal


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


@pytest.fixture
def hub(tryton: Any, tmp_path: Path) -> Iterator[Any]:
    h = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1)],
                           reconcile=ReconcileSettings(interval_seconds=0)))
    yield h
    h.close()


@pytest.fixture
def someone(tryton: Any) -> Iterator[ErpPort]:
    """Another client of the same Tryton, not the hub's: a person working in the ERP."""
    erp = make_erp(erp_settings(tryton, name="someone"))
    yield erp
    getattr(erp, "close", lambda: None)()


def caught_up(hub: Any) -> None:
    hub.poller.poll_all()
    settle(hub)


def accepted(hub: Any, count: int) -> list[str]:
    ids = [place(hub, order("C-1001", ("BRG-6204-2RS", 4 + i), ("SEN-PX-M12-NPN", 2), external=f"REC-{i}",
                            ship_to="RIS-DUS")).order_id for i in range(count)]
    for _ in range(300):
        caught_up(hub)
        if all(state(hub, i) == "accepted" for i in ids):
            return ids
        time.sleep(0.1)
    raise AssertionError({i: state(hub, i) for i in ids})


def delete_sale(tryton: Any, reference: str) -> None:
    """Remove the sale from Tryton's database with its lines, moves and shipments (Tryton itself refuses
    to delete a confirmed sale: this is someone working on the database directly)."""
    with sqlite3.connect(Path(tryton.data_dir) / "main.sqlite") as db:
        (sale_id,) = db.execute("SELECT id FROM sale_sale WHERE reference = ?", (reference,)).fetchone()
        lines = [f"sale.line,{r[0]}" for r in db.execute("SELECT id FROM sale_line WHERE sale = ?", (sale_id,))]
        marks = ",".join("?" * len(lines))
        shipments = {int(r[0].split(",")[1]) for r in db.execute(
            f"SELECT shipment FROM stock_move WHERE origin IN ({marks}) AND shipment LIKE 'stock.shipment.out,%'",
            lines)}
        db.execute(f"DELETE FROM stock_move WHERE origin IN ({marks})", lines)
        for shipment in shipments:
            db.execute("DELETE FROM stock_move WHERE shipment = ?", (f"stock.shipment.out,{shipment}",))
            db.execute("DELETE FROM stock_shipment_out WHERE id = ?", (shipment,))
        db.execute("DELETE FROM sale_line WHERE sale = ?", (sale_id,))
        db.execute("DELETE FROM sale_sale WHERE id = ?", (sale_id,))


def reconciliation_cases(hub: Any) -> list[ExceptionCase]:
    with hub.db.read() as conn:
        rows = conn.execute(select(cases.c.body).where(cases.c.type == CaseType.ERP_DISCREPANCY.value)).scalars()
        return [ExceptionCase.model_validate_json(b) for b in rows]


def test_changes_behind_the_hubs_back_open_one_case_each_and_a_clean_run_none(
        hub: Any, tryton: Any, someone: ErpPort) -> None:
    changed, deleted, untouched = accepted(hub, 3)
    # the clean run also covers a split order and one shipped and invoiced in Tryton
    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    split = place(hub, order("C-1001", ("BRG-6204-2RS", home + 30), external="REC-S", ship_to="RIS-DUS")).order_id
    client = admin(tryton)
    try:
        driver = TrytonDriver(client)
        driver.ship(order_reference(untouched, "PLANT-N"))
        driver.post_invoices(order_reference(untouched, "PLANT-N"))
    finally:
        client.close()
    for _ in range(300):
        caught_up(hub)
        if state(hub, split) == "accepted" and state(hub, untouched) in ("shipped", "invoiced"):
            break
        time.sleep(0.1)
    assert (state(hub, split), state(hub, untouched)) == ("accepted", "invoiced")

    clean = hub.reconciler.run()
    assert ([o.discrepancy.summary for o in clean.outcomes], clean.errors, clean.hub_sales) == ([], [], 5)
    assert clean.erp_sales >= 5 and reconciliation_cases(hub) == []

    changed_ref, deleted_ref = order_reference(changed, "PLANT-N"), order_reference(deleted, "PLANT-N")
    amended = someone.amend_order(AmendmentRequest(reference=changed_ref,
                                                   changes=(LineChange(line_no=1, quantity=D(9)),)))
    assert amended.applied and not amended.refused
    delete_sale(tryton, deleted_ref)
    stray = SalesOrderRequest(
        reference=order_reference("nohub0001", "PLANT-N"), order_id="nohub0001", account_id="C-1002",
        plant="PLANT-N", currency="EUR", lines=(SalesOrderLine(
            line_no=1, sku="VLV-3W-DN20-SS", quantity=D(1),
            unit_price=demo_data.contract_price(MAIN, "C-1002", "VLV-3W-DN20-SS", 1)),))
    (made,) = someone.submit_orders([stray])
    assert made.outcome is SubmitOutcome.ACCEPTED
    caught_up(hub)  # the hub's poller sees what it can (the amended line's new shipment)

    first = hub.reconciler.run()

    assert first.errors == []
    assert sorted((o.discrepancy.kind, o.discrepancy.subject, o.status) for o in first.outcomes) == sorted([
        ("lines", changed_ref, "opened"), ("missing_sale", deleted_ref, "opened"),
        ("unknown_sale", stray.reference, "opened")])
    opened = reconciliation_cases(hub)
    assert len(opened) == 3 and {c.state for c in opened} == {CaseState.OPEN}
    lines = next(c for c in opened if c.order_id == changed)
    assert "line 1 quantity: hub 4, ERP 9" in lines.summary
    assert untouched not in {c.order_id for c in opened}

    second = hub.reconciler.run()
    assert sorted(o.status for o in second.outcomes) == ["open", "open", "open"]
    assert len(reconciliation_cases(hub)) == 3
