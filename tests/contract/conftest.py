"""Fixtures of the ERP contract suite: every test runs against the in-memory twin and against Tryton.

* ``seeded``: a pristine ERP, never written to (memory: a fresh twin; Tryton: ``contract_ro``), for
  tests that compare with the seed's facts.
* ``subject``: a writable ERP with its test driver (memory: a fresh twin per test; Tryton: one fresh copy
  of the ``main`` profile per test module, ``contract_rw``; tests there use their own references and
  assert relative to what they read first, so they do not depend on each other).

The Tryton side gets its own trytond (the databases must be listed when it starts), built from the
cached templates; a cold build takes ~2.5 min, a warm start a few seconds. ``tryton-postgresql`` runs the
same suite against Tryton on the local PostgreSQL server (real installations run there): two databases
made from the PostgreSQL template (built once, ~3 min cold), dropped after the module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.template import (
    create_database,
    create_pg_database,
    drop_pg_database,
    ensure_template,
    pg_uri,
)
from ordersync.ports.erp import ErpPort
from tests.contract.drivers import ErpTestDriver, MemoryDriver, TrytonDriver

READ_ONLY, WRITABLE = "contract_ro", "contract_rw"


@dataclass
class ErpUnderTest:
    """An ERP port, the driver of the same ERP, and how to open a second client on it."""

    kind: str
    erp: ErpPort
    driver: ErpTestDriver
    profile: demo_data.Profile
    connect: Callable[[], ErpPort]  # another hub process talking to the same ERP


@pytest.fixture(scope="module")
def contract_tryton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonServer]:
    """A trytond serving a pristine and a writable copy of the ``main`` profile, for this module."""
    home = TrytonHome().ensure()
    ensure_template("main", home=home)
    data_dir: Path = tmp_path_factory.mktemp("tryton-contract")
    for database in (READ_ONLY, WRITABLE):
        create_database("main", data_dir, database, home=home)
    with TrytonServer(data_dir, [READ_ONLY, WRITABLE], home=home, die_with_parent=True) as server:
        yield server


@pytest.fixture(scope="module")
def contract_tryton_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrytonServer, str, str]]:
    """The same on PostgreSQL: a trytond serving a pristine and a writable database made from the
    PostgreSQL template; (server, read-only name, writable name)."""
    home = TrytonHome().ensure()
    suffix = uuid.uuid4().hex[:8]
    names = [create_pg_database("main", f"ordersync_test_{kind}_{suffix}", home=home) for kind in ("ro", "rw")]
    try:
        data_dir: Path = tmp_path_factory.mktemp("tryton-contract-pg")
        with TrytonServer(data_dir, names, home=home, die_with_parent=True, db_uri=pg_uri()) as server:
            yield server, names[0], names[1]
    finally:
        for name in names:
            drop_pg_database(name)


def _tryton_side(erp_kind: str, request: pytest.FixtureRequest) -> tuple[TrytonServer, str, str]:
    if erp_kind == "tryton-postgresql":
        side: tuple[TrytonServer, str, str] = request.getfixturevalue("contract_tryton_pg")
        return side
    return request.getfixturevalue("contract_tryton"), READ_ONLY, WRITABLE


# tryton-postgresql: the first test may build the PostgreSQL template (~3 min cold): a longer timeout
@pytest.fixture(params=["memory", pytest.param("tryton", marks=pytest.mark.tryton),
                        pytest.param("tryton-postgresql", marks=[pytest.mark.tryton, pytest.mark.timeout(900)])])
def erp_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def tryton_clients() -> Iterator[Callable[[TrytonServer, str, demo_data.User], TrytonClient]]:
    clients: list[TrytonClient] = []

    def connect(server: TrytonServer, database: str, user: demo_data.User) -> TrytonClient:
        client = TrytonClient(server.url, database, user["login"], user["password"], timeout=120)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def seeded(erp_kind: str, request: pytest.FixtureRequest,
           tryton_clients: Callable[[TrytonServer, str, demo_data.User], TrytonClient]) -> ErpPort:
    """An ERP exactly as seeded from the ``main`` profile."""
    if erp_kind == "memory":
        return MemoryErp("main")
    server, read_only, _ = _tryton_side(erp_kind, request)
    return TrytonErp(tryton_clients(server, read_only, demo_data.INTEGRATION_USER),
                     regions=demo_data.subdivision_regions())


@pytest.fixture
def subject(erp_kind: str, request: pytest.FixtureRequest,
            tryton_clients: Callable[[TrytonServer, str, demo_data.User], TrytonClient]) -> ErpUnderTest:
    """A writable ERP of the ``main`` profile with its driver."""
    profile = demo_data.profile("main")
    if erp_kind == "memory":
        twin = MemoryErp(profile)
        return ErpUnderTest("memory", twin, MemoryDriver(twin), profile, lambda: twin)
    server, _, writable = _tryton_side(erp_kind, request)

    def connect() -> ErpPort:
        return TrytonErp(tryton_clients(server, writable, demo_data.INTEGRATION_USER),
                         regions=demo_data.subdivision_regions())

    driver = TrytonDriver(tryton_clients(server, writable, demo_data.ADMIN))
    return ErpUnderTest(erp_kind, connect(), driver, profile, connect)
