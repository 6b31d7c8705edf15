"""The published JSON Schemas of the events subscribers receive: one file per event type and version,
``schemas/events/<type>.v<N>.json`` (the ``payload`` of the envelope), plus the envelope itself
(``schemas/events/envelope.v1.json``).

The schemas describe what the hub sends (pydantic's serialization mode: a decimal is a string, a field
with a default is always present). The compatibility check is :mod:`ordersync.canonical.compat`'s,
applied per file: a change that would break a published version needs a new ``VERSION`` of the event
(a new file beside the old one). ``ordersync schemas export`` writes them, ``ordersync schemas check``
and a unit test compare the code with the committed files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ordersync.canonical.compat import breaking_changes
from ordersync.canonical.envelope import Envelope
from ordersync.domain.events import MESSAGE_TYPES
from ordersync.runtime.outbound import outbound_types

FOLDER = "events"
ENVELOPE = "envelope"
ENVELOPE_VERSION = 1


def file_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}"


def hub_event_types() -> frozenset[str]:
    """The outbound event types the hub defines (a test's own message types registered in the same
    process are not published)."""
    return frozenset(t for t in outbound_types() if MESSAGE_TYPES[t].__module__.startswith("ordersync."))


def current_event_schemas() -> dict[str, dict[str, Any]]:
    """The schema of every outbound event type at its current version, by file name (no ``.json``)."""
    out: dict[str, dict[str, Any]] = {}
    for event_type in sorted(hub_event_types()):
        cls = MESSAGE_TYPES[event_type]
        name = file_name(event_type, cls.VERSION)
        out[name] = _published(cls.model_json_schema(mode="serialization"), name, event_type, cls.VERSION)
    envelope = file_name(ENVELOPE, ENVELOPE_VERSION)
    out[envelope] = _published(Envelope.model_json_schema(mode="serialization"), envelope, None, ENVELOPE_VERSION)
    return out


def _published(schema: dict[str, Any], name: str, event_type: str | None, version: int) -> dict[str, Any]:
    schema["$id"] = f"https://ordersync.dev/schemas/{FOLDER}/{name}.json"
    schema["x-schema-version"] = version
    if event_type is not None:
        schema["x-event-type"] = event_type
    return schema


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def load_published(root: Path) -> dict[str, dict[str, Any]]:
    folder = root / FOLDER
    return {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def problems(published: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What the code would break, per published file. A published version the code no longer sends is
    fine when the code sends a newer version of the same type (that is how a breaking change is made);
    a type the hub stopped sending altogether breaks its subscribers."""
    found: dict[str, list[str]] = {}
    current_types = {name.rsplit(".v", 1)[0] for name in current}
    for name, schema in published.items():
        if name in current:
            broken = breaking_changes(schema, current[name])
        elif name.rsplit(".v", 1)[0] in current_types:
            broken = []
        else:
            broken = ["event type no longer sent (publish a replacement; keep sending it until subscribers moved)"]
        if broken:
            found[name] = broken
    return found


def export(root: Path) -> list[Path]:
    """Write every current event schema under ``root/events/`` and return the files written. Published
    files of older versions stay (they are the record subscribers of that version read)."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_event_schemas().items():
        path = folder / f"{name}.json"
        path.write_text(dump(schema))
        written.append(path)
    return written
