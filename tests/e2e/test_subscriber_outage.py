"""A subscriber is down while a real ``ordersync serve`` process takes orders (and is killed and
restarted meanwhile); when the subscriber comes back it receives every event exactly once per delivery
id, in order per order, with valid signatures, and nothing is dead-lettered. Once on the in-memory ERP,
once with the hub process submitting to a real trytond."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ordersync.demo import sink
from ordersync.devkit.tryton.server import free_port
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, orders, webhook_deliveries
from tests.support.tryton import erp_settings, sales_by_reference, write_hub_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "crm-shared-secret-0123456789"
SETTLED = {"accepted", "rejected", "on_hold"}
WEBHOOKS = """
[webhooks]
poll_seconds = 0.1
base_seconds = 0.5
wait_cap_seconds = 1.0
"""
MEMORY = """
[[erp]]
name = "main"
kind = "memory"
""" + WEBHOOKS


def cli(data_dir: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ordersync.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CRM_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    until(lambda: _healthy(port), 60, lambda: log.read_text()[-3000:])
    return proc


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def until(check: Callable[[], bool], seconds: float, why: Callable[[], Any] = lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {why()}")
        time.sleep(0.1)


def count(db: Database, query: Any) -> int:
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Outage:
    """What one run of :func:`run_outage` saw: the hub's orders and deliveries, and the subscriber's view."""

    placed: list[str]
    states: dict[str, str]
    sent: list[Any]
    got: list[sink.Received]
    deliveries: dict[str, int]
    summary: dict[str, Any]
    dead_letters: int


def run_outage(tmp_path: Path, data_dir: Path, order_lines: Sequence[tuple[str, str, str]], settle_seconds: float,
               settled: set[str]) -> Outage:
    """Place ``order_lines`` (account, sku, quantity) through a real ``serve`` process while the subscriber's
    port is closed, wait until they settle, SIGKILL and restart the hub, then open the subscriber and wait
    until every waiting delivery has arrived. ``data_dir`` already holds the ``ordersync.toml``."""
    api_port, crm_port = free_port(), free_port()
    cli(data_dir, "subscriptions", "add", "crm", "--url", f"http://127.0.0.1:{crm_port}/hooks",
        "--secret-env", "CRM_SECRET")
    token = cli(data_dir, "apikey", "create", "e2e", "--client", "storefront", "--scope", "orders:write").split()[-1]
    db = Database(f"sqlite:///{data_dir / 'ordersync.db'}")
    log = tmp_path / "serve.log"
    hub = serve(data_dir, api_port, log)
    try:
        # orders while nobody listens at the subscriber's address
        placed = []
        for i, (account, sku, quantity) in enumerate(order_lines):
            body = {"external_order_number": f"WH-{i}", "account_id": account,
                    "lines": [{"line_no": 1, "sku": sku, "quantity": quantity}]}
            r = httpx.post(f"http://127.0.0.1:{api_port}/v1/orders", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 202, r.text
            placed.append(r.json()["order_id"])

        def order_states() -> dict[str, str]:
            with db.read() as conn:
                return dict(conn.execute(select(orders.c.id, orders.c.state)).all())

        until(lambda: all(order_states().get(o) in settled for o in placed), settle_seconds,
              lambda: (order_states(), log.read_text()[-3000:]))
        time.sleep(2)  # the sender keeps probing the closed port meanwhile
        waiting = count(db, select(func.count()).select_from(webhook_deliveries)
                        .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.attempts == 0))
        assert waiting == count(db, select(func.count()).select_from(webhook_deliveries)) > len(placed) * 3

        # the hub goes down hard while the subscriber is away; nothing waiting is lost
        hub.send_signal(signal.SIGKILL)
        hub.wait()
        hub = serve(data_dir, api_port, log)

        with sink.start(port=crm_port, secret=SECRET, keep=100_000) as crm:
            def drained() -> bool:
                pending = count(db, select(func.count()).select_from(webhook_deliveries)
                                .where(webhook_deliveries.c.state == "pending"))
                return pending == 0 and sum(crm.deliveries().values()) >= waiting

            until(drained, 60, lambda: (crm.summary(), log.read_text()[-3000:]))
            time.sleep(0.5)  # anything sent twice would show now
            got, deliveries, summary = crm.received(), crm.deliveries(), crm.summary()
    finally:
        stop(hub)

    with db.read() as conn:
        sent = list(conn.execute(select(webhook_deliveries.c.delivery_id, webhook_deliveries.c.order_key,
                                        webhook_deliveries.c.type, webhook_deliveries.c.state,
                                        webhook_deliveries.c.attempts)
                                 .order_by(webhook_deliveries.c.id)).all())
        letters = int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())
    outage = Outage(placed, order_states(), sent, got, deliveries, summary, letters)
    db.dispose()
    return outage


def assert_every_event_once_in_order(outage: Outage) -> None:
    assert outage.dead_letters == 0
    assert all(s.state == "delivered" and s.attempts == 1 for s in outage.sent)  # waiting used up no attempts
    assert outage.summary["refused"] == 0 and outage.summary["duplicates"] == 0
    assert outage.deliveries == {s.delivery_id: 1 for s in outage.sent}  # every delivery, exactly once
    assert all(r.valid for r in outage.got)
    for order_id in outage.placed:
        expected = [s.delivery_id for s in outage.sent if s.order_key == order_id]
        arrived = [r.delivery_id for r in outage.got if r.order_id == order_id]
        assert len(expected) >= 3 and arrived == expected  # in the order the events happened


def test_a_subscriber_down_for_a_while_gets_every_event_once_and_in_order_when_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text(MEMORY)
    mix = [("C-1001", "BRG-6204-2RS", "4"), ("C-1002", "SEN-PX-M12-NPN", "4"), ("C-1002", "BRG-9999-XX", "4")]
    outage = run_outage(tmp_path, data_dir, [mix[i % 3] for i in range(12)], 60, SETTLED)
    assert_every_event_once_in_order(outage)


TRYTON_ORDERS = [("C-1001", "SEN-PX-M12-NPN", "6"), ("C-1002", "BRG-6204-2RS", "5"), ("C-1003", "FIT-PTC-8MM", "50"),
                 ("C-1001", "VLV-BV-DN25-SS", "2"), ("C-1002", "SEN-TT-PT100", "3"), ("C-1003", "BRG-UCP205", "4")]


@pytest.mark.tryton
def test_a_subscriber_down_while_orders_reach_real_tryton_gets_every_event_once_and_in_order_when_back(
    start_tryton: Any, tmp_path: Path
) -> None:
    tryton = start_tryton({"main": "main"})
    data_dir = tmp_path / "hub"
    write_hub_config(data_dir, [erp_settings(tryton, retries=1, reset_timeout=1)])
    with (data_dir / "ordersync.toml").open("a") as config:
        config.write(WEBHOOKS)
    outage = run_outage(tmp_path, data_dir, TRYTON_ORDERS, 90, {"accepted"})

    assert outage.states == {o: "accepted" for o in outage.placed}
    sales = sales_by_reference(tryton, "OS-")  # each order reached Tryton: one sale per plant, no duplicate
    for order_id in outage.placed:
        mine = {ref: st for ref, st in sales.items() if ref.startswith(f"OS-{order_id}-")}
        assert mine and all(len(st) == 1 and st[0] in ("confirmed", "processing") for st in mine.values()), sales
    assert_every_event_once_in_order(outage)
    for order_id in outage.placed:
        arrived = [r.event_type for r in outage.got if r.order_id == order_id]
        assert arrived.count("order.received") == arrived.count("order.accepted") == 1, arrived
