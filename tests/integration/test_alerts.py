"""Alerts end to end against real receivers started here: an SMTP server (aiosmtpd on 127.0.0.1, a free
port) and an HTTP server standing in for a Slack incoming webhook. An overdue case and an SLA breach each
tell the right team once, per level; a failing receiver is retried with backoff and the failure shows in
``/metrics`` and in the record; ``ordersync alerts test`` sends through the configured channels."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from typer.testing import CliRunner

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.cli import app as cli_app
from ordersync.config import AlertRouteSettings, AlertSettings, CaseSettings, SlaSettings, SmtpSettings
from ordersync.domain.clock import FakeClock
from ordersync.runtime.alerts import status
from ordersync.server import create_app
from ordersync.store.schema import alert_notifications, order_transitions
from tests.support.hub import erp_hub, order, place, settle
from tests.support.people import PASSWORD, staff
from tests.support.receivers import Hook, Mailbox, free_port, smtp_server, webhook_receiver

ESCALATION = {"finance": ["finance-lead"], "integration": ["integration-lead"]}


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
def hook() -> Iterator[Hook]:
    with webhook_receiver() as found:
        yield found


# -- the hub ------------------------------------------------------------------------------------------------

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


def alert_settings(hook: Hook, smtp_port: int, **extra: Any) -> AlertSettings:
    return AlertSettings(
        public_base_url="https://hub.example.com",
        route=[AlertRouteSettings(team="finance-lead", webhook_url=hook.url,
                                  emails=["lead@example.com", "cfo@example.com"]),
               AlertRouteSettings(team="integration", webhook_url=hook.url),
               AlertRouteSettings(team="integration-lead", emails=["it-lead@example.com"])],
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, starttls=False, from_address="ordersync@example.com"),
        **extra)


def make_hub(tmp_path: Path, clock: FakeClock, alerts: AlertSettings, store: str | None = None) -> Any:
    erp = MemoryErp("main", name="main", clock=clock.now)
    return erp_hub(tmp_path, {"main": erp}, clock=clock, store=store, cases=CaseSettings(escalation=ESCALATION),
                   sla=SlaSettings(ack_seconds=300), alerts=alerts)


def rows(hub: Any) -> list[Any]:
    n = alert_notifications.c
    with hub.db.read() as conn:
        return list(conn.execute(select(n.key, n.channel, n.team, n.state, n.attempts, n.failures, n.last_error)
                                 .order_by(n.key, n.channel)))


def scrape(hub: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = TestClient(create_app(hub)).get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def overview(hub: Any) -> str:
    """The /ops overview page as a signed-in operator sees it."""
    client = TestClient(create_app(hub))
    email = staff(hub, "operations", name="Olga Ops")
    r = client.post("/ops/signin", data={"email": email, "password": PASSWORD, "next": "/ops"})
    assert r.status_code == 200, r.text
    return html.unescape(r.text)


# -- overdue cases ------------------------------------------------------------------------------------------

def test_an_overdue_case_escalates_and_tells_the_next_team_once_by_webhook_and_email(
        tmp_path: Path, clock: FakeClock, hook: Hook, smtp: tuple[Mailbox, int], store_url: str) -> None:
    box, port = smtp
    hub = make_hub(tmp_path, clock, alert_settings(hook, port), store_url)
    try:
        receipt = place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8)))  # a credit hold: finance, due in 4 h
        settle(hub)
        with hub.uow() as uow:
            [case] = uow.cases.open_for_order(receipt.order_id)
        clock.advance(3600)
        settle(hub)
        assert hook.bodies == [] and box.messages == []  # not due yet: nobody is told
        clock.advance(3 * 3600 + 1)
        settle(hub)  # the worker's periodic jobs: escalation, then alerts
        with hub.uow() as uow:
            assert (uow.cases.get(case.id).owner_team, uow.cases.get(case.id).owner_level) == ("finance-lead", 2)
        [body] = hook.bodies
        assert body["text"].startswith("Case escalated to finance-lead (level 2): credit hold")
        assert f"<https://hub.example.com/ops/cases/{case.id}|Open in ordersync>" in json.dumps(body["blocks"])
        [(to, mail)] = box.messages
        assert to == ["lead@example.com", "cfo@example.com"] and mail["From"] == "ordersync@example.com"
        assert mail["Subject"] == "[ordersync] Case escalated to finance-lead (level 2): credit hold"
        assert f"Open it: https://hub.example.com/ops/cases/{case.id}" in mail.get_content()
        for _ in range(3):  # later checks, and a restart over the same store, send nothing again
            clock.advance(60)
            settle(hub)
        hub.close()
        hub = make_hub(tmp_path, clock, alert_settings(hook, port), store_url)
        assert hub.alerts.run() == 0
        assert (len(hook.bodies), len(box.messages)) == (1, 1)
        assert [(r.key, r.channel, r.team, r.state, r.attempts) for r in rows(hub)] == [
            (f"case:{case.id}:2", "email", "finance-lead", "sent", 1),
            (f"case:{case.id}:2", "webhook", "finance-lead", "sent", 1)]
        clock.advance(4 * 3600 + 1)  # nobody acted: level 3 (the chain has ended, finance-lead keeps it)
        settle(hub)
        assert [b["text"].split(":")[0] for b in hook.bodies] == ["Case escalated to finance-lead (level 2)",
                                                                 "Case escalated to finance-lead (level 3)"]
        m = scrape(hub)
        assert m[("ordersync_alert_notifications", (("channel", "email"), ("state", "sent")))] == 2
        assert m[("ordersync_alert_notifications", (("channel", "webhook"), ("state", "sent")))] == 2
        assert m[("ordersync_alert_send_failures_total", (("channel", "webhook"),))] == 0
    finally:
        hub.close()


# -- SLA breaches -------------------------------------------------------------------------------------------

def test_an_sla_breach_tells_the_clock_team_then_its_escalation_once_per_level(
        tmp_path: Path, clock: FakeClock, hook: Hook, smtp: tuple[Mailbox, int], store_url: str) -> None:
    box, port = smtp
    hub = make_hub(tmp_path, clock, alert_settings(hook, port), store_url)
    try:
        receipt = place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))  # received, never sent on
        with hub.db.read() as conn:
            assert conn.execute(select(order_transitions.c.to_state)
                                .where(order_transitions.c.order_id == receipt.order_id)).scalars().all() == \
                ["received"]
        clock.advance(299)
        assert hub.alerts.run() == 0
        clock.advance(2)  # 301 s: over the 300 s acknowledgment threshold
        hub.alerts.run()
        [body] = hook.bodies
        assert body["text"].startswith(f"SLA breach, acknowledgment (level 1): order {receipt.order_id}")
        assert f"https://hub.example.com/ops/orders/{receipt.order_id}" in body["text"]
        assert box.messages == []  # integration has a webhook only
        for _ in range(3):
            clock.advance(60)
            hub.alerts.run()
        assert len(hook.bodies) == 1  # once per level, not on every check
        clock.advance(200)  # 601 s: two thresholds, the next team of integration's chain
        hub.alerts.run()
        [(to, mail)] = box.messages
        assert to == ["it-lead@example.com"]
        assert mail["Subject"].startswith(f"[ordersync] SLA breach, acknowledgment (level 2): order {receipt.order_id}")
        clock.advance(3600)  # the chain is two teams long: no third level
        hub.alerts.run()
        assert (len(hook.bodies), len(box.messages)) == (1, 1)
        assert [(r.key, r.team, r.state) for r in rows(hub)] == [
            (f"sla:{receipt.order_id}:acknowledgment:1", "integration", "sent"),
            (f"sla:{receipt.order_id}:acknowledgment:2", "integration-lead", "sent")]
        settle(hub)  # the order reaches the ERP: its clock stops, nothing more is said
        clock.advance(86400)
        hub.alerts.run()
        assert (len(hook.bodies), len(box.messages)) == (1, 1)
    finally:
        hub.close()


def test_many_breaches_at_once_reach_each_team_as_one_digest(tmp_path: Path, clock: FakeClock, hook: Hook,
                                                              smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    hub = make_hub(tmp_path, clock, alert_settings(hook, port))  # digest_over: 5
    try:
        ids = [place(hub, order("C-1001", ("BRG-6204-2RS", 1), ship_to="RIS-DUS", external=f"PO-{i}")).order_id
               for i in range(8)]  # the ERP is not reached: every clock runs
        clock.advance(301)
        hub.alerts.run()
        [body] = hook.bodies
        assert body["text"].startswith("8 SLA breaches for integration (level 1)")
        assert all(order_id in body["text"] for order_id in ids)
        by_state = sorted((r.channel, r.state) for r in rows(hub))
        assert by_state == [("digest", "grouped")] * 8 + [("webhook", "sent")]
        clock.advance(60)
        hub.alerts.run()
        assert len(hook.bodies) == 1  # each order was told, within the digest: never again on its own
        place(hub, order("C-1001", ("BRG-6204-2RS", 1), ship_to="RIS-DUS", external="PO-late"))
        clock.advance(301)  # the eight reach level 2 (a digest by mail), the late one level 1 on its own
        hub.alerts.run()
        assert hook.bodies[1]["text"].startswith("SLA breach, acknowledgment (level 1): order ")
        [(to, mail)] = box.messages
        assert to == ["it-lead@example.com"] and mail["Subject"] == \
            "[ordersync] 8 SLA breaches for integration-lead (level 2)"
        m = scrape(hub)
        assert m[("ordersync_alert_notifications", (("channel", "digest"), ("state", "grouped")))] == 16
        assert 'id="alerts-unsent" data-count="0"' in overview(hub)
    finally:
        hub.close()


# -- failures ----------------------------------------------------------------------------------------------

def test_a_failing_receiver_is_retried_with_backoff_and_the_failure_shows(
        tmp_path: Path, clock: FakeClock, hook: Hook, smtp: tuple[Mailbox, int]) -> None:
    _, port = smtp
    hook.failing = 2
    hub = make_hub(tmp_path, clock, alert_settings(hook, port, base_seconds=30, cap_seconds=600))
    try:
        receipt = place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        clock.advance(301)
        hub.alerts.run()
        [row] = rows(hub)
        assert (row.state, row.attempts, row.failures) == ("pending", 1, 1)
        assert row.last_error.startswith("POST 127.0.0.1:") and "HTTP 500 no_service" in row.last_error
        assert "secret" not in row.last_error  # the webhook's path is its secret: never recorded
        hub.alerts.run()
        assert len(hook.bodies) == 1  # the backoff has not passed: no second attempt yet
        m = scrape(hub)
        assert m[("ordersync_alert_send_failures_total", (("channel", "webhook"),))] == 1
        page = overview(hub)
        assert 'id="alerts-unsent" data-count="1"' in page
        assert "last error: integration (webhook): POST 127.0.0.1:" in page and "HTTP 500 no_service" in page
        assert m[("ordersync_alert_notifications", (("channel", "webhook"), ("state", "pending")))] == 1
        assert m[("ordersync_alert_oldest_pending_seconds", ())] == 0
        clock.advance(31)  # past the first backoff (30 s at most): it fails again, the wait doubles
        hub.alerts.run()
        assert len(hook.bodies) == 2 and rows(hub)[0].attempts == 2
        clock.advance(61)
        hub.alerts.run()
        [row] = rows(hub)
        assert (row.state, row.attempts, row.failures, row.last_error) == ("sent", 3, 2, None)
        assert hook.bodies[0] == hook.bodies[2]  # the same message each time
        assert f"order {receipt.order_id}" in hook.bodies[2]["text"]
        assert 'id="alerts-unsent" data-count="0"' in overview(hub) and "all sent" in overview(hub)
        assert scrape(hub)[("ordersync_alert_send_failures_total", (("channel", "webhook"),))] == 2
    finally:
        hub.close()


def test_an_unreachable_mail_server_is_given_up_after_max_attempts_and_never_stops_the_job(
        tmp_path: Path, clock: FakeClock, hook: Hook) -> None:
    closed = free_port()  # nothing listens there
    hub = make_hub(tmp_path, clock, alert_settings(hook, closed, max_attempts=2, base_seconds=1, cap_seconds=1))
    try:
        place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        clock.advance(601)  # both levels at once: integration (webhook) and integration-lead (e-mail)
        hub.alerts.run()
        clock.advance(2)
        settle(hub)  # the periodic job runs in the worker: a failing server is the row's, not the worker's
        by_team = {r.team: r for r in rows(hub)}
        assert by_team["integration"].state == "sent"
        lead = by_team["integration-lead"]
        assert (lead.channel, lead.state, lead.attempts) == ("email", "failed", 2)
        assert lead.last_error.startswith(f"SMTP 127.0.0.1:{closed}: ConnectionRefusedError")
        [shown] = status(hub.db, unsent_only=True)
        assert (shown.team, shown.state, shown.last_error) == ("integration-lead", "failed", lead.last_error)
        clock.advance(3600)
        hub.alerts.run()
        assert rows(hub)[1].attempts == 2  # given up: not tried again
        assert scrape(hub)[("ordersync_alert_notifications", (("channel", "email"), ("state", "failed")))] == 1
    finally:
        hub.close()


def test_a_team_without_a_route_is_recorded_as_failed_with_the_reason(tmp_path: Path, clock: FakeClock,
                                                                      hook: Hook) -> None:
    hub = make_hub(tmp_path, clock, AlertSettings(route=[AlertRouteSettings(team="finance", webhook_url=hook.url)]))
    try:
        place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        clock.advance(301)
        hub.alerts.run()
        [row] = rows(hub)
        assert (row.channel, row.team, row.state) == ("none", "integration", "failed")
        assert row.last_error == 'no [[alerts.route]] for team integration (and no team = "*")'
        assert scrape(hub)[("ordersync_alert_notifications", (("channel", "none"), ("state", "failed")))] == 1
        assert hook.bodies == []
    finally:
        hub.close()


def test_without_any_route_alerts_are_off(tmp_path: Path, clock: FakeClock) -> None:
    hub = make_hub(tmp_path, clock, AlertSettings())
    try:
        place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        clock.advance(3600)
        hub.worker.run_once()  # the periodic jobs run first in a round, before the order moves on
        assert rows(hub) == []
        hub.alerts.run()  # called by hand, the job would have found the breach: no route for it
        assert sorted((r.team, r.channel, r.state) for r in rows(hub)) == [
            ("integration", "none", "failed"), ("integration-lead", "none", "failed")]
    finally:
        hub.close()


# -- ordersync alerts test --------------------------------------------------------------------------------

def test_the_cli_sends_a_test_through_the_teams_channels_and_says_what_happened(
        tmp_path: Path, hook: Hook, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    config = tmp_path / "ordersync.toml"
    config.write_text(f"""
[alerts]
public_base_url = "https://hub.example.com"
[[alerts.route]]
team = "finance"
webhook_url = "{hook.url}"
emails = ["finance@example.com"]
[alerts.smtp]
host = "127.0.0.1"
port = {port}
starttls = false
from_address = "ordersync@example.com"
""")
    args = ["alerts", "test", "--data-dir", str(tmp_path / "d"), "--config", str(config)]
    r = CliRunner().invoke(cli_app, [*args, "--team", "finance"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("webhook: sent: POST 127.0.0.1:") and lines[0].endswith(": 200")
    assert lines[1] == f"email: sent: SMTP 127.0.0.1:{port}: mailed finance@example.com"
    assert hook.bodies[0]["text"].startswith("ordersync test alert for team finance")
    [(to, mail)] = box.messages
    assert to == ["finance@example.com"] and mail["Subject"] == "[ordersync] ordersync test alert for team finance"
    r = CliRunner().invoke(cli_app, [*args, "--team", "sales"])
    assert r.exit_code == 1
    assert r.stdout.strip() == 'none: FAILED: no [[alerts.route]] for team sales (and no team = "*")'
    hook.failing = 1
    r = CliRunner().invoke(cli_app, [*args, "--team", "finance", "--json"])
    assert r.exit_code == 1
    assert [(x["channel"], x["sent"]) for x in json.loads(r.stdout)] == [("webhook", False), ("email", True)]
    r = CliRunner().invoke(cli_app, ["alerts", "status", "--json", "--data-dir", str(tmp_path / "d"),
                                     "--config", str(config)])
    assert r.exit_code == 0 and json.loads(r.stdout) == []  # a test is sent, never recorded
