"""Shared fixtures. ``store_url`` runs a test on SQLite and on PostgreSQL (skipped without a server on a
laptop, required under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ordersync.bootstrap import Hub, build_hub
from ordersync.config import Settings
from ordersync.domain.clock import FakeClock
from ordersync.messaging.registry import Registry
from ordersync.store.db import Database
from ordersync.store.schema import metadata
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require

pytest_plugins = ["tests.support.tryton"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = create_pg_database()
    db = Database(url)
    db.migrate()
    db.dispose()
    yield url
    drop_pg_database(url)


def _truncate(url: str) -> None:
    db = Database(url)
    db.migrate()  # a migration test may have left it at an older revision
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with db.write() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ordersync.db'}"
    url: str = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_hub(tmp_path: Path, clock: FakeClock) -> Iterator[object]:
    hubs: list[Hub] = []

    def make(store_url: str | None = None, registry: Registry | None = None) -> Hub:
        settings = Settings(data_dir=tmp_path / "data", store=store_url)
        hub = build_hub(settings, clock=clock, registry=registry)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


#: directories whose tests run one after another on one xdist worker (``./run test`` runs two workers,
#: ``--dist loadgroup``): the end-to-end tests kill processes and time recoveries, and want a machine that
#: is not also running another end-to-end test; the browser tests share one served hub per package
SERIAL_GROUPS = {"e2e": "e2e", "browser": "browser"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for directory, group in SERIAL_GROUPS.items():
            if "tests" in parts and directory in parts:
                item.add_marker(pytest.mark.xdist_group(group))
