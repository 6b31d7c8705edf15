"""The alert job: a periodic job of the worker (one process at a time) that records what deserves an
alert and sends what is due.

Each run, :meth:`AlertDispatcher.run`:

1. **collects**: escalated cases still open (one alert per case and owner level) and SLA breaches (one
   per order, clock and level, found by the injected ``breaches`` reader, :func:`ordersync.reads.alerts.
   sla_breaches`). An alert not yet in ``alert_notifications`` gets a row per channel of its team, the
   message kept with it; an alert already there is never recorded again, so a restart sends nothing
   twice and a breach that goes on does not alert on every check. A team without a route gets one row
   on channel ``none``, failed at once with the reason, so the gap shows (``/metrics``,
   ``ordersync alerts status``) instead of vanishing. When one check finds more than ``digest_over``
   new alerts of one kind for one team and level (an ERP outage breaches every waiting order's clock at
   once), the team gets one digest instead; each alert it stands for is recorded as ``grouped`` (channel
   ``digest``, with the digest's key), so it is never sent on its own, nor again.
2. **sends** the rows that are due, outside any transaction, and records each outcome in a short write:
   sent, or failed with its error and the next attempt after a backoff (:class:`RetryPolicy`); after
   ``max_attempts`` the row stays ``failed`` with its last error. A sender that raises anything never
   stops the job: the error is the row's.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from ordersync.canonical.v1 import ExceptionCase
from ordersync.domain.alerts import Alert, AlertKind, AlertPolicy, Channel, case_alert, digest
from ordersync.domain.clock import Clock
from ordersync.messaging.retry import RetryPolicy
from ordersync.ports.alerts import AlertNotSent, AlertSender
from ordersync.store.cases import OPEN_STATES
from ordersync.store.db import Database
from ordersync.store.schema import alert_notifications, cases

log = logging.getLogger("ordersync.alerts")

Breaches = Callable[[Connection, dt.datetime], list[Alert]]
PENDING, SENT, FAILED = "pending", "sent", "failed"
#: an alert told within a digest: its row's channel and state (the digest has rows of its own)
DIGEST, GROUPED = "digest", "grouped"
UNSENT = (PENDING, FAILED)
ERROR_KEPT = 1000


@dataclass(frozen=True)
class AlertRun:
    recorded: int = 0
    sent: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.recorded + self.sent + self.failed


class AlertDispatcher:
    def __init__(self, db: Database, clock: Clock, policy: AlertPolicy, senders: Mapping[Channel, AlertSender], *,
                 retry: RetryPolicy, breaches: Breaches | None = None, batch: int = 50,
                 case_limit: int = 500, digest_over: int = 5) -> None:
        self.db, self.clock, self.policy, self.senders = db, clock, policy, senders
        self.retry, self.breaches, self.batch, self.case_limit = retry, breaches, batch, case_limit
        self.digest_over = digest_over

    def run(self) -> int:
        """Collect, then send what is due; how many rows changed (the worker's measure of work done)."""
        outcome = AlertRun(recorded=self.collect())
        outcome = self.send_due(outcome)
        return outcome.total

    # -- collect -----------------------------------------------------------------------------------------

    def collect(self) -> int:
        now = self.clock.now()
        with self.db.read() as conn:
            found = self._case_alerts(conn, now)
            if self.breaches is not None:
                found += self.breaches(conn, now)
            if not found:
                return 0
            known = self._known(conn, [a.key for a in found])
        new = [a for a in found if a.key not in known]
        if not new:
            return 0
        with self.db.write() as conn:
            known = self._known(conn, [a.key for a in new])  # another process may have been quicker
            rows = []
            for group in self._grouped([a for a in new if a.key not in known]):
                if len(group) > self.digest_over:
                    summary = digest(group, self.policy, now)
                    rows += self._rows(summary, now) + [self._grouped_row(a, summary, now) for a in group]
                    log.info("alert %s for team %s: %s", summary.key, summary.team, summary.title)
                else:
                    rows += [row for a in group for row in self._rows(a, now)]
                    for a in group:
                        log.info("alert %s for team %s: %s", a.key, a.team, a.title)
            if rows:
                conn.execute(alert_notifications.insert(), rows)
        return len(rows)

    @staticmethod
    def _grouped(alerts: list[Alert]) -> list[list[Alert]]:
        """Alerts of one kind, team and level together, in the order found."""
        groups: dict[tuple[str, str, int], list[Alert]] = {}
        for a in alerts:
            groups.setdefault((a.kind.value, a.team, a.level), []).append(a)
        return list(groups.values())

    @staticmethod
    def _grouped_row(alert: Alert, summary: Alert, now: dt.datetime) -> dict[str, Any]:
        """The record of an alert told as part of a digest: never sent on its own, never again."""
        return {"id": uuid.uuid4().hex, "key": alert.key, "channel": DIGEST, "kind": alert.kind.value,
                "team": alert.team, "level": alert.level, "subject_id": alert.subject_id[:64], "body": encode(alert),
                "state": GROUPED, "attempts": 0, "failures": 0, "next_attempt_at": now, "created_at": now,
                "last_error": None, "sent_at": None, "digest_key": summary.key}

    def _case_alerts(self, conn: Connection, now: dt.datetime) -> list[Alert]:
        c = cases.c
        # the latest escalated first (an escalation sets a new due time): a long tail of old escalated
        # cases, all told already, never hides a new one
        bodies = conn.execute(select(c.body).where(c.state.in_(OPEN_STATES), c.owner_level > 1)
                              .order_by(c.due_at.desc()).limit(self.case_limit)).scalars()
        return [case_alert(ExceptionCase.model_validate_json(b), self.policy, now) for b in bodies]

    @staticmethod
    def _known(conn: Connection, keys: list[str]) -> set[str]:
        n = alert_notifications.c
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            out.update(conn.execute(select(n.key).where(n.key.in_(keys[i:i + 500]))).scalars())
        return out

    def _rows(self, alert: Alert, now: dt.datetime) -> list[dict[str, Any]]:
        channels = self.policy.channels(alert.team)
        base = {"key": alert.key, "kind": alert.kind.value, "team": alert.team, "level": alert.level,
                "subject_id": alert.subject_id[:64], "body": encode(alert), "attempts": 0, "failures": 0,
                "next_attempt_at": now, "created_at": now, "sent_at": None, "digest_key": None}
        if not channels:
            return [{**base, "id": uuid.uuid4().hex, "channel": Channel.NONE.value, "state": FAILED, "failures": 1,
                     "last_error": f"no [[alerts.route]] for team {alert.team} (and no team = \"*\")"}]
        return [{**base, "id": uuid.uuid4().hex, "channel": ch.value, "state": PENDING, "last_error": None}
                for ch in channels]

    # -- send --------------------------------------------------------------------------------------------

    def send_due(self, outcome: AlertRun | None = None) -> AlertRun:
        outcome = outcome or AlertRun()
        now = self.clock.now()
        n = alert_notifications.c
        with self.db.read() as conn:
            due = list(conn.execute(select(n.id, n.channel, n.team, n.body, n.attempts, n.failures)
                                    .where(n.state == PENDING, n.next_attempt_at <= now)
                                    .order_by(n.next_attempt_at).limit(self.batch)))
        sent = failed = 0
        for row in due:
            error, said = self._send_one(Channel(row.channel), row.team, decode(row.body))
            at = self.clock.now()
            attempts = row.attempts + 1
            if error is None:
                values: dict[str, Any] = {"state": SENT, "attempts": attempts, "sent_at": at, "last_error": None}
                sent += 1
                log.info("alert %s sent (%s)", row.id, said)
            else:
                failures = row.failures + 1
                given_up = self.retry.exhausted(attempts)
                values = {"state": FAILED if given_up else PENDING, "attempts": attempts, "failures": failures,
                          "last_error": error[:ERROR_KEPT],
                          "next_attempt_at": at + dt.timedelta(seconds=self.retry.delay(attempts))}
                failed += 1
                log.warning("alert %s on %s failed (attempt %d%s): %s", row.id, row.channel, attempts,
                            ", given up" if given_up else "", error)
            with self.db.write() as conn:
                conn.execute(update(alert_notifications).where(n.id == row.id).values(**values))
        return AlertRun(outcome.recorded, outcome.sent + sent, outcome.failed + failed)

    def _send_one(self, channel: Channel, team: str, alert: Alert) -> tuple[str | None, str]:
        """(None, what happened) when sent, else (the error, "")."""
        route = self.policy.route(team)
        sender = self.senders.get(channel)
        if route is None or channel not in route.channels():
            return f"team {team} has no {channel.value} route any more", ""
        if sender is None:
            return f"no {channel.value} sender is configured (e-mail needs [alerts.smtp])", ""
        try:
            return None, sender.send(alert, route)
        except Exception as exc:  # a sender's failure is the row's, never the job's
            return failure(exc), ""


def send_now(alert: Alert, policy: AlertPolicy, senders: Mapping[Channel, AlertSender]
             ) -> list[tuple[Channel, bool, str]]:
    """Send ``alert`` on every channel of its team at once, recording nothing (``ordersync alerts test``):
    (channel, sent, what happened) per channel."""
    route = policy.route(alert.team)
    if route is None or not route.channels():
        return [(Channel.NONE, False, f"no [[alerts.route]] for team {alert.team} (and no team = \"*\")")]
    out = []
    for channel in route.channels():
        sender = senders.get(channel)
        if sender is None:
            out.append((channel, False, f"no {channel.value} sender is configured (e-mail needs [alerts.smtp])"))
            continue
        try:
            out.append((channel, True, sender.send(alert, route)))
        except Exception as exc:  # reported, as the job would record it
            out.append((channel, False, failure(exc)))
    return out


@dataclass(frozen=True)
class NotificationStatus:
    key: str
    channel: str
    team: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    sent_at: dt.datetime | None


def status(db: Database, *, unsent_only: bool = False, limit: int = 50) -> list[NotificationStatus]:
    """The latest notifications (or only those not sent), newest first."""
    n = alert_notifications.c
    query = select(n.key, n.channel, n.team, n.state, n.attempts, n.last_error, n.next_attempt_at, n.created_at,
                   n.sent_at)
    if unsent_only:
        query = query.where(n.state.in_(UNSENT))
    with db.read() as conn:
        return [NotificationStatus(*r) for r in conn.execute(query.order_by(n.created_at.desc(), n.key)
                                                              .limit(limit))]


def failure(exc: Exception) -> str:
    """A sender's own refusal says what happened; anything else is named by its type too."""
    return str(exc) if isinstance(exc, AlertNotSent) else f"{type(exc).__name__}: {exc}"


def encode(alert: Alert) -> str:
    return json.dumps(asdict(alert), sort_keys=True)


def decode(body: str) -> Alert:
    data = json.loads(body)
    return Alert(**{**data, "kind": AlertKind(data["kind"])})
