"""Alert senders (:mod:`ordersync.ports.alerts`): a Slack-compatible incoming webhook over HTTP (httpx)
and e-mail over SMTP (smtplib, with STARTTLS and sign-in when configured)."""

from __future__ import annotations

import smtplib
import ssl
import urllib.parse
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from ordersync import __version__
from ordersync.domain.alerts import Alert, AlertRoute, email_subject, email_text, webhook_payload
from ordersync.ports.alerts import AlertNotSent, NotSent

#: how much of a refusing receiver's answer is kept in the error
ANSWER_KEPT = 300


class WebhookAlertSender:
    """POSTs ``{"text": ..., "blocks": [...]}`` to the route's incoming webhook URL; any 2xx is sent."""

    def __init__(self, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.transport = transport

    def send(self, alert: Alert, route: AlertRoute) -> str:
        if not route.webhook_url:
            raise AlertNotSent(f"team {route.team} has no webhook URL")
        host = urllib.parse.urlsplit(route.webhook_url).netloc  # the path of an incoming webhook is its secret
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                r = client.post(route.webhook_url, json=webhook_payload(alert),
                                headers={"User-Agent": f"ordersync/{__version__}"})
        except httpx.HTTPError as exc:
            raise AlertNotSent(f"POST {host}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= r.status_code < 300:
            raise AlertNotSent(f"POST {host}: HTTP {r.status_code} {r.text[:ANSWER_KEPT]}".rstrip())
        return f"POST {host}: {r.status_code}"


class SmtpMailer:
    """Plain-text e-mail through one SMTP server (STARTTLS and sign-in when configured): the alerts'
    e-mail channel and the invitations' (:mod:`ordersync.ports.alerts`, ``Mailer``)."""

    def __init__(self, *, host: str, port: int, from_address: str, starttls: bool = True, user: str | None = None,
                 password: str | None = None, timeout: float = 10.0) -> None:
        self.host, self.port, self.from_address = host, port, from_address
        self.starttls, self.user, self.password, self.timeout = starttls, user, password, timeout

    def message(self, to: Sequence[str], subject: str, text: str, headers: dict[str, str] | None = None
                ) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.from_address.rsplit("@", 1)[-1])
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(text)
        return msg

    def send_mail(self, to: Sequence[str], subject: str, text: str, *, headers: dict[str, str] | None = None) -> str:
        where = f"SMTP {self.host}:{self.port}"
        if not to:
            raise NotSent(f"{where}: no recipient")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(self.message(to, subject, text, headers))
        except (smtplib.SMTPException, OSError) as exc:
            raise NotSent(f"{where}: {type(exc).__name__}: {exc}") from exc
        if refused:
            raise NotSent(f"{where}: refused {', '.join(sorted(refused))} ({len(to) - len(refused)} taken)")
        return f"{where}: mailed {', '.join(to)}"


class SmtpAlertSender:
    """Sends an alert as a plain-text e-mail to the route's addresses."""

    def __init__(self, mailer: SmtpMailer) -> None:
        self.mailer = mailer

    def message(self, alert: Alert, route: AlertRoute) -> EmailMessage:
        return self.mailer.message(route.emails, email_subject(alert), email_text(alert),
                                   {"X-Ordersync-Alert": alert.key})

    def send(self, alert: Alert, route: AlertRoute) -> str:
        if not route.emails:
            raise AlertNotSent(f"team {route.team} has no e-mail addresses")
        try:
            return self.mailer.send_mail(route.emails, email_subject(alert), email_text(alert),
                                         headers={"X-Ordersync-Alert": alert.key})
        except NotSent as exc:
            raise AlertNotSent(str(exc)) from exc
