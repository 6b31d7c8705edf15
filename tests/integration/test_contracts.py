"""Drift at the door, through the real WMS webhook (signed HTTP requests to the app): a new field is
processed and recorded as drift (one case when new), a changed type is quarantined with its reason and
nothing is lost: the kept body is replayed after a fix, from the command line or /ops/drift."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import Field, field_validator
from sqlalchemy import select
from typer.testing import CliRunner

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.api import wms as wms_api
from ordersync.canonical.v1 import CaseType
from ordersync.cli import app as cli
from ordersync.config import WmsSettings
from ordersync.domain.clock import FakeClock
from ordersync.flows.services.wms import sign
from ordersync.reads.orders import webhook_attempts
from ordersync.server import create_app
from ordersync.store import drift as drift_store
from ordersync.store.schema import cases, wms_events
from tests.support.hub import api_key, erp_hub, order, place, settle, state
from tests.support.people import PASSWORD, staff

SECRET = "wms-shared-secret"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(tmp_path: Path, clock: FakeClock) -> Any:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, clock=clock,
                wms=WmsSettings(secret=SECRET))
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def wms(hub: Any) -> str:
    return api_key(hub, "fulfillment:write", client="wms")


@pytest.fixture
def order_id(hub: Any) -> str:
    receipt = place(hub, order("C-1001", ("BRG-6204-2RS", 10), external="D-1", ship_to="RIS-DUS"))
    settle(hub)
    assert state(hub, receipt.order_id) == "accepted"
    return receipt.order_id


def post(client: TestClient, key: str, clock: FakeClock, body: bytes) -> Any:
    timestamp = str(int(clock.now().timestamp()))
    return client.post("/v1/wms/events", content=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Ordersync-Timestamp": timestamp,
        "X-Ordersync-Signature": sign(SECRET.encode(), timestamp, body)})


def pick(clock: FakeClock, order_id: str, event_id: str, **line: Any) -> bytes:
    event = {"event_id": event_id, "type": "pick", "order_id": order_id, "occurred_at": clock.now().isoformat(),
             "lines": [{"line_no": 1, "quantity": "10", **line}]}
    return json.dumps(event).encode()


def drift_rows(hub: Any) -> list[dict[str, Any]]:
    with hub.db.read() as conn:
        return [dict(r) for r in drift_store.drift(conn)]


def integration_cases(hub: Any) -> list[dict[str, Any]]:
    query = select(cases.c.body).where(cases.c.type == CaseType.INTEGRATION_FAILURE.value)
    with hub.db.read() as conn:
        return [json.loads(b) for b in conn.execute(query.order_by(cases.c.opened_at)).scalars()]


def taken(hub: Any) -> list[str]:
    with hub.db.read() as conn:
        return list(conn.execute(select(wms_events.c.event_id).order_by(wms_events.c.event_id)).scalars())


def test_an_event_with_a_new_field_is_processed_and_its_drift_counted_with_one_case(
    hub: Any, client: TestClient, wms: str, clock: FakeClock, order_id: str
) -> None:
    first = post(client, wms, clock, pick(clock, order_id, "N-1", serial="SN-0001"))
    assert first.status_code == 202 and first.json() == {"event_id": "N-1", "status": "accepted", "order_id": order_id}
    settle(hub)
    assert state(hub, order_id) == "in_fulfillment"

    clock.advance(60)
    again = post(client, wms, clock, pick(clock, order_id, "N-2", serial="SN-0002"))
    assert again.status_code == 202 and again.json()["status"] == "accepted"
    assert taken(hub) == ["N-1", "N-2"]

    [row] = drift_rows(hub)
    assert (row["source"], row["field"], row["kind"], row["seen"], row["count"]) == (
        "wms.event", "$.lines[].serial", "unknown_field", "string", 2)
    assert row["sample"] == '"SN-0002"' and row["last_seen_at"] > row["first_seen_at"]
    [case] = integration_cases(hub)  # the second sighting counts, it opens nothing
    assert case["id"] == row["case_id"]
    assert "wms.event payloads drifted: unknown_field at $.lines[].serial" in case["summary"]


def test_an_event_with_a_changed_type_is_quarantined_with_its_reason_and_applies_nothing(
    hub: Any, client: TestClient, wms: str, clock: FakeClock, order_id: str
) -> None:
    body = pick(clock, order_id, "T-1", quantity={"value": 10, "unit": "EA"})
    r = post(client, wms, clock, body)
    assert r.status_code == 202
    answer = r.json()
    assert (answer["status"], answer["event_id"], answer["order_id"]) == ("quarantined", "T-1", None)
    assert "$.lines[0].quantity: Decimal input should be" in answer["reason"]
    redelivered = post(client, wms, clock, body)  # the WMS sends it again: the same entry, counted
    assert redelivered.json()["quarantine_id"] == answer["quarantine_id"]
    settle(hub)
    assert taken(hub) == [] and state(hub, order_id) == "accepted"

    with hub.db.read() as conn:
        [kept] = drift_store.quarantined(conn)
        assert [a["outcome"] for a in webhook_attempts(conn)] == ["quarantined", "quarantined"]
    assert (kept["id"], kept["source"], kept["status"], kept["deliveries"]) == (
        answer["quarantine_id"], "wms.event", "held", 2)
    assert bytes(kept["body"]) == body and kept["reason"] == answer["reason"]
    assert json.loads(kept["context"])["channel"] == "wms"
    [row] = drift_rows(hub)
    assert (row["field"], row["kind"], row["expected"], row["seen"]) == (
        "$.lines[].quantity", "type_changed", "number/string", "object")
    summaries = [c["summary"] for c in integration_cases(hub)]
    assert len(summaries) == 2  # the new drift, and the quarantined payload
    assert any(f"quarantined ({kept['id']})" in s for s in summaries)


def test_a_quarantined_event_is_replayed_after_a_fix_and_nothing_is_lost(
    hub: Any, client: TestClient, wms: str, clock: FakeClock, order_id: str, tmp_path: Path
) -> None:
    body = pick(clock, order_id, "T-2", quantity={"value": 10, "unit": "EA"})
    entry_id = post(client, wms, clock, body).json()["quarantine_id"]
    data_dir = str(tmp_path / "hub")
    runner = CliRunner()

    listed = runner.invoke(cli, ["drift", "quarantined", "--data-dir", data_dir, "--json"], catch_exceptions=False)
    assert [e["id"] for e in json.loads(listed.stdout)] == [entry_id]
    shown = runner.invoke(cli, ["drift", "show", entry_id, "--data-dir", data_dir], catch_exceptions=False)
    assert body.decode() in shown.stdout and "Decimal input should be" in shown.stdout

    as_kept = runner.invoke(cli, ["drift", "replay", entry_id, "--data-dir", data_dir])  # nothing fixed yet
    assert as_kept.exit_code == 1 and "held: still unprocessable" in " ".join(as_kept.stdout.split())

    fixed = tmp_path / "fixed.json"  # the fix: the quantity as the WMS meant it
    fixed.write_bytes(pick(clock, order_id, "T-2", quantity="10"))
    replayed = runner.invoke(cli, ["drift", "replay", entry_id, "--body", str(fixed), "--data-dir", data_dir],
                             catch_exceptions=False)
    assert f"{entry_id}: replayed: accepted: pick event T-2 for {order_id}" in " ".join(replayed.stdout.split())
    settle(hub)
    assert taken(hub) == ["T-2"] and state(hub, order_id) == "in_fulfillment"

    with hub.db.read() as conn:
        assert drift_store.quarantined(conn) == []
        [settled] = drift_store.quarantined(conn, status=None)
    assert (settled["status"], settled["replay_count"]) == ("replayed", 2)
    assert bytes(settled["body"]) == body  # the body as received stays kept
    quarantine_case = next(c for c in integration_cases(hub) if entry_id in c["summary"])
    assert quarantine_case["state"] == "resolved"
    again = runner.invoke(cli, ["drift", "replay", entry_id, "--data-dir", data_dir])
    assert "is replayed already" in str(again.exception)  # `ordersync` prints it as one error line


def test_a_body_that_is_not_json_is_quarantined_but_is_no_drift(
    hub: Any, client: TestClient, wms: str, clock: FakeClock
) -> None:
    r = post(client, wms, clock, b"<event id='X-1'/>")
    assert r.status_code == 202 and r.json()["status"] == "quarantined" and r.json()["event_id"] is None
    assert r.json()["reason"].startswith("the body is not JSON")
    assert drift_rows(hub) == []


def test_the_drift_page_shows_drift_and_quarantine_and_replays_after_a_fix(
    hub: Any, client: TestClient, wms: str, clock: FakeClock, order_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, wms, clock, pick(clock, order_id, "P-1", serial="SN-1"))
    entry_id = post(client, wms, clock, pick(clock, order_id, "P-2", quantity=[10])).json()["quarantine_id"]
    finance = staff(hub, "finance", name="Frida Finance")
    ops = staff(hub, "operations", name="Olga Ops")

    def sign_in(email: str) -> str:
        client.cookies.clear()
        r = client.post("/ops/signin", data={"email": email, "password": PASSWORD, "next": "/ops/drift"},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get("/ops/drift").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        return found.group(1)

    assert client.get("/ops/drift", follow_redirects=False).status_code == 303  # signed in only
    token = sign_in(finance)
    page = client.get("/ops/drift").text
    assert 'id="nav-drift"' in page and 'aria-current="page"' in page
    assert 'data-field="$.lines[].serial" data-kind="unknown_field" data-count="1"' in page
    assert 'data-field="$.lines[].quantity" data-kind="type_changed"' in page
    assert f'id="quarantine-row-{entry_id}"' in page and "Decimal input should be" in page
    assert f'id="quarantine-replay-{entry_id}"' not in page  # finance sees it, operations acts on it
    refused = client.post(f"/ops/drift/{entry_id}/replay", data={"csrf": token})
    assert refused.status_code == 403 and "operations" in refused.text

    token = sign_in(ops)
    assert f'id="quarantine-replay-{entry_id}"' in client.get("/ops/drift").text
    stale = client.post(f"/ops/drift/{entry_id}/replay", data={"csrf": "stale"})
    assert stale.status_code == 403
    still = client.post(f"/ops/drift/{entry_id}/replay", data={"csrf": token})
    assert "held: still unprocessable" in still.text

    # the fix, deployed: a hub that reads a quantity sent as a one-item list (what this WMS now sends)
    class FixedLine(wms_api.WmsLineIn):
        @field_validator("quantity", mode="before")
        @classmethod
        def _one_item_list(cls, value: Any) -> Any:
            return value[0] if isinstance(value, list) and len(value) == 1 else value

    class FixedEvent(wms_api.WmsEventIn):
        lines: list[FixedLine] = Field(default_factory=list, max_length=500)

    monkeypatch.setattr(wms_api, "WmsEventIn", FixedEvent)
    done = client.post(f"/ops/drift/{entry_id}/replay", data={"csrf": token})
    assert f"{entry_id}: replayed: accepted: pick event P-2" in done.text
    assert f'data-quarantine-id="{entry_id}" data-status="replayed"' in done.text
    assert taken(hub) == ["P-1", "P-2"]


def test_the_erp_reads_drift_is_recorded_once_per_read_with_the_latest_sample(hub: Any) -> None:
    from ordersync.adapters.erp.tryton.contract import SCHEMAS
    from ordersync.runtime.contracts import DriftRecorder

    recorder = DriftRecorder(hub.db, hub.clock, hub.workbench.policy)
    sale = {"id": 7, "state": "processing", "party": 3, "lines": [1]}
    recorder.observe("tryton.sale.sale", SCHEMAS["sale.sale"], [sale, {**sale, "id": 8}])
    assert drift_rows(hub) == [] and integration_cases(hub) == []  # nothing drifted: nothing written
    recorder.observe("tryton.sale.sale", SCHEMAS["sale.sale"],
                     [{**sale, "party": "C-1001"}, {**sale, "id": 8, "party": "C-1002"}])
    [row] = drift_rows(hub)
    assert (row["source"], row["field"], row["kind"], row["count"], row["sample"]) == (
        "tryton.sale.sale", "$.party", "type_changed", 1, '"C-1002"')
    assert len(integration_cases(hub)) == 1


def test_a_held_payload_is_discarded_with_a_reason_and_drift_is_listed_on_the_command_line(
    hub: Any, client: TestClient, wms: str, clock: FakeClock, order_id: str, tmp_path: Path
) -> None:
    entry_id = post(client, wms, clock, pick(clock, order_id, "D-1", quantity=True)).json()["quarantine_id"]
    data_dir = str(tmp_path / "hub")
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["drift", "list", "--data-dir", data_dir, "--json"],
                                      catch_exceptions=False).stdout)
    assert [(d["source"], d["field"], d["kind"], d["seen"]) for d in listed] == [
        ("wms.event", "$.lines[].quantity", "type_changed", "boolean")]

    unexplained = runner.invoke(cli, ["drift", "discard", entry_id, "--reason", " ", "--data-dir", data_dir])
    assert "say why the payload is discarded" in str(unexplained.exception)
    done = runner.invoke(cli, ["drift", "discard", entry_id, "--reason", "re-sent fixed as D-2", "--data-dir",
                               data_dir], catch_exceptions=False)
    assert f"{entry_id}: discarded" in done.stdout
    with hub.db.read() as conn:
        [settled] = drift_store.quarantined(conn, status="discarded")
    assert settled["outcome"].endswith(": re-sent fixed as D-2") and settled["replay_count"] == 0
    case = next(c for c in integration_cases(hub) if entry_id in c["summary"])
    assert case["state"] == "resolved"
    assert taken(hub) == []  # discarded: never applied
