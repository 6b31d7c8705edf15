"""``ordersync doctor``'s judgements, without services: what each finding says, and the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nats.js.api import StreamInfo

from ordersync.config import ErpSettings, Settings
from ordersync.doctor import Status, diagnose, exit_code
from ordersync.doctor.bus import expected_streams, judge_cluster, judge_server, judge_streams, judge_sync, parse_version
from ordersync.doctor.checks import fail, ok, warn
from ordersync.doctor.environment import check_secrets
from ordersync.doctor.erp import check_erps
from ordersync.doctor.store import check_store
from ordersync.store.db import Database
from ordersync.store.migrate import alembic_config, upgrade


def info(version: str, jetstream: bool = True) -> dict[str, Any]:
    return {"version": version, "server_name": "n0", "jetstream": jetstream}


def test_exit_code_is_two_on_a_failure_one_on_warnings_only_zero_when_all_is_well() -> None:
    good, meh, bad = ok("a", "fine"), warn("a", "hm", "do x"), fail("a", "broken", "do y")
    assert (exit_code([good]), exit_code([good, meh]), exit_code([meh, bad, good])) == (0, 1, 2)
    assert bad.line() == "✗ a: broken — do y" and good.line() == "✓ a: fine"


def test_versions_are_read_with_or_without_a_leading_v() -> None:
    assert parse_version("2.10.23") == (2, 10, 23) and parse_version("v2.9.10-beta") == (2, 9, 10)
    assert parse_version("garbage") is None


def test_a_server_older_than_2_10_fails_and_says_why() -> None:
    check = judge_server("nats://h:4222", info("2.9.10"))
    assert check.status is Status.FAIL
    assert "2.9.10" in check.message and "too old" in check.message and "several subjects" in check.message


def test_a_2_10_release_before_the_stream_loss_fix_warns() -> None:
    check = judge_server("nats://h:4222", info("2.10.22"))
    assert check.status is Status.WARN and "2.10.23" in check.message


def test_a_current_server_without_jetstream_fails() -> None:
    assert judge_server("nats://h:4222", info("2.15.1")).status is Status.OK
    off = judge_server("nats://h:4222", info("2.15.1", jetstream=False))
    assert off.status is Status.FAIL and "JetStream off" in off.message


def test_sync_interval_default_warns_naming_the_risk_and_always_is_fine() -> None:
    default = judge_sync("n0", {"sync_interval": 120_000_000_000, "max_memory": 1})
    assert default.status is Status.WARN
    assert "120 s (the default)" in default.message and "acknowledged messages" in default.message
    assert "sync_interval: always" in default.fix
    assert judge_sync("n0", {"sync_interval": 120_000_000_000, "sync_always": True}).status is Status.OK
    assert judge_sync("n0", None).status is Status.FAIL


def test_more_replicas_than_nodes_fails_one_replica_on_a_cluster_warns() -> None:
    too_many = judge_cluster(1, 3, "from /jsz")
    assert too_many.status is Status.FAIL and "replicas = 3" in too_many.message and "1 node" in too_many.message
    assert judge_cluster(3, 1, "x").status is Status.WARN
    assert judge_cluster(3, 3, "x").status is Status.OK
    assert judge_cluster(None, 3, "x").status is Status.WARN


def stream(name: str, replicas: int, *, storage: str = "file", leader: str | None = "n0",
           offline: tuple[str, ...] = ()) -> StreamInfo:
    peers = [{"name": p, "current": False, "offline": True} for p in offline]
    return StreamInfo.from_response({
        "config": {"name": name, "num_replicas": replicas, "storage": storage, "subjects": [f"{name}.>"]},
        "state": {"messages": 0, "bytes": 0, "first_seq": 0, "last_seq": 0, "consumer_count": 0},
        "cluster": {"name": "c", "leader": leader, "replicas": peers},
    })


def test_streams_are_judged_against_the_configuration() -> None:
    names = expected_streams("ordersync")
    assert "ORDERSYNC_ORDER" in names and names[-1] == "ORDERSYNC_REPAIR"
    healthy = judge_streams({n: stream(n, 3) for n in names}, 3)
    assert [c.status for c in healthy] == [Status.OK] and f"{len(names)} streams with R3" in healthy[0].message
    nothing = judge_streams(dict.fromkeys(names), 3)
    assert [c.status for c in nothing] == [Status.OK] and "no streams yet" in nothing[0].message

    lowered = judge_streams({**{n: stream(n, 3) for n in names}, "ORDERSYNC_ORDER": stream("ORDERSYNC_ORDER", 1)}, 3)
    assert [(c.status, "ORDERSYNC_ORDER has 1 replica(s)" in c.message) for c in lowered] == [(Status.FAIL, True)]
    leaderless = judge_streams({names[0]: stream(names[0], 3, leader=None, offline=("n1", "n2"))}, 3)
    assert {c.status for c in leaderless} == {Status.FAIL, Status.WARN}
    assert any("no leader" in c.message for c in leaderless) and any("n1, n2" in c.message for c in leaderless)
    memory = judge_streams({names[0]: stream(names[0], 3, storage="memory")}, 3)
    assert [c.status for c in memory] == [Status.FAIL] and "memory" in memory[0].message


def test_expected_streams_are_the_names_the_transport_gives() -> None:
    from ordersync.messaging.nats import NatsTransport

    transport = NatsTransport(None, ["nats://127.0.0.1:1"], prefix="acme")  # type: ignore[arg-type]
    try:
        from ordersync.domain.events import MESSAGE_TYPES
        from ordersync.messaging.nats import family_of

        families = sorted({family_of(t) for t in MESSAGE_TYPES})
        assert expected_streams("acme") == [*(transport.stream_name(f) for f in families), transport.repair_stream]
    finally:
        transport.close()


def test_a_missing_erp_password_variable_is_one_failure_naming_it() -> None:
    settings = Settings(erp=[ErpSettings(name="main", url="http://erp:8000", database="main",
                                         password_env="ERP_MAIN_PASSWORD"),
                             ErpSettings(name="twin", kind="memory")])
    checks = check_erps(settings, env={})
    assert [c.status for c in checks] == [Status.FAIL, Status.OK]
    assert "ERP_MAIN_PASSWORD" in checks[0].message and "main" in checks[0].message


def test_missing_secrets_of_shops_sign_in_and_the_warehouse_are_named(tmp_path: Path) -> None:
    secret = tmp_path / "wms.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    settings = Settings.model_validate({
        "wms": {"secret_file": str(secret)},
        "shopify": {"shops": [{"name": "eu", "domain": "eu.myshopify.com", "token_env": "SHOP_EU_TOKEN",
                               "secret_env": "SHOP_EU_SECRET"}]},
        "web": {"oidc": {"issuer": "https://id.example", "client_id": "hub", "client_secret_env": "OIDC_SECRET"}},
    })
    checks = check_secrets(settings, env={"SHOP_EU_SECRET": "x"})
    assert [(c.status, c.message.split(":")[0]) for c in checks] == [
        (Status.WARN, f"[wms] secret_file {secret} is readable by others"),
        (Status.FAIL, "Shopify shop eu access token"), (Status.OK, "Shopify shop eu webhook secret"),
        (Status.FAIL, "[web.oidc] client secret")]
    assert "SHOP_EU_TOKEN" in checks[1].message and "OIDC_SECRET" in checks[3].message
    secret.chmod(0o600)
    assert check_secrets(settings, env={"SHOP_EU_SECRET": "x", "SHOP_EU_TOKEN": "t", "OIDC_SECRET": "o"})[0].status \
        is Status.OK


def test_a_configuration_that_does_not_parse_is_the_one_finding(tmp_path: Path) -> None:
    bad = tmp_path / "ordersync.toml"
    bad.write_text("[nats]\nreplicas = 9\n")
    (check,) = diagnose(config_file=bad, env={})
    assert check.status is Status.FAIL and check.area == "config" and "nats.replicas" in check.message


def test_a_store_behind_the_code_or_not_there_says_run_init(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    (missing,) = check_store(settings)
    assert missing.status is Status.FAIL and "ordersync init" in missing.fix
    assert not (tmp_path / "ordersync.db").exists()

    db = Database(settings.store_url)
    from alembic.script import ScriptDirectory

    first = ScriptDirectory.from_config(alembic_config(db)).get_base()
    assert first is not None
    upgrade(db, first)
    (behind,) = check_store(settings)
    assert behind.status is Status.FAIL and f"at migration {first}" in behind.message and "ordersync init" in behind.fix
    db.migrate()
    db.dispose()
    (fine,) = check_store(settings)
    assert fine.status is Status.OK and "migrations at head" in fine.message


def test_a_nats_bus_on_sqlite_is_refused(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path).store_url)
    db.migrate()
    db.dispose()
    (check,) = check_store(Settings(data_dir=tmp_path, bus="nats://127.0.0.1:4222"))
    assert check.status is Status.FAIL and "postgresql" in check.fix


def test_the_command_line_says_in_one_line_what_cannot_be_reached() -> None:
    import nats.errors
    from sqlalchemy.exc import OperationalError

    from ordersync.adapters.erp.tryton.rpc import TrytonUnavailable
    from ordersync.cli import unreachable

    store = OperationalError("SELECT 1", {}, Exception('connection to server at "db", port 1 failed\nDETAIL: x'))
    assert unreachable(store) == ('the store\'s database cannot be used: connection to server at "db", port 1 failed '
                                  "(check --store / store, and that the database server runs; `ordersync doctor` "
                                  "checks everything)")
    said = unreachable(nats.errors.NoServersError())
    assert said is not None and said.startswith("NATS: nats: no servers available for connection")
    erp = unreachable(TrytonUnavailable("connect to http://erp:8000 failed"))
    assert erp is not None and erp.startswith("the ERP does not answer: connect to http://erp:8000 failed")
    assert unreachable(KeyError("a bug")) is None  # anything else keeps its traceback


def test_an_unreadable_erp_password_file_is_one_failure_naming_it(tmp_path: Path) -> None:
    settings = Settings(erp=[ErpSettings(name="main", url="http://erp:8000", database="main",
                                         password_file=tmp_path / "missing")])
    (check,) = check_erps(settings, env={})
    assert check.status is Status.FAIL and str(tmp_path / "missing") in check.message
