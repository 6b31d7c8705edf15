"""Reconciliation through a hub over the in-memory twin (SQLite and PostgreSQL): cases opened once per
discrepancy, none on a clean run, updated rather than duplicated, closed by a re-check."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import CaseState, CaseType, ExceptionCase
from ordersync.config import ReconcileSettings
from ordersync.devkit import demo_data
from ordersync.flows.services.workbench import CaseAction
from ordersync.ports.erp import AmendmentRequest, LineChange, SalesOrderLine, SalesOrderRequest, order_reference
from ordersync.runtime.hub import Hub
from ordersync.store.schema import cases
from tests.support.hub import erp_hub, order, place, record, settle, state

MAIN = demo_data.profile("main")
D = Decimal


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, store_url: str) -> Iterator[Hub]:
    h = erp_hub(tmp_path, {"main": erp}, store=store_url,
                reconcile=ReconcileSettings(interval_seconds=0, settle_seconds=0))
    yield h
    h.close()


def accepted_orders(hub: Hub, n: int) -> list[str]:
    ids = [place(hub, order("C-1001", ("SEL-OR-NBR-KIT", 2 + i), ("SEL-GSK-DN50-PTFE", 10), external=f"R-{i}")).order_id
           for i in range(n)]
    settle(hub)
    assert [state(hub, i) for i in ids] == ["accepted"] * n
    caught_up(hub)  # the hub's copies of the waiting shipments
    return ids


def caught_up(hub: Hub) -> None:
    """The hub's change poller has seen what the ERP did (as it soon does when running)."""
    assert hub.poller is not None
    hub.poller.poll_all()
    settle(hub)


def reconciliation_cases(hub: Hub) -> list[ExceptionCase]:
    with hub.db.read() as conn:
        bodies = conn.execute(select(cases.c.body).where(cases.c.type == CaseType.ERP_DISCREPANCY.value)).scalars()
        return [ExceptionCase.model_validate_json(b) for b in bodies]


def stray_sale(erp: MemoryErp) -> str:
    """A confirmed ERP sale with our reference prefix that no hub order made."""
    request = SalesOrderRequest(
        reference=order_reference("nohub0001", "PLANT-N"), order_id="nohub0001", account_id="C-1002",
        plant="PLANT-N", currency="EUR", lines=(SalesOrderLine(
            line_no=1, sku="SEL-OR-NBR-KIT", quantity=D(3),
            unit_price=demo_data.contract_price(MAIN, "C-1002", "SEL-OR-NBR-KIT", 3)),))
    (result,) = erp.submit_orders([request])
    assert result.outcome.value == "accepted"
    return request.reference


def test_a_clean_run_finds_nothing_and_opens_no_case(hub: Hub) -> None:
    accepted_orders(hub, 3)
    assert hub.reconciler is not None
    report = hub.reconciler.run()
    assert (report.discrepancies, report.hub_sales, report.errors) == ([], 3, [])
    assert report.erp_sales >= 3 and reconciliation_cases(hub) == []


def test_each_change_behind_the_hubs_back_opens_exactly_one_case_and_a_second_run_none(
        hub: Hub, erp: MemoryErp) -> None:
    changed, deleted, _ = accepted_orders(hub, 3)
    changed_ref, deleted_ref = (order_reference(i, "PLANT-N") for i in (changed, deleted))
    erp.amend_order(AmendmentRequest(reference=changed_ref, changes=(LineChange(line_no=1, quantity=D(7)),)))
    erp.delete_sale(deleted_ref)
    stray = stray_sale(erp)
    caught_up(hub)
    assert hub.reconciler is not None

    first = hub.reconciler.run()

    assert sorted((o.discrepancy.kind, o.discrepancy.subject, o.status) for o in first.outcomes) == sorted([
        ("lines", changed_ref, "opened"), ("missing_sale", deleted_ref, "opened"), ("unknown_sale", stray, "opened")])
    opened = {c.summary.split(":")[0]: c for c in reconciliation_cases(hub)}
    assert set(opened) == {f"lines {changed_ref}", f"missing sale {deleted_ref}", f"unknown sale {stray}"}
    lines = opened[f"lines {changed_ref}"]
    assert "line 1 quantity: hub 2, ERP 7" in lines.summary  # both sides
    assert (lines.order_id, lines.owner_team, lines.state) == (changed, "integration", CaseState.OPEN)
    assert opened[f"unknown sale {stray}"].order_id is None

    second = hub.reconciler.run()
    assert {o.status for o in second.outcomes} == {"open"} and len(second.outcomes) == 3
    assert len(reconciliation_cases(hub)) == 3


def test_a_recheck_closes_the_case_once_the_sides_agree_and_a_run_closes_what_went_away(
        hub: Hub, erp: MemoryErp) -> None:
    changed, other = accepted_orders(hub, 2)
    ref = order_reference(changed, "PLANT-N")
    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(7)),)))
    stray = stray_sale(erp)
    caught_up(hub)
    assert hub.reconciler is not None
    hub.reconciler.run()
    case = next(c for c in reconciliation_cases(hub) if c.order_id == changed)

    still = hub.workbench.act(case.id, CaseAction(action="recheck", actor="ops@example.com"))
    assert still.result["agree"] is False and "hub 2, ERP 7" in still.result["found"]
    assert still.case.state is CaseState.OPEN

    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(2)),)))  # put right
    caught_up(hub)
    done = hub.workbench.act(case.id, CaseAction(action="recheck", actor="ops@example.com"))
    assert done.result == {"agree": True, "found": "both sides agree now"}
    assert done.case.state is CaseState.RESOLVED and done.case.history[-1].actor == "ops@example.com"

    erp.delete_sale(stray)
    report = hub.reconciler.run()
    assert report.discrepancies == [] and report.resolved == [f"erp:main:unknown_sale:{stray}"]
    assert {c.state for c in reconciliation_cases(hub)} == {CaseState.RESOLVED}
    assert record(hub, other).state.value == "accepted"


def test_a_changed_discrepancy_updates_its_open_case(hub: Hub, erp: MemoryErp) -> None:
    (changed,) = accepted_orders(hub, 1)
    ref = order_reference(changed, "PLANT-N")
    assert hub.reconciler is not None
    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(7)),)))
    caught_up(hub)
    hub.reconciler.run()
    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(9)),)))
    caught_up(hub)

    (outcome,) = hub.reconciler.run().outcomes

    assert outcome.status == "updated"
    (case,) = reconciliation_cases(hub)
    assert "hub 2, ERP 9" in case.summary and case.history[-1].action == "reconciled"


def test_a_state_discrepancy_waits_for_the_change_poller_before_it_opens_a_case(
        tmp_path: Path, erp: MemoryErp) -> None:
    hub = erp_hub(tmp_path, {"main": erp}, reconcile=ReconcileSettings(interval_seconds=0, settle_seconds=3600))
    try:
        (shipped,) = accepted_orders(hub, 1)
        erp.ship(order_reference(shipped, "PLANT-N"))  # the hub's poller has not seen it yet
        assert hub.reconciler is not None
        (outcome,) = hub.reconciler.run().outcomes
        assert (outcome.discrepancy.kind, outcome.status, outcome.case_id) == ("shipments", "settling", None)
        assert reconciliation_cases(hub) == []

        caught_up(hub)
        report = hub.reconciler.run()
        assert report.discrepancies == [] and report.resolved == [
            f"erp:main:shipments:{order_reference(shipped, 'PLANT-N')}"]
        assert reconciliation_cases(hub) == []
    finally:
        hub.close()


def test_since_looks_at_recent_orders_and_recent_erp_changes_only(hub: Hub, erp: MemoryErp) -> None:
    import datetime as dt

    (old,) = accepted_orders(hub, 1)
    erp.delete_sale(order_reference(old, "PLANT-N"))
    assert hub.reconciler is not None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert hub.reconciler.run(since=later).discrepancies == []  # neither side changed since
    assert [d.kind for d in hub.reconciler.run(since=later - dt.timedelta(hours=1)).discrepancies] == [
        "missing_sale"]


def test_an_erp_that_cannot_be_read_keeps_the_findings_and_says_so(hub: Hub, erp: MemoryErp) -> None:
    (changed,) = accepted_orders(hub, 1)
    erp.amend_order(AmendmentRequest(reference=order_reference(changed, "PLANT-N"),
                                     changes=(LineChange(line_no=1, quantity=D(7)),)))
    caught_up(hub)
    assert hub.reconciler is not None
    hub.reconciler.run()
    erp.down = True
    report = hub.reconciler.run()
    erp.down = False
    assert report.errors and report.errors[0].startswith("erp:main:") and report.resolved == []
    assert [c.state for c in reconciliation_cases(hub)] == [CaseState.OPEN]




def test_the_cli_prints_a_table_or_json_on_stdout_and_exits_1_on_discrepancies(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ordersync.cli import app

    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text('[[erp]]\nname = "main"\nkind = "memory"\n\n'
                                             '[reconcile]\ninterval_seconds = 0\n')
    runner = CliRunner()
    clean = runner.invoke(app, ["reconcile", "--data-dir", str(data_dir)], catch_exceptions=False)
    assert clean.exit_code == 0, clean.output
    assert "0 discrepancy(ies)" in clean.stdout and "comparing the hub with ERP main" in clean.stderr

    # the hub's orders went to another ERP instance than the one the CLI's hub talks to: none of its sales exist
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    try:
        (placed,) = accepted_orders(hub, 1)
    finally:
        hub.close()
    ref = order_reference(placed, "PLANT-N")
    table = runner.invoke(app, ["reconcile", "--data-dir", str(data_dir)], catch_exceptions=False)
    assert table.exit_code == 1, table.output
    assert "missing_sale" in table.stdout and ref in table.stdout and "opened" in table.stdout
    as_json = runner.invoke(app, ["reconcile", "--data-dir", str(data_dir), "--json", "--since", "1h"],
                            catch_exceptions=False)
    assert as_json.exit_code == 1
    (found,) = json.loads(as_json.stdout)["discrepancies"]
    assert (found["kind"], found["subject"], found["status"], found["order_id"]) == (
        "missing_sale", ref, "open", placed)
    assert found["diffs"] == [{"field": "sale", "hub": "accepted (2 line(s))", "other": "no sale with this reference"}]


def test_a_difference_a_person_accepted_opens_no_new_case_until_it_changes(hub: Hub, erp: MemoryErp) -> None:
    (changed,) = accepted_orders(hub, 1)
    ref = order_reference(changed, "PLANT-N")
    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(7)),)))
    caught_up(hub)
    assert hub.reconciler is not None
    hub.reconciler.run()
    (case,) = reconciliation_cases(hub)
    hub.workbench.act(case.id, CaseAction(action="resolve", actor="ops@example.com",
                                          comment="the customer asked for 7 by phone"))

    assert [o.status for o in hub.reconciler.run().outcomes] == ["accepted"]
    assert [c.state for c in reconciliation_cases(hub)] == [CaseState.RESOLVED]

    erp.amend_order(AmendmentRequest(reference=ref, changes=(LineChange(line_no=1, quantity=D(8)),)))
    caught_up(hub)
    assert [o.status for o in hub.reconciler.run().outcomes] == ["opened"]
    assert sorted(c.state for c in reconciliation_cases(hub)) == [CaseState.OPEN, CaseState.RESOLVED]


def test_the_hubs_own_flows_leave_nothing_to_reconcile(hub: Hub, erp: MemoryErp) -> None:
    """Split, backordered, held then released, amended by the hub, shipped and invoiced: all agree."""
    from ordersync.domain.order import LineAmendment
    from ordersync.flows.services.amendments import amend_order
    from ordersync.flows.services.holds import release_hold

    home = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    split = place(hub, order("C-1001", ("BRG-6204-2RS", home + 30), ship_to="RIS-DUS", external="S-1")).order_id
    backordered = place(hub, order("C-1003", ("BRG-7205-BEP", 4), ("SEN-PX-M12-NPN", 10), external="S-2")).order_id
    held = place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="S-3")).order_id
    amended, shipped = (place(hub, order("C-1001", ("SEL-OR-NBR-KIT", 6), ("SEL-GSK-DN50-PTFE", 10),
                                         external=f"S-{n}")).order_id for n in (4, 5))
    settle(hub)
    with hub.uow() as uow:
        (case,) = uow.cases.open_for_order(held)
        release_hold(uow, case.id, decision="release", actor="fiona@finance", comment="paid by wire")
    settle(hub)
    assert hub.deps is not None
    amend_order(hub.deps, amended, [LineAmendment(line_no=1, quantity=D(4))], account_id=None, actor="operations")
    ref = order_reference(shipped, "PLANT-N")
    erp.ship(ref)
    erp.post_invoices(ref)
    caught_up(hub)
    assert {state(hub, i) for i in (split, backordered, held, amended)} == {"accepted"}
    assert state(hub, shipped) in ("shipped", "invoiced")
    assert hub.reconciler is not None

    report = hub.reconciler.run()

    assert [o.discrepancy.summary for o in report.outcomes] == []
    assert report.hub_sales >= 6 and reconciliation_cases(hub) == []


def test_returns_compare_too_a_deleted_one_and_one_the_hub_never_asked_for_open_a_case_each(
        hub: Hub, erp: MemoryErp) -> None:
    from fastapi.testclient import TestClient

    from ordersync.ports.erp import ReturnOutcome, ReturnRequest, ReturnRequestLine, return_reference
    from ordersync.server import create_app
    from tests.support.hub import api_key

    first, second = accepted_orders(hub, 2)
    for order_id in (first, second):
        erp.ship(order_reference(order_id, "PLANT-N"))
    caught_up(hub)
    headers = {"Authorization": f"Bearer {api_key(hub, 'returns:write', 'orders:read', account='C-1001')}"}
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    made = []
    for order_id in (first, second):
        r = client.post("/v1/returns", headers=headers, json={"order_id": order_id, "lines": [
            {"line_no": 1, "quantity": "1", "reason": "damaged in transit"}]})
        assert r.status_code == 201, r.text
        made.append(return_reference(r.json()["id"], "PLANT-N"))
    settle(hub)
    caught_up(hub)
    assert hub.reconciler is not None
    assert hub.reconciler.run().discrepancies == []  # both approved on both sides

    erp.delete_sale(made[0])
    stray = ReturnRequest(reference=return_reference("rtnohub01", "PLANT-N"), return_id="rtnohub01",
                          order_reference=order_reference(second, "PLANT-N"), account_id="C-1001", plant="PLANT-N",
                          lines=(ReturnRequestLine(line_no=2, quantity=D(1)),))
    assert erp.create_return(stray).outcome is ReturnOutcome.AUTHORIZED
    caught_up(hub)

    report = hub.reconciler.run()

    assert sorted((o.discrepancy.kind, o.discrepancy.subject, o.status) for o in report.outcomes) == [
        ("missing_return", made[0], "opened"), ("unknown_return", stray.reference, "opened")]
    assert [o.status for o in hub.reconciler.run().outcomes] == ["open", "open"]
