"""Two Tryton databases (the manufacturer and an acquired business unit): each account's orders go to
its ERP of record, discovered from the ERPs and stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.store.schema import account_routes
from tests.support.hub import order, place, settle, state
from tests.support.tryton import erp_settings, sales_by_reference

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


def test_each_account_is_routed_to_its_erp_of_record(start_tryton: Any, tmp_path: Path) -> None:
    tryton = start_tryton({"main": "main", "acquired": "acquired"})
    hub = build_hub(Settings(data_dir=tmp_path / "hub",
                             erp=[erp_settings(tryton, "main"), erp_settings(tryton, "acquired")]))
    assert hub.erps is not None
    routes = hub.erps.discover()
    assert routes["C-1001"] == "main" and routes["C-2001"] == "acquired"
    with hub.db.read() as conn:
        stored = dict(conn.execute(select(account_routes.c.account_id, account_routes.c.erp)).all())
    assert stored["C-2001"] == "acquired" and stored["C-1003"] == "main"

    ours = place(hub, order("C-1001", ("SEN-PX-M12-NPN", 6), external="R-1"))
    theirs = place(hub, order("C-2001", ("VFS-GSK-SPW-2", 20), external="R-2", currency="USD"))
    deadline = time.monotonic() + 180
    while {state(hub, ours.order_id), state(hub, theirs.order_id)} != {"accepted"}:
        assert time.monotonic() < deadline, (state(hub, ours.order_id), state(hub, theirs.order_id))
        settle(hub)
        time.sleep(0.05)
    assert list(sales_by_reference(tryton, f"OS-{ours.order_id}", "main")) == [f"OS-{ours.order_id}-PLANT-N"]
    assert sales_by_reference(tryton, f"OS-{ours.order_id}", "acquired") == {}
    assert list(sales_by_reference(tryton, f"OS-{theirs.order_id}", "acquired")) == [
        f"OS-{theirs.order_id}-VFS-HOU"]
    assert sales_by_reference(tryton, f"OS-{theirs.order_id}", "main") == {}
    hub.close()


def test_a_configured_route_wins_over_discovery(start_tryton: Any, tmp_path: Path) -> None:
    tryton = start_tryton({"main": "main", "acquired": "acquired"})
    from ordersync.config import RoutingSettings

    hub = build_hub(Settings(data_dir=tmp_path / "hub",
                             erp=[erp_settings(tryton, "main"), erp_settings(tryton, "acquired")],
                             routing=RoutingSettings(accounts={"C-2002": "main"})))
    assert hub.erps is not None
    hub.erps.discover()
    assert hub.erps.erp_name_for("C-2002") == "main"
    assert hub.erps.erp_name_for("C-2001") == "acquired"
    hub.close()
