"""Schema drift: how a payload someone sent us differs from the schema we read it with.

:func:`detect` walks a JSON payload beside a JSON Schema (the subset pydantic emits: ``$ref``/``$defs``,
``anyOf``/``oneOf``, ``type``, ``properties``, ``additionalProperties``, ``items``, ``prefixItems``,
``enum``, ``const``) and reports two kinds of finding, each at a field path such as
``$.lines[].serial`` (``[]`` stands for every item of an array, so one path counts a field of any line):

- ``unknown_field``: the payload carries a property the schema does not name. The payload can still be
  read (our models ignore extra fields); the sender has moved on and we should know. An open object
  (``additionalProperties: true``, pydantic's ``extra="allow"``) names only the fields we use of a large
  document (a Shopify order): what else it carries is not drift.
- ``type_changed``: a value's JSON type is not one the schema accepts there (a quantity sent as an object,
  a time sent as a number). Whether the payload can still be processed is decided by validating it;
  drift is what changed, validation is whether we can live with it.

Missing required fields and values outside an enum or a limit are not drift: they are plain invalid
input, and validation says so. Detection never raises on odd input: a payload that is not even an
object is one ``type_changed`` at ``$``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ordersync.canonical.compat import Schema
from ordersync.canonical.compat import alternatives as schema_alternatives

UNKNOWN_FIELD = "unknown_field"
TYPE_CHANGED = "type_changed"
KINDS = (UNKNOWN_FIELD, TYPE_CHANGED)

#: how much of an offending value a finding keeps as its sample
SAMPLE_CHARS = 200
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Finding:
    """One difference: where (``field``), what (``kind``), what the schema expects there (empty for an
    unknown field), the JSON type we saw and a short sample of the value."""

    field: str
    kind: str
    expected: str
    seen: str
    sample: str


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value. Values a client library decoded further (an
    RPC's dates, times and decimals) are named by the JSON type they travel as: string and number."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str | dt.date | dt.time):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def sample(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 3] + "..."


def detect(schema: Schema, payload: Any) -> list[Finding]:
    """Every drift of ``payload`` from ``schema``, one finding per (field, kind), in the order met."""
    walker = _Walker(schema.get("$defs", {}))
    walker.walk(schema, payload, "$")
    return list(walker.found.values())


class _Walker:
    def __init__(self, defs: dict[str, Schema]) -> None:
        self.defs = defs
        self.found: dict[tuple[str, str], Finding] = {}

    def _resolve(self, schema: Schema) -> Schema:
        for _ in range(32):  # a $ref chain longer than this is a broken schema, not ours to loop on
            if "$ref" not in schema:
                break
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.defs.get(name, {}), **rest}
        return schema

    def _note(self, path: str, kind: str, expected: str, value: Any) -> None:
        self.found.setdefault((path, kind), Finding(path, kind, expected, json_type(value), sample(value)))

    def walk(self, schema: Schema, value: Any, path: str) -> None:
        schema = self._resolve(schema)
        alternatives = [self._resolve(a) for a in schema_alternatives(schema)]
        seen = json_type(value)
        fitting = [a for a in alternatives if _accepts(a, seen)]
        if not fitting:
            expected = "/".join(sorted({t for a in alternatives for t in _types(a)}))
            self._note(path, TYPE_CHANGED, expected, value)
            return
        chosen = fitting[0]
        if seen == "object":
            self._object(chosen, value, path)
        elif seen == "array":
            self._array(chosen, value, path)

    def _object(self, schema: Schema, value: dict[str, Any], path: str) -> None:
        properties: dict[str, Schema] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = _child(path, key)
            if key in properties:
                self.walk(properties[key], item, where)
            elif isinstance(extra, dict):  # a mapping: its values have a schema, its keys are free
                self.walk(extra, item, _child(path, "*"))
            elif extra is not True and (properties or extra is False):
                self._note(where, UNKNOWN_FIELD, "", item)
            # an open object (``additionalProperties: true``: we read a few fields of a large document) or
            # one without declared properties takes anything else

    def _array(self, schema: Schema, value: list[Any], path: str) -> None:
        prefix: list[Schema] = schema.get("prefixItems", [])
        items = schema.get("items")
        for i, item in enumerate(value):
            if i < len(prefix):
                self.walk(prefix[i], item, f"{path}[{i}]")
            elif isinstance(items, dict):
                self.walk(items, item, f"{path}[]")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _NAME.match(key) or key == "*" else f"{path}[{json.dumps(key)}]"


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    if "properties" in schema or "additionalProperties" in schema:
        return {"object"}
    if "items" in schema or "prefixItems" in schema:
        return {"array"}
    values = schema["enum"] if "enum" in schema else [schema["const"]] if "const" in schema else None
    if values is not None:
        return {json_type(v) for v in values}
    return set()  # no constraint on the type


def _accepts(schema: Schema, seen: str) -> bool:
    types = _types(schema)
    if not types:
        return True
    if seen == "integer" and "number" in types:
        return True
    return seen in types
