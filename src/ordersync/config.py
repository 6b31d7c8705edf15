"""Configuration: one validated file (TOML), environment overrides, sensible defaults.

Resolution order (later wins): defaults, ``<data_dir>/ordersync.toml`` or the file given with
``--config`` / ``ORDERSYNC_CONFIG``, then ``ORDERSYNC_DATA_DIR`` and ``ORDERSYNC_STORE``. Bad
configuration fails at start with a message naming the file and the field.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ordersync.domain.errors import ConfigError
from ordersync.store.db import sqlite_url

DEFAULT_DATA_DIR = Path(".ordersync")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(Strict):
    max_attempts: int = Field(default=5, ge=1, le=100)
    base_seconds: float = Field(default=1.0, gt=0)
    cap_seconds: float = Field(default=300.0, gt=0)


class WorkerSettings(Strict):
    poll_interval: float = Field(default=0.05, gt=0, le=10)
    lease_seconds: float = Field(default=15.0, gt=0)
    relay_batch: int = Field(default=1000, ge=1)
    retry: RetrySettings = RetrySettings()


class Settings(Strict):
    """Everything a hub process needs to start."""

    data_dir: Path = DEFAULT_DATA_DIR
    store: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite under data_dir")
    bus: str = Field(default="embedded", pattern=r"^(embedded|nats://.+)$")
    worker: WorkerSettings = WorkerSettings()
    source: str = Field(default="defaults", exclude=True)

    @property
    def store_url(self) -> str:
        return self.store or sqlite_url(self.data_dir)


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    store: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    file = config_file or (Path(env["ORDERSYNC_CONFIG"]) if env.get("ORDERSYNC_CONFIG") else None)
    resolved_dir = data_dir or (Path(env["ORDERSYNC_DATA_DIR"]) if env.get("ORDERSYNC_DATA_DIR") else None)
    if file is None:
        candidate = (resolved_dir or DEFAULT_DATA_DIR) / "ordersync.toml"
        file = candidate if candidate.exists() else None
    if file is not None:
        if not file.exists():
            raise ConfigError(f"config file {file} does not exist")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
        data["source"] = str(file)
    if resolved_dir is not None:
        data["data_dir"] = resolved_dir
    if store or env.get("ORDERSYNC_STORE"):
        data["store"] = store or env["ORDERSYNC_STORE"]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({data.get('source', 'defaults')}): {problems}") from exc
