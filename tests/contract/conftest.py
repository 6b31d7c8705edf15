"""Fixtures of the ERP contract suite: every test runs against the in-memory twin and against Tryton.

* ``seeded``: a pristine ERP, never written to (memory: a fresh twin; Tryton: ``contract_ro``), for
  tests that compare with the seed's facts.
* ``subject``: a writable ERP with its test driver (memory: a fresh twin per test; Tryton: one fresh copy
  of the ``main`` profile per test module, ``contract_rw``; tests there use their own references and
  assert relative to what they read first, so they do not depend on each other).

The Tryton side gets its own trytond (the databases must be listed when it starts), built from the
cached templates; a cold build takes ~2.5 min, a warm start a few seconds.
"""

from __future__ import annotations

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
from ordersync.devkit.tryton.template import create_database, ensure_template
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


@pytest.fixture(params=["memory", pytest.param("tryton", marks=pytest.mark.tryton)])
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
    server: TrytonServer = request.getfixturevalue("contract_tryton")
    return TrytonErp(tryton_clients(server, READ_ONLY, demo_data.INTEGRATION_USER),
                     regions=demo_data.subdivision_regions())


@pytest.fixture
def subject(erp_kind: str, request: pytest.FixtureRequest,
            tryton_clients: Callable[[TrytonServer, str, demo_data.User], TrytonClient]) -> ErpUnderTest:
    """A writable ERP of the ``main`` profile with its driver."""
    profile = demo_data.profile("main")
    if erp_kind == "memory":
        twin = MemoryErp(profile)
        return ErpUnderTest("memory", twin, MemoryDriver(twin), profile, lambda: twin)
    server: TrytonServer = request.getfixturevalue("contract_tryton")

    def connect() -> ErpPort:
        return TrytonErp(tryton_clients(server, WRITABLE, demo_data.INTEGRATION_USER),
                         regions=demo_data.subdivision_regions())

    driver = TrytonDriver(tryton_clients(server, WRITABLE, demo_data.ADMIN))
    return ErpUnderTest("tryton", connect(), driver, profile, connect)
