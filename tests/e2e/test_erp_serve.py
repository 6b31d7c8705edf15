"""``ordersync erp serve``: the bundled Tryton as a service of its own, on the fixed port configuration
files name, its database kept across restarts, stopped cleanly by SIGTERM (as systemd stops it)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import free_port

pytestmark = [pytest.mark.tryton, pytest.mark.slow]


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ordersync.cli", "erp", "serve", "--data-dir", str(data_dir),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _client(port: int) -> TrytonClient:
    user = demo_data.INTEGRATION_USER
    return TrytonClient(f"http://127.0.0.1:{port}", "main", user["login"], user["password"])


def _wait_login(proc: subprocess.Popen[str], port: int, timeout: float = 180) -> TrytonClient:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        client = _client(port)
        try:
            client.login()
            return client
        except Exception:
            client.close()
            time.sleep(0.5)
    raise AssertionError("Tryton did not answer a login")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_erp_serve_runs_the_demo_tryton_on_its_port_and_keeps_its_database(tryton_ready: Any,
                                                                           tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "erp"
    proc = _serve(data_dir, port)
    client = _wait_login(proc, port)
    try:
        parties = client.call("party.party", "search_read", [["name", "=", "Tryton serve probe"]], 0, None, None,
                              ["name"])
        assert parties == []
        client.call("party.party", "create", [{"name": "Tryton serve probe"}])
    finally:
        client.close()
    code, err = _stop(proc)
    assert code == 0, err[-2000:]
    assert f"at http://127.0.0.1:{port}" in err and "bundled for the demo and trials" in err
    assert "development server" in err and "Tryton stopped" in err
    assert (data_dir / "main.sqlite").is_file()

    again = _serve(data_dir, port)  # a restart serves what the ERP holds
    client = _wait_login(again, port)
    try:
        found = client.call("party.party", "search_read", [["name", "=", "Tryton serve probe"]], 0, None, None,
                            ["name"])
        assert [p["name"] for p in found] == ["Tryton serve probe"]
    finally:
        client.close()
        code, err = _stop(again)
    assert code == 0 and "making" not in err  # the database was kept, not made again


def test_erp_serve_refuses_an_unknown_backend_with_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "ordersync.cli", "erp", "serve", "--db", "oracle"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "--db must be sqlite or postgresql, not 'oracle'"
