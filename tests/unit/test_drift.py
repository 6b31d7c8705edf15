"""The drift detector: unknown fields and changed types, found at a field path, against the JSON Schema
pydantic emits for the models we read payloads with."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ordersync.domain.drift import TYPE_CHANGED, UNKNOWN_FIELD, Finding, detect, sample


class Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    line_no: int
    quantity: Decimal


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: str
    type: Literal["pick", "ship"]
    order_id: str | None = None
    lines: list[Line] = []
    occurred_at: dt.datetime
    tags: dict[str, int] = {}
    pair: tuple[str, int] | None = None


SCHEMA = Event.model_json_schema(mode="validation")


def event(**changes: Any) -> dict[str, Any]:
    return {"event_id": "E-1", "type": "ship", "order_id": "o-1", "occurred_at": "2026-12-05T10:00:00+00:00",
            "lines": [{"line_no": 1, "quantity": "2"}, {"line_no": 2, "quantity": 3}], **changes}


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.field, f.kind) for f in findings]


def test_a_payload_that_fits_its_schema_has_no_drift() -> None:
    assert detect(SCHEMA, event(tags={"a": 1}, pair=["x", 2])) == []


def test_a_new_top_level_field_is_an_unknown_field_with_its_sample() -> None:
    found = detect(SCHEMA, event(priority={"level": "high"}))
    assert found == [Finding("$.priority", UNKNOWN_FIELD, "", "object", '{"level": "high"}')]


def test_a_new_field_of_every_line_is_one_finding_at_the_array_path() -> None:
    lines = [{"line_no": 1, "quantity": 1, "serial": "S-1"}, {"line_no": 2, "quantity": 1, "serial": "S-2"}]
    assert kinds(detect(SCHEMA, event(lines=lines))) == [("$.lines[].serial", UNKNOWN_FIELD)]


def test_a_changed_type_names_what_was_expected_and_what_came() -> None:
    found = detect(SCHEMA, event(lines=[{"line_no": "L1", "quantity": {"value": 1, "unit": "EA"}}]))
    assert kinds(found) == [("$.lines[].line_no", TYPE_CHANGED), ("$.lines[].quantity", TYPE_CHANGED)]
    assert (found[0].expected, found[0].seen) == ("integer", "string")
    assert (found[1].expected, found[1].seen) == ("number/string", "object")


def test_a_time_sent_as_a_number_is_a_changed_type() -> None:
    found = detect(SCHEMA, event(occurred_at=1764928800))
    assert [(f.field, f.expected, f.seen) for f in found] == [("$.occurred_at", "string", "integer")]


def test_an_optional_field_sent_as_null_or_an_integer_for_a_number_is_no_drift() -> None:
    assert detect(SCHEMA, event(order_id=None, lines=[{"line_no": 1, "quantity": 7}])) == []


def test_a_value_outside_an_enum_is_invalid_input_not_drift() -> None:
    assert detect(SCHEMA, event(type="teleport")) == []


def test_mapping_values_are_checked_and_their_keys_are_free() -> None:
    found = detect(SCHEMA, event(tags={"new-key": 1, "other": "x"}))
    assert kinds(found) == [("$.tags.*", TYPE_CHANGED)]


def test_tuple_items_are_checked_by_position() -> None:
    assert kinds(detect(SCHEMA, event(pair=["x", "two"]))) == [("$.pair[1]", TYPE_CHANGED)]


def test_a_field_name_that_is_no_identifier_is_quoted_in_the_path() -> None:
    assert kinds(detect(SCHEMA, event(**{"x-trace id": "t"}))) == [('$["x-trace id"]', UNKNOWN_FIELD)]


def test_a_payload_that_is_not_an_object_is_one_changed_type_at_the_root() -> None:
    assert [(f.field, f.kind, f.seen) for f in detect(SCHEMA, [1, 2])] == [("$", TYPE_CHANGED, "array")]


def test_a_changed_type_is_not_walked_into() -> None:
    assert kinds(detect(SCHEMA, event(lines={"serial": "S-1"}))) == [("$.lines", TYPE_CHANGED)]


def test_samples_are_short() -> None:
    assert len(sample("x" * 1000)) == 200
    assert sample({"a": 1}) == '{"a": 1}'


class Open(BaseModel):
    """The two fields we read of a large document (extra="allow": the rest is not ours to track)."""

    model_config = ConfigDict(extra="allow")
    admin_graphql_api_id: str
    updated_at: str | None = None


def test_an_open_object_reports_changed_types_of_the_fields_we_use_but_no_unknown_fields() -> None:
    schema = Open.model_json_schema(mode="validation")
    assert detect(schema, {"admin_graphql_api_id": "gid://shopify/Order/1", "line_items": [{"sku": "X"}]}) == []
    assert kinds(detect(schema, {"admin_graphql_api_id": 1, "updated_at": None})) == [
        ("$.admin_graphql_api_id", TYPE_CHANGED)]
