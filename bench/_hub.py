"""Benchmarks' server processes: ``ordersync serve`` (API + worker, SQLite) in front of a Tryton server, and
any other server that answers ``/health``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import TrytonServer, free_port
from ordersync.store.db import Database, sqlite_url


def start_hub(server: TrytonServer, root: Path, *, erp_settings: str = "", name: str = "hub",
              serve_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], int, Database]:
    """``erp_settings``: more lines for the ``[[erp]]`` block (TOML); ``serve_args``: more options of
    ``ordersync serve`` (``--workers 2``)."""
    data_dir = root / name
    data_dir.mkdir()
    user = demo_data.INTEGRATION_USER
    (data_dir / "ordersync.toml").write_text(
        f'[[erp]]\nname = "main"\nkind = "tryton"\nurl = "{server.url}"\ndatabase = "{server.databases[0]}"\n'
        f'login = "{user["login"]}"\npassword = "{user["password"]}"\n{erp_settings}')
    db = Database(sqlite_url(data_dir))
    db.migrate()
    port = free_port()
    hub = start_server([sys.executable, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir),
                        "--port", str(port), *serve_args], port, root / f"{name}.log")
    return hub, port, db


def start_server(argv: list[str], port: int, log: Path, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[bytes]:
    """Start a server process (stderr to ``log``) and wait until ``/health`` on ``port`` answers 200."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"{' '.join(argv[:5])} did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.1)


def stop_hub(hub: subprocess.Popen[bytes]) -> None:
    """Ask the hub to stop as Ctrl-C does; kill it if it has not within 30 s."""
    hub.send_signal(signal.SIGINT)
    try:
        hub.wait(timeout=30)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait()
