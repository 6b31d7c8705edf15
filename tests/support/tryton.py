"""Fixtures for end-to-end tests against a real trytond: fresh database copies and a server per test.

Registered for the whole suite by ``tests/conftest.py``. The Tryton environment and templates are
built once into the user cache (about 3 minutes on a new machine), then reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.config import ErpSettings
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.template import create_database, ensure_template


@pytest.fixture(scope="session")
def tryton_ready() -> TrytonHome:
    """The Tryton environment with both demo templates built."""
    home = TrytonHome().ensure()
    for profile in demo_data.PROFILES:
        ensure_template(profile, home=home)
    return home


@pytest.fixture
def start_tryton(tryton_ready: TrytonHome, tmp_path: Path) -> Iterator[Callable[..., TrytonServer]]:
    """``start_tryton({"main": "main", "acquired": "acquired"})`` -> a running server on fresh copies."""
    servers: list[TrytonServer] = []

    def start(databases: dict[str, str] | None = None) -> TrytonServer:
        databases = databases or {"main": "main"}
        data_dir = tmp_path / f"erp{len(servers)}"
        data_dir.mkdir()
        for name, profile in databases.items():
            create_database(profile, data_dir, name, home=tryton_ready)
        server = TrytonServer(data_dir, list(databases), home=tryton_ready, die_with_parent=True, verbose=False)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def erp_settings(server: TrytonServer, database: str = "main", name: str | None = None, **extra: Any) -> ErpSettings:
    user = demo_data.INTEGRATION_USER
    return ErpSettings(name=name or database, kind="tryton", url=server.url, database=database, login=user["login"],
                       password=user["password"], **extra)


def admin(server: TrytonServer, database: str = "main") -> TrytonClient:
    client = TrytonClient(server.url, database, demo_data.ADMIN["login"], demo_data.ADMIN["password"])
    client.login()
    return client


def sales_by_reference(server: TrytonServer, prefix: str, database: str = "main") -> dict[str, list[str]]:
    """Every sale whose reference starts with ``prefix``: reference -> states (to find duplicates)."""
    client = admin(server, database)
    try:
        rows = client.call("sale.sale", "search_read", [("reference", "like", f"{prefix}%")], 0, None, None,
                           ["reference", "state"])
    finally:
        client.close()
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["reference"], []).append(row["state"])
    return out


def write_hub_config(data_dir: Path, settings: list[ErpSettings], **extra: str) -> Path:
    """An ``ordersync.toml`` for worker subprocesses."""
    lines = [f"{k} = {v!r}" for k, v in extra.items()]
    for s in settings:
        lines.append("[[erp]]")
        for key in ("name", "kind", "url", "database", "login", "password"):
            lines.append(f'{key} = "{getattr(s, key)}"')
        for key in ("retries", "reset_timeout", "call_timeout", "failure_threshold"):
            lines.append(f"{key} = {getattr(s, key)!r}")
    path = data_dir / "ordersync.toml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
