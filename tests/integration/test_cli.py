"""The ``ordersync`` command line, end to end on an embedded store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ordersync.bootstrap import build_hub
from ordersync.cli import app
from ordersync.config import Settings
from ordersync.flows.handlers.counters import COUNTERS

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def park_malformed(data_dir: Path, bodies: list[str]) -> None:
    hub = build_hub(Settings(data_dir=data_dir))
    with hub.db.write() as conn:
        for body in bodies:
            hub.transport.redeliver(conn, COUNTERS, body, None, None, None, hub.clock.now())
    hub.close()


def test_version_names_the_canonical_model() -> None:
    assert "canonical model v1" in invoke("version")


def test_init_creates_then_reports_up_to_date(tmp_path: Path) -> None:
    first = invoke("init", "--data-dir", str(tmp_path))
    assert "upgraded from empty" in first
    assert (tmp_path / "ordersync.db").exists()
    assert "up to date" in invoke("init", "--data-dir", str(tmp_path))


def test_dead_letters_can_be_listed_shown_previewed_and_replayed(tmp_path: Path) -> None:
    park_malformed(tmp_path, ['{"broken', '{"type": "order.state_changed", "occurred_at": "2026-01-05T09:00:00Z",'
                                           ' "correlation_id": "order-77", "payload": {"order_id": 1}}'])
    assert "drained" in invoke("worker", "--data-dir", str(tmp_path), "--drain")

    listed = json.loads(invoke("dlq", "list", "--data-dir", str(tmp_path), "--json"))
    assert sorted(x["reason"] for x in listed) == ["malformed", "schema_violation"]
    schema_bad = next(x for x in listed if x["reason"] == "schema_violation")
    assert schema_bad["correlation_id"] == "order-77"

    shown = invoke("dlq", "show", schema_bad["id"], "--data-dir", str(tmp_path))
    assert "order.state_changed payload" in shown and "attempt 1" in shown and "order-77" in shown

    preview = invoke("dlq", "replay", "--all", "--dry-run", "--data-dir", str(tmp_path))
    assert "would replay 2 dead letter(s); nothing was changed" in preview
    assert "would fail again at once (malformed)" in preview
    assert len(json.loads(invoke("dlq", "list", "--data-dir", str(tmp_path), "--json"))) == 2

    replayed = invoke("dlq", "replay", schema_bad["id"], "--data-dir", str(tmp_path))
    assert "replayed 1 dead letter(s)" in replayed
    replayed_list = json.loads(invoke("dlq", "list", "--status", "replayed", "--data-dir", str(tmp_path), "--json"))
    assert [x["id"] for x in replayed_list] == [schema_bad["id"]]
    invoke("worker", "--data-dir", str(tmp_path), "--drain")  # fails again: a new dead letter, same reason
    again = json.loads(invoke("dlq", "list", "--reason", "schema_violation", "--data-dir", str(tmp_path), "--json"))
    assert len(again) == 1 and again[0]["id"] != schema_bad["id"]


def test_replay_without_ids_or_filters_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dlq", "replay", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "give a filter, or pass --all" in result.output


def test_errors_are_one_clear_line_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "conf" / "ordersync.toml"
    bad.parent.mkdir()
    bad.write_text('bus = "kafka://nowhere"\n[worker]\npoll_interval = -1\n')
    proc = subprocess.run([sys.executable, "-m", "ordersync.cli", "init", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "configuration error" in proc.stderr and "worker.poll_interval" in proc.stderr and "bus" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ordersync.cli", "dlq", "show", "nope", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "dead letter nope not found" in proc.stderr and "Traceback" not in proc.stderr


def test_edi_receive_list_and_show_an_interchange_from_a_file(tmp_path: Path) -> None:
    from tests.support.samples import samples_dir

    sample = samples_dir() / "x12" / "nodex12_850.edi"
    (tmp_path / "ordersync.toml").write_text(
        '[[erp]]\nname = "main"\nkind = "memory"\n\n'
        '[[edi.partners]]\nname = "xyz-retail"\ninterchange_qualifier = "12"\ninterchange_id = "4405197800"\n'
        'account_id = "C-1001"\nship_to = { "0003947268292" = "C-1001-SOLON" }\n')
    first = json.loads(invoke("edi", "receive", str(sample), "--data-dir", str(tmp_path), "--json"))
    assert (first["state"], first["partner"]) == ("processed", "xyz-retail") and first["orders"][0]["order_id"]
    again = invoke("edi", "receive", str(sample), "--data-dir", str(tmp_path))
    assert "duplicate (partner xyz-retail)" in again and "case " in again
    listed = json.loads(invoke("edi", "list", "--data-dir", str(tmp_path), "--json"))
    assert sorted((r["direction"], r["state"]) for r in listed) == [("in", "duplicate"), ("in", "processed"),
                                                                    ("out", "queued"), ("out", "queued")]
    raw = runner.invoke(app, ["edi", "show", first["interchange_id"], "--raw", "--data-dir", str(tmp_path)])
    assert raw.exit_code == 0 and raw.stdout_bytes == sample.read_bytes()
    missing = runner.invoke(app, ["edi", "show", "nope", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no interchange nope" in missing.output


def test_edi_send_partners_and_resend_over_a_directory(tmp_path: Path) -> None:
    from tests.support.samples import samples_dir

    outbox = tmp_path / "to-partner"
    (tmp_path / "ordersync.toml").write_text(
        '[[erp]]\nname = "main"\nkind = "memory"\n\n'
        '[[edi.partners]]\nname = "xyz-retail"\ninterchange_qualifier = "12"\ninterchange_id = "4405197800"\n'
        f'account_id = "C-1001"\ntransport = "directory"\noutbox_dir = "{outbox}"\n'
        'ship_to = { "0003947268292" = "C-1001-SOLON" }\n')
    received = json.loads(invoke("edi", "receive", str(samples_dir() / "x12" / "nodex12_850.edi"), "--data-dir",
                                 str(tmp_path), "--json"))
    assert received["state"] == "processed"
    assert "sent 2; 0 queued, 0 dead letter(s)" in invoke("edi", "send", "--data-dir", str(tmp_path))
    files = sorted(p.name for p in outbox.iterdir())  # named by control number: the 997, then the 855
    assert [f.split("-", 2)[2] for f in files] == ["000000001-997.edi", "000000002-855.edi"], files
    (partner,) = json.loads(invoke("edi", "partners", "--data-dir", str(tmp_path), "--json"))
    assert (partner["name"], partner["transport"], partner["received"], partner["written"], partner["sent"],
            partner["awaiting_ack"]) == ("xyz-retail", "directory", 1, 2, 2, 1)  # the 855 waits for the partner's 997
    listed = json.loads(invoke("edi", "list", "--data-dir", str(tmp_path), "--state", "sent", "--json"))
    ack = next(r for r in listed if r["document"] == "997")
    assert "queued again (was sent)" in invoke("edi", "resend", ack["id"], "--data-dir", str(tmp_path))
    assert "sent 1; 0 queued" in invoke("edi", "send", "--data-dir", str(tmp_path))
    assert len(list(outbox.iterdir())) == 3  # the same bytes again, under a name of its own
    refused = runner.invoke(app, ["edi", "resend", received["interchange_id"], "--data-dir", str(tmp_path)])
    assert refused.exit_code == 1 and "no outgoing interchange" in refused.output
