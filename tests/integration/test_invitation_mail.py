"""Invitations are e-mailed through ``[alerts.smtp]`` when it is configured (a real SMTP server started
here): from /ops, from the portal and from ``ordersync people invite``. The link is still shown to the
inviter, and a mail server that fails loses no invitation."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.cli import app as cli_app
from ordersync.config import AlertSettings, SmtpSettings
from ordersync.server import create_app
from ordersync.web.people import People
from tests.support.hub import erp_hub
from tests.support.people import PASSWORD, buyer, staff
from tests.support.receivers import Mailbox, free_port, smtp_server


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as found:
        yield found


def mailing_hub(tmp_path: Path, port: int) -> Any:
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False, from_address="ordersync@example.com")
    return erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, alerts=AlertSettings(smtp=smtp))


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def shown_link(page: str, area: str) -> str:
    found = re.search(rf'id="invite-link">(https?://[^<]+/{area}/invite/[^<]+)<', page)
    assert found, page
    return found.group(1)


def test_an_ops_invitation_is_e_mailed_with_the_link_shown_to_the_admin(tmp_path: Path,
                                                                        smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    hub = mailing_hub(tmp_path, port)
    try:
        admin = TestClient(create_app(hub))
        admin.post("/ops/signin", data={"email": staff(hub, "admin"), "password": PASSWORD, "next": "/ops"})
        r = admin.post("/ops/people/invite", data={"csrf": csrf(admin.get("/ops/people").text), "kind": "staff",
                                                   "email": "fiona@kestrel.example", "name": "Fiona Finance",
                                                   "roles": ["finance"]}, follow_redirects=False)
        assert r.status_code == 303
        page = admin.get("/ops/people").text
        link = shown_link(page, "ops")
        assert 'id="invite-mailed">e-mailed to fiona@kestrel.example<' in page
        [(to, mail)] = box.messages
        assert to == ["fiona@kestrel.example"] and mail["Subject"] == "Your invitation to ordersync"
        body = mail.get_content()
        assert link in body.splitlines() and "Hello Fiona Finance" in body and "roles: finance" in body
        opened = TestClient(create_app(hub)).get(urllib.parse.urlsplit(link).path)
        assert opened.status_code == 200 and "Fiona Finance" in opened.text  # the mailed link opens the invitation
    finally:
        hub.close()


def test_a_portal_invitation_is_e_mailed_too(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    hub = mailing_hub(tmp_path, port)
    try:
        admin = TestClient(create_app(hub))
        admin.post("/portal/signin", data={"email": buyer(hub, account="C-1001", roles=("admin",)),
                                           "password": PASSWORD, "next": "/portal/catalog"})
        r = admin.post("/portal/people/invite", data={"csrf": csrf(admin.get("/portal/people").text),
                                                      "email": "sam@rheinland.example", "name": "Sam",
                                                      "roles": "buyer"}, follow_redirects=False)
        assert r.status_code == 303
        page = admin.get("/portal/people").text
        link = shown_link(page, "portal")
        [(to, mail)] = box.messages
        assert to == ["sam@rheinland.example"] and link in mail.get_content().splitlines()
        assert "the portal of account C-1001" in mail.get_content()
    finally:
        hub.close()


def test_a_mail_server_that_fails_keeps_the_invitation_and_says_so(tmp_path: Path) -> None:
    hub = mailing_hub(tmp_path, free_port())  # nothing listens there
    try:
        admin = TestClient(create_app(hub))
        admin.post("/ops/signin", data={"email": staff(hub, "admin"), "password": PASSWORD, "next": "/ops"})
        admin.post("/ops/people/invite", data={"csrf": csrf(admin.get("/ops/people").text), "kind": "staff",
                                               "email": "olaf@kestrel.example", "roles": ["operations"]},
                   follow_redirects=False)
        page = admin.get("/ops/people").text
        assert shown_link(page, "ops")
        mailed = re.search(r'id="invite-mailed">([^<]+)<', page)
        assert mailed and mailed.group(1).startswith("not e-mailed (SMTP 127.0.0.1:")
        assert "ConnectionRefusedError" in mailed.group(1) and mailed.group(1).endswith("pass the link on yourself")
        invited = People(hub.db, hub.clock).find("olaf@kestrel.example")
        assert invited is not None and invited.state == "invited"
    finally:
        hub.close()


def test_the_cli_invitation_is_printed_and_e_mailed(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    config = tmp_path / "ordersync.toml"
    config.write_text(f"""
[alerts]
public_base_url = "https://hub.example.com"
[alerts.smtp]
host = "127.0.0.1"
port = {port}
starttls = false
from_address = "ordersync@example.com"
""")
    r = CliRunner().invoke(cli_app, ["people", "invite", "carl@kestrel.example", "--role", "operations",
                                     "--data-dir", str(tmp_path / "d"), "--config", str(config)])
    assert r.exit_code == 0, r.output
    link = r.stdout.strip()
    assert link.startswith("https://hub.example.com/ops/invite/")
    [(to, mail)] = box.messages
    assert to == ["carl@kestrel.example"] and link in mail.get_content().splitlines()
    assert "e-mailed to carl@kestrel.example" in r.stderr
