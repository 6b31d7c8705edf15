"""Alert senders (:mod:`ordersync.ports.alerts`): a Slack-compatible incoming webhook over HTTP (httpx)
and e-mail over SMTP (smtplib, with STARTTLS and sign-in when configured)."""

from __future__ import annotations

import smtplib
import ssl
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from ordersync import __version__
from ordersync.domain.alerts import Alert, AlertRoute, email_subject, email_text, webhook_payload
from ordersync.ports.alerts import AlertNotSent

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


class SmtpAlertSender:
    """Sends a plain-text e-mail to the route's addresses through one SMTP server."""

    def __init__(self, *, host: str, port: int, from_address: str, starttls: bool = True, user: str | None = None,
                 password: str | None = None, timeout: float = 10.0) -> None:
        self.host, self.port, self.from_address = host, port, from_address
        self.starttls, self.user, self.password, self.timeout = starttls, user, password, timeout

    def message(self, alert: Alert, route: AlertRoute) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = ", ".join(route.emails)
        msg["Subject"] = email_subject(alert)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.from_address.rsplit("@", 1)[-1])
        msg["X-Ordersync-Alert"] = alert.key
        msg.set_content(email_text(alert))
        return msg

    def send(self, alert: Alert, route: AlertRoute) -> str:
        if not route.emails:
            raise AlertNotSent(f"team {route.team} has no e-mail addresses")
        where = f"SMTP {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(self.message(alert, route))
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertNotSent(f"{where}: {type(exc).__name__}: {exc}") from exc
        if refused:
            taken = len(route.emails) - len(refused)
            raise AlertNotSent(f"{where}: refused {', '.join(sorted(refused))} ({taken} taken)")
        return f"{where}: mailed {', '.join(route.emails)}"
