"""The scale-out brought up from the deployment kit's own files (issue 19's first "Done when"): the three
NATS nodes of ``deploy/nats/``, PostgreSQL, the bundled Tryton, migrations, the API and two workers run as
the systemd units in ``deploy/systemd/`` run them, configured by ``deploy/ordersync.toml``. Then ``/ready``
through the faults an operator meets: all up -> ready; one node down -> degraded, naming it; quorum lost
-> not ready with the reason; a worker killed -> its heartbeat missing within the threshold; and back.

What the test changes of the kit, and only that: each node's ``store_dir`` (a scratch folder), the
store (``ORDERSYNC_STORE``: a scratch database), the data directory (``ORDERSYNC_DATA_DIR``), the ERP's
data directory and the API's port (a free one). Every command comes from a unit's ``ExecStart``.
"""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import free_port
from tests.support.nats import nats_server_binary
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require

pytestmark = [pytest.mark.slow, pytest.mark.nats, pytest.mark.postgres, pytest.mark.tryton, pytest.mark.timeout(600)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG = DEPLOY / "ordersync.toml"


def exec_start(unit: str, instance: str = "") -> list[str]:
    """A unit's command as this test runs it: this interpreter's ``ordersync``, the kit's configuration."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(DEPLOY / "systemd" / unit)
    argv = shlex.split(parser["Service"]["ExecStart"].replace("%i", instance))
    assert Path(argv[0]).name == "ordersync", argv
    return [sys.executable, "-m", "ordersync.cli",
            *[str(CONFIG) if a == "/etc/ordersync/ordersync.toml" else a for a in argv[1:]]]


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    i = argv.index(option)
    return [*argv[:i + 1], value, *argv[i + 2:]]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def until(check: Callable[[], Any], seconds: float, what: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what()}")
        time.sleep(0.3)


class Kit:
    def __init__(self, root: Path, store: str) -> None:
        self.root = root
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "ORDERSYNC_STORE": store,
                    "ORDERSYNC_DATA_DIR": str(root / "data"),
                    "ORDERSYNC_ERP_PASSWORD": demo_data.INTEGRATION_USER["password"],
                    "ORDERSYNC_WMS_SECRET": "kit-test-secret"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_port = free_port()

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                                            start_new_session=True)

    def node(self, n: str) -> None:
        text = (DEPLOY / "nats" / f"{n}.conf").read_text()
        store = self.root / "nats" / n
        store.mkdir(parents=True, exist_ok=True)
        conf = self.root / f"{n}.conf"
        conf.write_text(text.replace(f"/var/lib/ordersync/nats/{n}", str(store)))
        binary = nats_server_binary()
        assert binary is not None
        self.start(n, [binary, "-c", str(conf)])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for name in list(self.procs):
            with_sigterm = self.procs[name]
            with_sigterm.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def ready(self) -> dict[str, Any]:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.api_port}/ready", timeout=10)
        except httpx.HTTPError as exc:
            return {"code": None, "status": f"unreachable ({exc})"}
        return {"code": r.status_code, **r.json()}


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    taken = [p for p in (4231, 4232, 4233, 6231, 6232, 6233, 8231, 8232, 8233, 8010, 9101, 9102) if not port_free(p)]
    assert not taken, f"the kit's ports are taken here: {taken}"
    store = create_pg_database()
    made = Kit(tmp_path, store)
    try:
        yield made
    finally:
        made.stop_all()
        drop_pg_database(store)


def test_the_kit_runs_the_scale_out_and_ready_follows_the_faults(kit: Kit, tryton_ready: Any) -> None:
    for n in ("n1", "n2", "n3"):
        kit.node(n)
    kit.start("erp", with_option(exec_start("ordersync-erp.service"), "--data-dir", str(kit.root / "erp")))
    init = subprocess.run(exec_start("ordersync-init.service"), env=kit.env, cwd=kit.root, capture_output=True,
                          text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    kit.start("api", with_option(exec_start("ordersync-api.service"), "--port", str(kit.api_port)))
    kit.start("worker1", exec_start("ordersync-worker@.service", "1"))
    kit.start("worker2", exec_start("ordersync-worker@.service", "2"))

    up = until(lambda: (b := kit.ready())["status"] == "ready" and len(b["workers"]["live"]) == 2 and b, 180,
               lambda: (kit.ready(), kit.log("api"), kit.log("worker1")))
    assert up["code"] == 200 and up["bus"]["connected"] is True
    assert all(s["replicas"] == 3 for s in up["bus"]["streams"].values())
    assert sorted(w["health_port"] for w in up["workers"]["live"]) == [9101, 9102]

    # an order goes through to Tryton
    token = subprocess.run([*exec_start("ordersync-init.service")[:3], "apikey", "create", "kit", "--client",
                            "storefront", "--scope", "orders:write", "--scope", "orders:read", "--config",
                            str(CONFIG)], env=kit.env, capture_output=True, text=True, timeout=60).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    body = {"external_order_number": "KIT-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS",
            "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "3"}]}
    with httpx.Client(base_url=f"http://127.0.0.1:{kit.api_port}", headers=auth, timeout=30) as api:
        placed = api.post("/v1/orders", json=body)
        assert placed.status_code == 202, placed.text
        order = placed.json()["order_id"]
        until(lambda: api.get(f"/v1/orders/{order}").json()["state"] == "accepted", 120,
              lambda: (api.get(f"/v1/orders/{order}").json()["state"], kit.log("worker1")))
    user = demo_data.INTEGRATION_USER
    with TrytonClient("http://127.0.0.1:8010", "main", user["login"], user["password"]) as tryton:
        assert len(tryton.call("sale.sale", "search", [["reference", "like", f"%{order}%"]])) == 1

    # one node down: degraded, naming it
    kit.kill("n3")
    one_down = until(lambda: (b := kit.ready())["status"] == "degraded"
                     and any(w.startswith("NATS node n3 is down") for w in b.get("warnings", [])) and b, 90,
                     kit.ready)
    assert one_down["code"] == 200 and one_down["reasons"] == []

    # a second node down: quorum lost, not ready, saying why
    kit.kill("n2")
    lost = until(lambda: (b := kit.ready())["code"] == 503 and b, 90, kit.ready)
    assert lost["status"] == "not ready" and any(r.startswith("NATS: quorum lost") for r in lost["reasons"]), lost

    # the nodes back: ready again
    kit.node("n2")
    kit.node("n3")
    until(lambda: kit.ready()["status"] == "ready", 120, kit.ready)

    # a worker killed: its heartbeat is missing within the threshold, the other goes on
    dead = next(w["id"] for w in kit.ready()["workers"]["live"] if w["health_port"] == 9102)
    kit.kill("worker2")
    killed = time.monotonic()
    missing = until(lambda: (b := kit.ready()).get("workers", {}).get("missing") and b, 60, kit.ready)
    stale = 20.0  # [health] worker_stale_seconds (the kit keeps the default)
    assert time.monotonic() - killed <= stale + 10
    assert [w["id"] for w in missing["workers"]["missing"]] == [dead]
    assert missing["status"] == "degraded"
    assert any(w.startswith(f"worker {dead} is missing") for w in missing["warnings"])

    # and back: the unit restarted on its port takes the place of the one that died there
    kit.start("worker2", exec_start("ordersync-worker@.service", "2"))
    back = until(lambda: (b := kit.ready())["status"] == "ready" and len(b["workers"]["live"]) == 2 and b, 60,
                 kit.ready)
    assert back["code"] == 200 and back["workers"]["missing"] == []
