"""Alerts: what deserves a person's attention, who is told, at which level, and the words they read.

Two things alert (DESIGN.md, decision 6: "breaches escalate"):

- **a case past its due time**: the overdue job escalates it one owner level up
  (:func:`ordersync.domain.cases.escalate_case`); the team that owns it at its new level is told, once
  per level (key ``case:<id>:<level>``).
- **an SLA breach**: a running clock of one order (acknowledgment, fulfillment) older than its threshold.
  It is level 1 once it has run one threshold, level *n* once it has run *n* thresholds; the team of
  level 1 is the clock's team (``[alerts] sla_teams``), the teams above it that team's escalation chain
  (``[cases] escalation``, the chain cases use). A breach climbs no higher than the chain is long, so
  a clock nobody stops alerts each team once (key ``sla:<order>:<clock>:<level>``), never on every check.

Channels are per team (:class:`AlertRoute`): a Slack-compatible incoming webhook and/or e-mail
addresses. Messages are built here (:func:`webhook_payload`, :func:`email_text`) so that the words are
the same whichever process sends them, and kept with the record of the alert, so a retry sends what the
first attempt would have.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ordersync.canonical.v1 import ExceptionCase
from ordersync.domain.sla import ClockReading, SlaClock, SlaThresholds

#: the route of every team that has none of its own
ANY_TEAM = "*"

DEFAULT_SLA_TEAMS: dict[SlaClock, str] = {
    SlaClock.ACKNOWLEDGMENT: "integration",
    SlaClock.FULFILLMENT: "operations",
    SlaClock.INVOICE_SYNC: "finance",
}


class AlertKind(StrEnum):
    CASE_OVERDUE = "case_overdue"
    SLA_BREACH = "sla_breach"
    TEST = "test"


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    #: no channel is configured for the team: recorded as a failure, so that it shows
    NONE = "none"


@dataclass(frozen=True)
class Alert:
    """One thing to tell one team. ``key`` is unique per thing and level: what makes it once only."""

    key: str
    kind: AlertKind
    team: str
    level: int
    title: str
    text: str
    #: the page in /ops that shows the subject (None without a public base URL)
    link: str | None = None
    subject_id: str = ""


@dataclass(frozen=True)
class AlertRoute:
    """Where one team is told: a webhook URL, e-mail addresses, or both."""

    team: str
    webhook_url: str | None = None
    emails: tuple[str, ...] = ()

    def channels(self) -> tuple[Channel, ...]:
        found = (Channel.WEBHOOK,) if self.webhook_url else ()
        return (*found, Channel.EMAIL) if self.emails else found


@dataclass(frozen=True)
class AlertPolicy:
    """Who is told about what (``[alerts]`` in the configuration, with ``[cases] escalation``)."""

    routes: Mapping[str, AlertRoute] = field(default_factory=dict)
    sla_teams: Mapping[SlaClock, str] = field(default_factory=lambda: dict(DEFAULT_SLA_TEAMS))
    escalation: Mapping[str, Sequence[str]] = field(default_factory=dict)
    public_base_url: str | None = None

    def route(self, team: str) -> AlertRoute | None:
        """The team's route, else the catch-all one (team ``*``), else None."""
        return self.routes.get(team) or self.routes.get(ANY_TEAM)

    def channels(self, team: str) -> tuple[Channel, ...]:
        route = self.route(team)
        return route.channels() if route else ()

    def sla_chain(self, clock: SlaClock) -> list[str]:
        team = self.sla_teams.get(clock, DEFAULT_SLA_TEAMS[clock])
        return [team, *self.escalation.get(team, [])]

    def link(self, path: str) -> str | None:
        return f"{self.public_base_url.rstrip('/')}{path}" if self.public_base_url else None


# -- what alerts --------------------------------------------------------------------------------------------

def case_alert(case: ExceptionCase, policy: AlertPolicy, now: dt.datetime) -> Alert:
    """The alert of an escalated case: its owner at its current level is told."""
    due = f"; due again {_when(case.due_at)}" if case.due_at else ""
    title = f"Case escalated to {case.owner_team} (level {case.owner_level}): {case.type.value.replace('_', ' ')}"
    lines = [case.summary, f"Next action: {case.next_action}"]
    if case.order_id:
        lines.append(f"Order {case.order_id}" + (f", account {case.account_id}" if case.account_id else ""))
    last = case.history[-1] if case.history else None
    if last is not None and last.action == "escalated":
        lines.append(f"Escalated {_when(last.at)}: {last.comment}")
    lines.append(f"Case {case.id}{due}")
    return Alert(key=f"case:{case.id}:{case.owner_level}", kind=AlertKind.CASE_OVERDUE, team=case.owner_team,
                 level=case.owner_level, title=title, text="\n".join(lines),
                 link=policy.link(f"/ops/cases/{case.id}"), subject_id=case.id)


def breach_level(reading: ClockReading, threshold: float, now: dt.datetime, levels: int) -> int:
    """0 while the clock is within its threshold (or stopped, or untimed); else how many thresholds it has
    run, at most ``levels``."""
    if reading.stopped_at is not None or not reading.precise or threshold <= 0:
        return 0
    ran = reading.seconds(now)
    if ran <= threshold:
        return 0
    return max(1, min(levels, math.floor(ran / threshold)))


def sla_alerts(order_id: str, account_id: str, reading: ClockReading, thresholds: SlaThresholds,
               policy: AlertPolicy, now: dt.datetime) -> list[Alert]:
    """The alerts a running clock of one order has earned by now: one per level reached (the record of
    what was sent keeps each to once)."""
    chain = policy.sla_chain(reading.clock)
    threshold = thresholds.of(reading.clock)
    level = breach_level(reading, threshold, now, len(chain))
    ran = reading.seconds(now)
    out = []
    for n in range(1, level + 1):
        team = chain[n - 1]
        title = (f"SLA breach, {reading.clock.value.replace('_', ' ')} (level {n}): order {order_id} "
                 f"has waited {_duration(ran)}")
        text = "\n".join([
            f"The {reading.clock.value.replace('_', ' ')} clock of order {order_id} (account {account_id}) "
            f"started {_when(reading.started_at)} and has run {_duration(ran)}, over its threshold of "
            f"{_duration(threshold)}" + (f" ({n} thresholds)" if n > 1 else "") + ".",
            _SLA_HINTS[reading.clock],
        ])
        out.append(Alert(key=f"sla:{order_id}:{reading.clock.value}:{n}", kind=AlertKind.SLA_BREACH, team=team,
                         level=n, title=title, text=text, link=policy.link(f"/ops/orders/{order_id}"),
                         subject_id=order_id))
    return out


_SLA_HINTS = {
    SlaClock.ACKNOWLEDGMENT: "The ERP has not accepted the order yet: check the ERP's circuit, dead letters and "
                             "open cases of the order.",
    SlaClock.FULFILLMENT: "The order has not shipped: check with the warehouse and the ERP's shipments.",
    SlaClock.INVOICE_SYNC: "A posted invoice is not visible to the buyer yet: check the ERP change poller.",
}


def trial_alert(team: str, policy: AlertPolicy, now: dt.datetime) -> Alert:
    """What ``ordersync alerts test`` sends: says it is a test, and which team's channels it went through."""
    return Alert(key=f"test:{team}:{now.isoformat()}", kind=AlertKind.TEST, team=team, level=0,
                 title=f"ordersync test alert for team {team}",
                 text=f"A test notification sent {_when(now)}: the channels of team {team} work.",
                 link=policy.link("/ops"), subject_id="")


def digest(alerts: Sequence[Alert], policy: AlertPolicy, now: dt.datetime, *, listed: int = 20) -> Alert:
    """One alert standing for many of one kind, team and level found in one check (an ERP outage breaches
    every waiting order's clock at once): their titles, the first ``listed`` of them, and how many more."""
    first = alerts[0]
    noun = "SLA breaches" if first.kind is AlertKind.SLA_BREACH else "escalated cases"
    lines = [f"- {a.title}" + (f" ({a.link})" if a.link else "") for a in alerts[:listed]]
    if len(alerts) > listed:
        lines.append(f"... and {len(alerts) - listed} more")
    path = "/ops/orders" if first.kind is AlertKind.SLA_BREACH else "/ops/cases"
    return Alert(key=f"digest:{first.kind.value}:{first.team}:{first.level}:{now.isoformat()}", kind=first.kind,
                 team=first.team, level=first.level,
                 title=f"{len(alerts)} {noun} for {first.team} (level {first.level})",
                 text="\n".join(lines), link=policy.link(path), subject_id="")


# -- the words ----------------------------------------------------------------------------------------------

def webhook_payload(alert: Alert) -> dict[str, Any]:
    """A Slack-compatible incoming webhook body: ``text`` (every client shows it, notifications use it)
    and ``blocks`` (a header, the text, a link to the case or order)."""
    fallback = f"{alert.title}\n{alert.text}" + (f"\n{alert.link}" if alert.link else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(alert.text)[:3000]}},
    ]
    if alert.link:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{alert.link}|Open in ordersync>"}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"team {_escape(alert.team)} · {alert.kind.value} · level {alert.level}"}]})
    return {"text": fallback, "blocks": blocks}


def email_subject(alert: Alert) -> str:
    return f"[ordersync] {alert.title}"[:250]


def email_text(alert: Alert) -> str:
    """The plain-text body of the e-mail."""
    parts = [alert.title, "", alert.text, ""]
    if alert.link:
        parts += [f"Open it: {alert.link}", ""]
    parts.append(f"-- ordersync alerts, team {alert.team}, level {alert.level} ({alert.kind.value})")
    return "\n".join(parts)


def _escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
