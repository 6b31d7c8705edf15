"""Backorder promises against a real Tryton: a date production planning moves in the ERP reaches the
order and the buyer event, a passed promise opens a case, and the workbench cancels the line in Tryton."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.domain.clock import FakeClock
from ordersync.flows.jobs import flag_passed_promises
from ordersync.ports.erp import AmendmentRequest, LineChange, order_reference
from ordersync.server import create_app
from tests.e2e.test_order_flow_tryton import until_settled
from tests.support.hub import api_key, events, order, place, record, settle
from tests.support.tryton import erp_settings

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


@pytest.fixture
def hub(tryton: Any, tmp_path: Path) -> Any:
    h = build_hub(Settings(data_dir=tmp_path / "hub", erp=[erp_settings(tryton, retries=1, reset_timeout=1)]))
    yield h
    h.close()


def revised(hub: Any) -> list[dict[str, Any]]:
    return [json.loads(b)["payload"] for b in events(hub, "order.backorder_date_revised")]


def poll(hub: Any) -> None:
    hub.poller.poll_all()
    settle(hub)


def test_a_backorder_date_moved_in_tryton_reaches_the_buyer_and_a_passed_promise_becomes_a_case(hub: Any) -> None:
    receipt = place(hub, order("C-1003", ("BRG-7205-BEP", 4), ("SEN-PX-M12-NPN", 10)))
    until_settled(hub, [receipt.order_id])
    r = record(hub, receipt.order_id)
    [backorder] = [a for a in r.allocations if a.backorder]
    assert r.state.value == "accepted" and r.plants() == [backorder.plant]
    reference = order_reference(receipt.order_id, backorder.plant)
    poll(hub)
    assert revised(hub) == [] and record(hub, receipt.order_id).backorders.erp_promised
    later = backorder.promised_date + dt.timedelta(days=20)
    erp = hub.erps.erp(r.erp)  # production planning moves the shipment in Tryton
    answer = erp.amend_order(AmendmentRequest(reference=reference, changes=(
        LineChange(line_no=1, promised_date=later), LineChange(line_no=2, promised_date=later))))
    assert len(answer.applied) == 2, answer
    for _ in range(20):  # Tryton stamps write dates per statement: a poll may need a second look
        poll(hub)
        if revised(hub):
            break
    [event] = revised(hub)
    assert (event["line_no"], event["previous_date"], event["revised_date"]) == (
        1, backorder.promised_date.isoformat(), later.isoformat())
    assert [a.promised_date for a in record(hub, receipt.order_id).allocations if a.backorder] == [later]

    # the revised promise passes without a shipment: a case for operations, worked off on the workbench
    after = FakeClock(dt.datetime.combine(later + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC))
    assert flag_passed_promises(hub.store, after, hub.deps.cases) == 1
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    ops = {"Authorization": f"Bearer {api_key(hub, 'ops', client='ops')}"}
    [case] = client.get("/v1/ops/cases", params={"order_id": receipt.order_id}, headers=ops).json()["items"]
    assert case["type"] == "allocation_shortfall" and later.isoformat() in case["summary"]
    r = client.post(f"/v1/ops/cases/{case['id']}/actions", headers=ops,
                    json={"action": "cancel_line", "line_no": 1, "comment": "buyer agreed"})
    assert r.status_code == 200, r.text
    assert r.json()["case"]["state"] == "resolved" and [x["line_no"] for x in r.json()["result"]["applied"]] == [1]
    lines = {x.line_no: x.quantity for x in erp.order(reference).lines}  # type: ignore[union-attr]
    assert lines[1] == 0 and lines[2] == 10
