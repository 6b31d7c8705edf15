"""Alerts without services: which level a breach has reached, which team is told, the words of the
webhook and the e-mail, and the configuration that says where."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ordersync.adapters.alerts import SmtpAlertSender, SmtpMailer
from ordersync.canonical.v1 import CaseType
from ordersync.config import load_settings
from ordersync.domain.alerts import (
    Alert,
    AlertKind,
    AlertPolicy,
    AlertRoute,
    Channel,
    breach_level,
    case_alert,
    digest,
    email_subject,
    email_text,
    sla_alerts,
    webhook_payload,
)
from ordersync.domain.cases import CasePolicy, escalate_case, open_case
from ordersync.domain.errors import ConfigError
from ordersync.domain.sla import ClockReading, SlaClock, SlaThresholds
from ordersync.runtime.alerts import decode, encode

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
LIMITS = SlaThresholds(acknowledgment=300, fulfillment=86400)
POLICY = AlertPolicy(
    routes={"integration": AlertRoute("integration", webhook_url="https://hooks.example.com/T/B/x"),
            "*": AlertRoute("*", emails=("oncall@example.com",))},
    escalation={"integration": ["integration-lead", "cto-office"]},
    public_base_url="https://hub.example.com/",
)


def ack(started_seconds_ago: float, **kw: object) -> ClockReading:
    return ClockReading(SlaClock.ACKNOWLEDGMENT, "O-1", NOW - dt.timedelta(seconds=started_seconds_ago), **kw)  # type: ignore[arg-type]


def test_a_clock_breaches_level_by_level_up_to_the_length_of_its_chain() -> None:
    assert [breach_level(ack(s), 300, NOW, 3) for s in (200, 300, 301, 599, 600, 899, 900, 5000)] == \
        [0, 0, 1, 1, 2, 2, 3, 3]
    assert breach_level(ack(5000), 300, NOW, 1) == 1


def test_stopped_untimed_and_held_time_do_not_breach() -> None:
    assert breach_level(ack(5000, stopped_at=NOW), 300, NOW, 3) == 0
    assert breach_level(ack(5000, precise=False), 300, NOW, 3) == 0
    held = ((NOW - dt.timedelta(seconds=4900), None),)  # on hold for all but the first 100 s: a person's time
    assert breach_level(ack(5000, paused=held), 300, NOW, 3) == 0


def test_sla_alerts_go_to_the_clock_team_then_up_its_escalation_chain_once_per_level() -> None:
    found = sla_alerts("O-1", "C-1001", ack(650), LIMITS, POLICY, NOW)
    assert [(a.key, a.team, a.level) for a in found] == [
        ("sla:O-1:acknowledgment:1", "integration", 1), ("sla:O-1:acknowledgment:2", "integration-lead", 2)]
    assert found[0].kind is AlertKind.SLA_BREACH and found[0].subject_id == "O-1"
    assert found[0].link == "https://hub.example.com/ops/orders/O-1"
    assert "10 min" in found[0].title and "5 min" in found[0].text and "C-1001" in found[0].text
    fulfillment = ClockReading(SlaClock.FULFILLMENT, "O-2", NOW - dt.timedelta(days=5))
    assert [(a.team, a.level) for a in sla_alerts("O-2", "C-1", fulfillment, LIMITS, POLICY, NOW)] == \
        [("operations", 1)]  # the default team of the clock, no chain: one level only


def test_an_escalated_case_alerts_its_new_owner_with_a_link_to_it() -> None:
    policy = CasePolicy(escalation={"finance": ["finance-lead"]})
    case = open_case(CaseType.CREDIT_HOLD, summary="Order over the credit limit", next_action="release or cancel",
                     now=NOW, policy=policy, order_id="O-9", account_id="C-1004")
    up = escalate_case(case, policy, now=NOW + dt.timedelta(hours=5), actor="ordersync", reason="not resolved")
    alert = case_alert(up, POLICY, NOW)
    assert (alert.key, alert.team, alert.level, alert.kind) == (f"case:{case.id}:2", "finance-lead", 2,
                                                                AlertKind.CASE_OVERDUE)
    assert alert.link == f"https://hub.example.com/ops/cases/{case.id}"
    assert "credit hold" in alert.title and "Order over the credit limit" in alert.text
    assert "release or cancel" in alert.text and "O-9" in alert.text and "not resolved" in alert.text
    assert case_alert(up, AlertPolicy(), NOW).link is None  # no public base URL: no link


def test_routes_fall_back_to_the_catch_all_team() -> None:
    assert POLICY.channels("integration") == (Channel.WEBHOOK,)
    assert POLICY.route("finance") == AlertRoute("*", emails=("oncall@example.com",))
    assert AlertPolicy().channels("finance") == ()
    both = AlertRoute("ops", webhook_url="https://h.example.com/x", emails=("a@example.com",))
    assert both.channels() == (Channel.WEBHOOK, Channel.EMAIL)


ALERT = Alert(key="case:abc:2", kind=AlertKind.CASE_OVERDUE, team="finance-lead", level=2,
              title="Case escalated to finance-lead (level 2): credit hold", text="Over the limit <& more>",
              link="https://hub.example.com/ops/cases/abc", subject_id="abc")


def test_the_webhook_body_is_slack_compatible_text_and_blocks() -> None:
    body = webhook_payload(ALERT)
    assert body["text"].startswith(ALERT.title) and ALERT.link in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert body["blocks"][1]["text"]["text"] == "Over the limit &lt;&amp; more&gt;"  # mrkdwn escaped
    assert body["blocks"][2]["text"]["text"] == f"<{ALERT.link}|Open in ordersync>"
    unlinked = webhook_payload(Alert(**{**vars(ALERT), "link": None}))
    assert [b["type"] for b in unlinked["blocks"]] == ["header", "section", "context"]


def test_the_email_names_the_alert_and_links_to_the_case() -> None:
    sender = SmtpAlertSender(SmtpMailer(host="mail.example.com", port=25, from_address="hub@example.com"))
    msg = sender.message(ALERT, AlertRoute("finance-lead", emails=("a@example.com", "b@example.com")))
    assert msg["To"] == "a@example.com, b@example.com" and msg["From"] == "hub@example.com"
    assert msg["Subject"] == email_subject(ALERT) == f"[ordersync] {ALERT.title}"
    assert msg["X-Ordersync-Alert"] == "case:abc:2"
    body = msg.get_content()
    assert body == email_text(ALERT) + "\n" and f"Open it: {ALERT.link}" in body and "<& more>" in body


def test_many_alerts_of_one_team_and_level_become_one_digest_listing_them() -> None:
    many = [a for i in range(25) for a in sla_alerts(f"O-{i}", "C-1", ack(400), LIMITS, POLICY, NOW)]
    summary = digest(many, POLICY, NOW)
    assert (summary.kind, summary.team, summary.level) == (AlertKind.SLA_BREACH, "integration", 1)
    assert summary.title == "25 SLA breaches for integration (level 1)"
    assert summary.key == f"digest:sla_breach:integration:1:{NOW.isoformat()}"
    lines = summary.text.splitlines()
    assert len(lines) == 21 and lines[-1] == "... and 5 more"
    assert lines[0] == f"- {many[0].title} (https://hub.example.com/ops/orders/O-0)"
    assert summary.link == "https://hub.example.com/ops/orders"


def test_an_alert_kept_with_its_record_comes_back_the_same() -> None:
    assert decode(encode(ALERT)) == ALERT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ordersync.toml"
    path.write_text(text)
    return path


def test_alert_configuration_is_read_per_team(tmp_path: Path) -> None:
    settings = load_settings(config_file=write(tmp_path, """
[alerts]
public_base_url = "https://hub.example.com"
sla_teams = { acknowledgment = "integration" }

[[alerts.route]]
team = "finance"
webhook_url = "https://hooks.example.com/services/x"
emails = ["finance@example.com"]

[[alerts.route]]
team = "operations"
webhook_url_env = "OPS_HOOK"

[alerts.smtp]
host = "smtp.example.com"
port = 2525
starttls = false
user = "hub"
password_env = "SMTP_PASSWORD"
from_address = "ordersync@example.com"
"""), env={})
    a = settings.alerts
    assert [r.team for r in a.route] == ["finance", "operations"] and a.smtp is not None
    assert (a.smtp.host, a.smtp.port, a.smtp.starttls) == ("smtp.example.com", 2525, False)
    assert a.route[1].webhook({"OPS_HOOK": "https://hooks.example.com/ops"}) == "https://hooks.example.com/ops"
    with pytest.raises(ConfigError, match="OPS_HOOK is not set"):
        a.route[1].webhook({})
    with pytest.raises(ConfigError, match="SMTP_PASSWORD is not set"):
        a.smtp.password({})


@pytest.mark.parametrize(("toml", "says"), [
    ('[[alerts.route]]\nteam = "finance"\nemails = ["f@example.com"]\n', "need an \\[alerts.smtp\\] server"),
    ('[[alerts.route]]\nteam = "finance"\n', "give webhook_url, webhook_url_env or emails"),
    ('[[alerts.route]]\nteam = "finance"\nwebhook_url = "ftp://x"\n', "alerts.route.0.webhook_url"),
    ('[alerts]\nsla_teams = { delivery = "ops" }\n', "unknown clock"),
    ('[[alerts.route]]\nteam = "a"\nwebhook_url = "https://x/1"\n[[alerts.route]]\nteam = "a"\n'
     'webhook_url = "https://x/2"\n', "one route per team"),
])
def test_bad_alert_configuration_fails_at_start_naming_the_field(tmp_path: Path, toml: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(config_file=write(tmp_path, toml), env={})
