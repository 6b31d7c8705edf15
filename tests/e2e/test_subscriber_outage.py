"""A subscriber is down while a real ``ordersync serve`` process takes orders (and is killed and
restarted meanwhile); when the subscriber comes back it receives every event exactly once per delivery
id, in order per order, with valid signatures, and nothing is dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ordersync.adapters.erp.tryton.server import free_port
from ordersync.demo import sink
from ordersync.store.db import Database
from ordersync.store.schema import dead_letters, orders, webhook_deliveries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "crm-shared-secret-0123456789"
SETTLED = {"accepted", "rejected", "on_hold"}
CONFIG = """
[[erp]]
name = "main"
kind = "memory"

[webhooks]
poll_seconds = 0.1
base_seconds = 0.5
wait_cap_seconds = 1.0
"""


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


def test_a_subscriber_down_for_a_while_gets_every_event_once_and_in_order_when_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    (data_dir / "ordersync.toml").write_text(CONFIG)
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
        for i in range(12):
            account, sku = [("C-1001", "BRG-6204-2RS"), ("C-1002", "SEN-PX-M12-NPN"), ("C-1002", "BRG-9999-XX")][i % 3]
            body = {"external_order_number": f"WH-{i}", "account_id": account,
                    "lines": [{"line_no": 1, "sku": sku, "quantity": "4"}]}
            r = httpx.post(f"http://127.0.0.1:{api_port}/v1/orders", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 202, r.text
            placed.append(r.json()["order_id"])

        def settled() -> bool:
            with db.read() as conn:
                states = dict(conn.execute(select(orders.c.id, orders.c.state)).all())
            return all(states.get(o) in SETTLED for o in placed)

        until(settled, 60, lambda: log.read_text()[-3000:])
        time.sleep(2)  # the sender keeps probing the closed port meanwhile
        waiting = count(db, select(func.count()).select_from(webhook_deliveries)
                        .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.attempts == 0))
        assert waiting == count(db, select(func.count()).select_from(webhook_deliveries)) > 12 * 3

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
            got = crm.received()
            summary = crm.summary()
    finally:
        stop(hub)

    with db.read() as conn:
        sent = conn.execute(select(webhook_deliveries.c.delivery_id, webhook_deliveries.c.order_key,
                                   webhook_deliveries.c.state, webhook_deliveries.c.attempts)
                            .order_by(webhook_deliveries.c.id)).all()
        letters = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
    assert letters == 0
    assert all(s.state == "delivered" and s.attempts == 1 for s in sent)  # waiting used up no attempts
    assert summary["refused"] == 0 and summary["duplicates"] == 0
    assert crm.deliveries() == {s.delivery_id: 1 for s in sent}  # every delivery, exactly once
    for order_id in placed:
        expected = [s.delivery_id for s in sent if s.order_key == order_id]
        arrived = [r.delivery_id for r in got if r.order_id == order_id]
        assert len(expected) >= 3 and arrived == expected  # in the order the events happened
    db.dispose()
