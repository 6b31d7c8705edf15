"""Fixtures for tests against a real trytond: one server per test session, serving three databases.

* ``main`` and ``acquired``: the two demo profiles, read-only by convention (tests assert seed facts).
* ``sandbox``: another copy of the ``main`` profile for tests that create sales or move stock.

The Tryton environment and templates are built on first use into the user cache
(``ORDERSYNC_CACHE_DIR`` overrides it); a cold build takes ~2 min, a warm start ~5 s.
Written to move to a top-level conftest unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.template import create_database, ensure_template

SANDBOX = "sandbox"
TRYTON_DATABASES = {"main": "main", "acquired": "acquired", SANDBOX: "main"}  # database -> profile
_TIMINGS: dict[str, float] = {}


def record_timing(name: str, seconds: float) -> None:
    """Add a measured duration to the Tryton timings printed at the end of the run."""
    _TIMINGS[name] = seconds


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMINGS:
        terminalreporter.section("Tryton timings")
        for name, seconds in _TIMINGS.items():
            terminalreporter.write_line(f"{name:<48} {seconds:8.2f} s")


@pytest.fixture(scope="session")
def tryton_home() -> TrytonHome:
    """The Tryton virtual environment (built once per requirements.txt)."""
    home = TrytonHome()
    started = time.monotonic()
    was_ready = home.is_ready()
    home.ensure()
    record_timing("tryton venv " + ("(cached)" if was_ready else "install"), time.monotonic() - started)
    return home


@pytest.fixture(scope="session")
def tryton_templates(tryton_home: TrytonHome) -> dict[str, Path]:
    """Seeded template file per demo profile (built once per requirements/provision/data hash)."""
    templates = {}
    for profile in demo_data.PROFILES:
        started = time.monotonic()
        templates[profile] = ensure_template(profile, home=tryton_home)
        record_timing(f"template {profile} (build or cache hit)", time.monotonic() - started)
    return templates


@pytest.fixture(scope="session")
def tryton_data_dir(
    tmp_path_factory: pytest.TempPathFactory, tryton_home: TrytonHome, tryton_templates: dict[str, Path]
) -> Path:
    """A fresh data directory holding a copy of every database in ``TRYTON_DATABASES``."""
    data_dir = tmp_path_factory.mktemp("tryton")
    for database, profile in TRYTON_DATABASES.items():
        started = time.monotonic()
        create_database(profile, data_dir, database, home=tryton_home)
        record_timing(f"copy template -> {database}", time.monotonic() - started)
    return data_dir


@pytest.fixture(scope="session")
def tryton_server(tryton_data_dir: Path, tryton_home: TrytonHome) -> Iterator[TrytonServer]:
    """One trytond process serving every test database."""
    server = TrytonServer(tryton_data_dir, list(TRYTON_DATABASES), home=tryton_home, die_with_parent=True)
    with server:
        assert server.last_start_seconds is not None
        record_timing("server start (until every db answers)", server.last_start_seconds)
        yield server


@pytest.fixture
def tryton_connect(tryton_server: TrytonServer) -> Iterator[Callable[..., TrytonClient]]:
    """Factory: ``tryton_connect(database="main", user=demo_data.INTEGRATION_USER)`` -> logged-in client."""
    clients: list[TrytonClient] = []

    def connect(database: str = "main", user: demo_data.User = demo_data.INTEGRATION_USER) -> TrytonClient:
        client = TrytonClient(tryton_server.url, database, user["login"], user["password"])
        client.login()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def tryton_main(tryton_connect: Callable[..., TrytonClient]) -> TrytonClient:
    """The integration user on the read-only ``main`` database."""
    return tryton_connect("main")


@pytest.fixture
def tryton_sandbox(tryton_connect: Callable[..., TrytonClient]) -> TrytonClient:
    """The integration user on ``sandbox``, a writable copy of the ``main`` profile."""
    return tryton_connect(SANDBOX)


@pytest.fixture(scope="session")
def main_profile() -> demo_data.Profile:
    """The seed facts of the ``main`` profile."""
    return demo_data.profile("main")


def _ids_by_code(client: TrytonClient, model: str, codes: list[str], field: str = "code") -> dict[str, int]:
    """Map codes to record ids (inactive records included)."""
    rows = client.call(
        model, "search_read", [(field, "in", codes)], 0, None, None, [field], context={"active_test": False}
    )
    return {row[field]: row["id"] for row in rows}


def _draft_sale(
    client: TrytonClient,
    customer: str,
    ship_to: str,
    warehouse: str,
    lines: list[tuple[str, int]],
    reference: str,
) -> int:
    """Create a draft sale the way the hub will: raw ``create`` with contract prices read from Tryton."""
    (party,) = client.call(
        "party.party",
        "search_read",
        [("code", "=", customer)],
        0,
        1,
        None,
        ["sale_price_list", "customer_payment_term"],
    )
    address = _ids_by_code(client, "party.address", [ship_to], "building_name")[ship_to]
    wh = _ids_by_code(client, "stock.location", [warehouse])[warehouse]
    skus = [sku for sku, _ in lines]
    products = {
        row["code"]: row
        for row in client.call(
            "product.product", "search_read", [("code", "in", skus)], 0, None, None, ["code", "default_uom"]
        )
    }
    sale_lines = []
    for sku, quantity in lines:
        ctx = {"customer": party["id"], "price_list": party["sale_price_list"], "quantity": quantity}
        (price,) = client.call("product.product", "read", [products[sku]["id"]], ["sale_price_uom"], context=ctx)
        sale_lines.append(
            {
                "type": "line",
                "product": products[sku]["id"],
                "quantity": quantity,
                "unit": products[sku]["default_uom"],
                "unit_price": price["sale_price_uom"],
            }
        )
    (sale_id,) = client.call(
        "sale.sale",
        "create",
        [
            {
                "party": party["id"],
                "reference": reference,
                "warehouse": wh,
                "shipment_address": address,
                "invoice_address": address,
                "price_list": party["sale_price_list"],
                "payment_term": party["customer_payment_term"],
                "lines": [["create", sale_lines]],
            }
        ],
    )
    return int(sale_id)


@pytest.fixture(scope="session")
def tryton_timing() -> Callable[[str, float], None]:
    """``tryton_timing(name, seconds)`` adds a measurement to the summary printed after the run."""
    return record_timing


@pytest.fixture(scope="session")
def ids_by_code() -> Callable[..., dict[str, int]]:
    """``ids_by_code(client, model, codes, field="code")`` -> {code: id}, inactive records included."""
    return _ids_by_code


@pytest.fixture(scope="session")
def draft_sale() -> Callable[..., int]:
    """``draft_sale(client, customer, ship_to, warehouse, [(sku, qty)], reference)`` -> draft sale id."""
    return _draft_sale
