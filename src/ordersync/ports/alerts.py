"""The alert port: one sender per channel (a Slack-compatible webhook, e-mail), which the alert job
(:mod:`ordersync.runtime.alerts`) calls outside any transaction; and the mailer behind e-mail, which
invitations use too (:func:`ordersync.web.people.mail_invitation`).

A sender returns a short account of what happened (``"POST hooks.example.com: 200"``) or raises
:class:`AlertNotSent` with the reason; the job records either, and retries a failure with backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ordersync.domain.alerts import Alert, AlertRoute


class NotSent(Exception):
    """The channel did not take the message (refused, unreachable, timed out); the message says why."""


class AlertNotSent(NotSent):
    """An alert was not sent."""


class Mailer(Protocol):
    def send_mail(self, to: Sequence[str], subject: str, text: str, *, headers: dict[str, str] | None = None) -> str:
        """Send a plain-text e-mail; what happened, in a line. Raises :class:`NotSent`."""
        ...


class AlertSender(Protocol):
    def send(self, alert: Alert, route: AlertRoute) -> str:
        """Deliver ``alert`` to the team's ``route`` on this sender's channel; what happened, in a line."""
        ...
