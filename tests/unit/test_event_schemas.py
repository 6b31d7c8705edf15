"""The outbound events' published schemas (schemas/events/): every event type subscribers can name has
one, the code stays compatible with every committed file, and what the hub sends fits them."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

from ordersync.canonical.envelope import Envelope
from ordersync.canonical.v1 import CaseType, OrderState
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.drift import detect
from ordersync.domain.events import CaseOpened, OrderStateChanged
from ordersync.runtime.event_schemas import current_event_schemas, hub_event_types, load_published, problems

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)


def test_every_event_a_subscriber_can_name_has_a_committed_schema() -> None:
    published = load_published(SCHEMAS)
    missing = sorted(set(current_event_schemas()) - set(published))
    assert not missing, f"export them with `ordersync schemas export`: {missing}"
    assert {name.rsplit(".v", 1)[0] for name in published} >= hub_event_types()


def test_the_code_stays_compatible_with_every_committed_event_schema() -> None:
    broken = problems(load_published(SCHEMAS), current_event_schemas())
    assert not broken, f"breaking changes to published event schemas (give the event a new VERSION): {broken}"


def test_removing_or_retyping_a_field_of_a_published_event_is_breaking() -> None:
    current = current_event_schemas()
    changed = copy.deepcopy(current)
    del changed["order.state_changed.v1"]["properties"]["cause"]
    changed["order.state_changed.v1"]["required"].remove("cause")
    changed["order.held.v1"]["properties"]["order_id"] = {"type": "integer"}
    broken = problems(current, changed)
    assert sorted(broken) == ["order.held.v1", "order.state_changed.v1"]
    assert any("cause" in p for p in broken["order.state_changed.v1"])
    assert broken["order.held.v1"] == ["$.order_id: type string is no longer accepted"]


def test_a_new_version_leaves_the_old_file_as_its_record_but_a_dropped_event_type_breaks() -> None:
    current = current_event_schemas()
    moved = {("order.held.v2" if k == "order.held.v1" else k): v for k, v in current.items()}
    assert problems(current, moved) == {}
    gone = {k: v for k, v in current.items() if k != "order.held.v1"}
    assert list(problems(current, gone)) == ["order.held.v1"]


def test_adding_an_optional_field_to_an_event_is_compatible() -> None:
    current = current_event_schemas()
    grown = copy.deepcopy(current)
    grown["order.held.v1"]["properties"]["note"] = {"type": "string"}
    assert problems(current, grown) == {}


def test_what_the_hub_sends_fits_the_published_schemas_exactly() -> None:
    published = load_published(SCHEMAS)
    case = open_case(CaseType.CREDIT_HOLD, summary="over the limit", next_action="check", now=NOW,
                     policy=CasePolicy(), order_id="o-1", account_id="C-1001")
    for event in (CaseOpened(case=case), OrderStateChanged(order_id="o-1", channel="portal", account_id="C-1001",
                                                           from_state=None, to_state=OrderState.RECEIVED,
                                                           cause="received", at=NOW)):
        payload = json.loads(json.dumps(event.payload()))
        assert detect(published[f"{event.TYPE}.v{event.VERSION}"], payload) == [], event.TYPE
        envelope = Envelope(type=event.TYPE, occurred_at=NOW, payload=payload)
        assert detect(published["envelope.v1"], json.loads(envelope.to_json())) == []


def test_schemas_check_on_the_command_line_covers_the_events(tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from ordersync.cli import app

    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    runner = CliRunner()
    good = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path / "schemas")])
    assert good.exit_code == 0, good.output
    held = tmp_path / "schemas" / "events" / "order.held.v1.json"
    schema = json.loads(held.read_text())
    schema["properties"]["reason"] = {"type": "integer"}  # the code sends a string: old readers would break
    held.write_text(json.dumps(schema))
    bad = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path / "schemas")])
    assert "published schemas would break" in str(bad.exception)
    assert "events/order.held.v1: $.reason" in " ".join(bad.output.split())
