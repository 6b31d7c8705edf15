"""Published canonical schemas never change incompatibly without a new version."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ordersync.canonical.compat import breaking_changes
from ordersync.canonical.export import VERSIONS, current_schemas, load_published

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_published_model_has_an_exported_schema(version: int) -> None:
    published = load_published(SCHEMAS, version)
    missing = sorted(set(current_schemas(version)) - set(published))
    assert not missing, f"export them with `ordersync schemas export`: {missing}"


@pytest.mark.parametrize("version", VERSIONS)
def test_code_stays_backward_compatible_with_published_schemas(version: int) -> None:
    current = current_schemas(version)
    problems = {
        name: breaking_changes(schema, current[name])
        for name, schema in load_published(SCHEMAS, version).items()
        if name in current
    }
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"breaking changes to published v{version} schemas (make a v{version + 1}): {problems}"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_published_model_cannot_disappear(version: int) -> None:
    gone = sorted(set(load_published(SCHEMAS, version)) - set(current_schemas(version)))
    assert not gone


def _order_schema() -> dict[str, Any]:
    return copy.deepcopy(current_schemas(1)["Order"])


def test_adding_a_required_field_is_breaking() -> None:
    old = _order_schema()
    new = _order_schema()
    new["properties"]["priority"] = {"type": "integer"}
    new["required"].append("priority")
    assert any("priority: newly required" in p for p in breaking_changes(old, new))


def test_removing_a_required_field_is_breaking() -> None:
    old = _order_schema()
    new = _order_schema()
    del new["properties"]["channel"]
    new["required"].remove("channel")
    assert any("channel" in p for p in breaking_changes(old, new))


def test_changing_a_type_is_breaking() -> None:
    old = _order_schema()
    new = _order_schema()
    new["properties"]["notes"] = {"type": "integer"}
    assert any("notes" in p and "no longer accepted" in p for p in breaking_changes(old, new))


def test_narrowing_an_enum_is_breaking_and_widening_is_not() -> None:
    old = copy.deepcopy(current_schemas(1)["Shipment"])
    narrowed = copy.deepcopy(old)
    narrowed["$defs"]["ShipmentState"]["enum"].remove("delivered")
    assert any("enum" in p and "delivered" in p for p in breaking_changes(old, narrowed))
    widened = copy.deepcopy(old)
    widened["$defs"]["ShipmentState"]["enum"].append("lost")
    assert breaking_changes(old, widened) == []


def test_tightening_a_limit_is_breaking() -> None:
    old = _order_schema()
    new = _order_schema()
    new["properties"]["lines"]["maxItems"] = 10
    assert any("maxItems" in p for p in breaking_changes(old, new))


def test_adding_an_optional_field_is_compatible() -> None:
    old = _order_schema()
    new = _order_schema()
    new["properties"]["priority"] = {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert breaking_changes(old, new) == []


def test_a_change_inside_a_nested_model_is_found() -> None:
    old = _order_schema()
    new = _order_schema()
    new["$defs"]["OrderLine"]["properties"]["line_no"] = {"type": "string"}
    problems = breaking_changes(old, new)
    assert any("lines[]" in p and "line_no" in p for p in problems), problems
