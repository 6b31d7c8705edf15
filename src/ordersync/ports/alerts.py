"""The alert port: one sender per channel (a Slack-compatible webhook, e-mail), which the alert job
(:mod:`ordersync.runtime.alerts`) calls outside any transaction.

A sender returns a short account of what happened (``"POST hooks.example.com: 200"``) or raises
:class:`AlertNotSent` with the reason; the job records either, and retries a failure with backoff.
"""

from __future__ import annotations

from typing import Protocol

from ordersync.domain.alerts import Alert, AlertRoute


class AlertNotSent(Exception):
    """The channel did not take the alert (refused, unreachable, timed out); the message says why."""


class AlertSender(Protocol):
    def send(self, alert: Alert, route: AlertRoute) -> str:
        """Deliver ``alert`` to the team's ``route`` on this sender's channel; what happened, in a line."""
        ...
