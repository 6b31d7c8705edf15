"""Real receivers for what the hub sends people: an SMTP server (aiosmtpd on 127.0.0.1, a free port) and an
HTTP server standing in for a Slack incoming webhook, each a context manager for a test's fixture."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on 127.0.0.1: (its mailbox, its port)."""
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Hook:
    """A Slack-like incoming webhook: keeps every JSON body; answers 500 to the first ``failing`` posts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failing = 0
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Hook]:
    """An HTTP server on 127.0.0.1 keeping what is POSTed to it."""
    seen = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.bodies.append(body)
            failing = seen.failing > 0
            seen.failing -= 1 if failing else 0
            self.send_response(500 if failing else 200)
            self.end_headers()
            self.wfile.write(b"no_service" if failing else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    seen.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=seen.server.serve_forever, daemon=True)
    thread.start()
    yield seen
    seen.server.shutdown()
    seen.server.server_close()


