"""The command line as an operator's scripts see it: ``--version``, results on stdout and diagnostics on
stderr, one line (no traceback) when the store or the bus cannot be reached, and commands that never call
the ERP running without its password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ordersync import __version__
from ordersync.cli import app

PASSWORD_VAR = "ORDERSYNC_TEST_ERP_PASSWORD_NOT_SET"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    return subprocess.run([sys.executable, "-m", "ordersync.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_the_root_command_prints_its_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ordersync {__version__}"


def test_an_unreachable_store_is_one_line_on_stderr_and_a_non_zero_exit() -> None:
    proc = run_cli("init", "--store", "postgresql://u@127.0.0.1:1/x")
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("unreachable: the store's database cannot be used") and "port 1" in line, line


def test_an_unreachable_bus_is_one_line(tmp_path: Path, pg_url: str) -> None:
    config = tmp_path / "ordersync.toml"
    config.write_text(f'store = "{pg_url}"\nbus = "nats://127.0.0.1:1"\n\n[nats]\nconnect_timeout = 1\n\n'
                      '[[erp]]\nname = "main"\nkind = "memory"\n')
    proc = run_cli("worker", "--drain", "--config", str(config))
    # the worker's own log lines come first (its periodic jobs report the outage); the command ends with one
    # line saying what cannot be reached, not with a traceback
    assert proc.returncode == 1 and proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "unreachable: cannot connect to NATS nats://127.0.0.1:1: TimeoutError", last


def test_results_go_to_stdout_and_nothing_else_to_stderr(tmp_path: Path) -> None:
    init = run_cli("init", "--data-dir", str(tmp_path))
    assert "upgraded from empty to revision" in init.stdout and init.stderr == ""
    again = run_cli("init", "--data-dir", str(tmp_path))
    assert "is up to date" in again.stdout and again.stderr == ""
    pruned = run_cli("prune", "--dry-run", "--data-dir", str(tmp_path))
    assert pruned.stdout.startswith("would delete 0 outbox event(s)") and pruned.stderr == ""
    listed = run_cli("dlq", "list", "--data-dir", str(tmp_path))
    assert listed.stdout.strip() == "no dead letters match" and listed.stderr == ""


def test_commands_that_never_call_the_erp_run_without_its_password(tmp_path: Path) -> None:
    (tmp_path / "ordersync.toml").write_text(
        f'[[erp]]\nname = "main"\nurl = "http://127.0.0.1:1"\ndatabase = "main"\npassword_env = "{PASSWORD_VAR}"\n')
    assert PASSWORD_VAR not in os.environ
    for args in (["init"], ["dlq", "list", "--json"], ["dlq", "replay", "--all", "--dry-run"], ["prune"],
                 ["apikey", "list"], ["people", "list"], ["subscriptions", "list"]):
        proc = run_cli(*args, "--data-dir", str(tmp_path))
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert PASSWORD_VAR not in proc.stderr
    # a command that does call the ERP still says at once what is missing
    worker = run_cli("worker", "--drain", "--data-dir", str(tmp_path))
    assert worker.returncode == 2 and f"environment variable {PASSWORD_VAR} is not set" in worker.stderr
