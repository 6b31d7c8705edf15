"""Export the JSON Schemas of a canonical version into ``schemas/v<N>/`` (one file per model)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

VERSIONS = (1,)


def version_module(version: int) -> ModuleType:
    return importlib.import_module(f"ordersync.canonical.v{version}")


def current_schemas(version: int) -> dict[str, dict[str, Any]]:
    """The JSON Schemas the code produces now for every published model of ``version``."""
    module = version_module(version)
    published: dict[str, type[BaseModel]] = module.PUBLISHED
    out: dict[str, dict[str, Any]] = {}
    for name, model in published.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://ordersync.dev/schemas/v{version}/{name}.json"
        schema["x-schema-version"] = version
        out[name] = schema
    return out


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(root: Path, version: int) -> list[Path]:
    """Write the schemas of ``version`` under ``root/v<version>/`` and return the files written."""
    folder = root / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas(version).items():
        path = folder / f"{name}.json"
        path.write_text(dump(schema))
        written.append(path)
    return written


def load_published(root: Path, version: int) -> dict[str, dict[str, Any]]:
    folder = root / f"v{version}"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
