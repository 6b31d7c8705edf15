"""The EDI channel on the in-memory ERP (SQLite and PostgreSQL): an 850 becomes an order and the 855, 856
and 810 follow from the ERP's decisions; sending over AS2 retries, dead-letters with a case and honours
the MDN; the partner's 997 marks our documents; an overdue 997 opens a case; ``POST /as2`` keeps a message
before its MDN; the ops pages list and resend."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.channels.edi import as2
from ordersync.config import EdiPartnerSettings, EdiSettings
from ordersync.domain.clock import FakeClock
from ordersync.server import create_app
from ordersync.store import edi as edi_store
from ordersync.store.schema import cases, edi_interchanges
from tests.support.hub import erp_hub, record, settle
from tests.support.people import PASSWORD, staff
from tests.unit.edi.test_x12_envelope import SAMPLES

SAMPLE = (SAMPLES / "nodex12_850.edi").read_bytes()  # a real partner's 850 (its items are not in our catalogue)


def po_850(number: str = "4500012345", control: int = 1) -> bytes:
    """An 850 from xyz-retail for two of our SKUs, shipped to its mapped ship-to."""
    body = (f"ST*850*0001~BEG*00*SA*{number}**20261205~CUR*BY*EUR~N1*ST*Solon DC*9*0003947268292~"
            "PO1*1*10*EA*6.63**VP*BRG-6204-2RS~PO1*2*20*EA*3.68**VP*FIT-ELB-G12-SS~CTT*2~SE*8*0001~")
    return (f"ISA*00*          *00*          *12*4405197800     *ZZ*ORDERSYNC      *261205*1200*U*00401*"
            f"{control:09d}*0*P*>~GS*PO*4405197800*ORDERSYNC*20261205*1200*{control}*X*004010~{body}"
            f"GE*1*{control}~IEA*1*{control:09d}~").encode()
PARTNER = dict(name="xyz-retail", interchange_qualifier="12", interchange_id="4405197800", account_id="C-1001",
               ship_to={"0003947268292": "RIS-DUS"}, transport="as2", as2_url="https://xyz.example/as2",
               as2_id="XYZAS2", ack_hours=4)


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


@pytest.fixture
def edi_hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock, store_url: str) -> Any:
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, store=store_url,
                  edi=EdiSettings(partners=[EdiPartnerSettings(**PARTNER)], base_seconds=10, cap_seconds=60,
                                  max_attempts=3))
    yield hub
    hub.close()


def partner_answers(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def mdn_for(request: httpx.Request, disposition: str = "processed", payload: bytes | None = None) -> httpx.Response:
    headers, body = as2.build_mdn(original_message_id=request.headers["message-id"],
                                  as2_from=request.headers["as2-from"], as2_to=request.headers["as2-to"],
                                  payload=request.content if payload is None else payload, disposition=disposition,
                                  text="ok")
    return httpx.Response(200, headers=headers, content=body)


def settle_and_send(hub: Any) -> None:
    """The flows, then the sender (a periodic job, which the fake clock does not make due by itself)."""
    for _ in range(10):
        settle(hub)
        if hub.edi.sender.send_due() == 0:
            return


def outgoing(hub: Any) -> list[tuple[str, str, str, int]]:
    """(document, state, ack state, attempts) of what the hub wrote for the partner, in order."""
    with hub.db.read() as conn:
        return [(r.document, r.state, r.ack_state, r.attempts) for r in conn.execute(
            select(edi_interchanges).where(edi_interchanges.c.direction == "out")
            .order_by(edi_interchanges.c.received_at, edi_interchanges.c.control_number))]


def their_997(hub: Any, document: str, status: str, control: int) -> bytes:
    """The partner's 997 for the one ``document`` we sent it (AK1 names our group, AK2 our set)."""
    with hub.db.read() as conn:
        row = conn.execute(select(edi_interchanges).where(edi_interchanges.c.document == document)).mappings().one()
    functional = {"855": "PR", "856": "SH", "810": "IN"}[document]
    body = [f"ST*997*0001~AK1*{functional}*{row['group_control']}~AK2*{document}*{row['set_control']}~",
            f"AK5*{status}{'*5' if status == 'R' else ''}~AK9*{status}*1*1*{1 if status == 'A' else 0}~SE*6*0001~"]
    return (f"ISA*00*          *00*          *12*4405197800     *ZZ*ORDERSYNC      *261205*1200*U*00401*"
            f"{control:09d}*0*P*>~GS*FA*4405197800*ORDERSYNC*20261205*1200*{control}*X*004010~"
            + "".join(body) + f"GE*1*{control}~IEA*1*{control:09d}~").encode()


def test_order_to_cash_documents_follow_the_erp_and_the_partners_997s(edi_hub: Any, erp: MemoryErp,
                                                                      clock: FakeClock) -> None:
    hub = edi_hub
    sent: list[bytes] = []

    def partner(request: httpx.Request) -> httpx.Response:
        assert (request.headers["as2-from"], request.headers["as2-to"]) == ("ORDERSYNC", "XYZAS2")
        sent.append(request.content)
        return mdn_for(request)

    hub.edi.sender.client = partner_answers(partner)
    result = hub.edi.inbound.receive(po_850())
    assert result.state == "processed"
    order_id = result.orders[0].order_id
    settle_and_send(hub)
    assert [(d, s) for d, s, _, _ in outgoing(hub)] == [("997", "sent"), ("855", "sent")]
    assert b"ST*855*" in sent[1] and b"BAK*00*AD*4500012345" in sent[1], sent[1]

    (reference,) = [e.reference for e in record(hub, order_id).erp_orders]
    erp.ship(reference)
    erp.post_invoices(reference)
    for _ in range(5):
        hub.poller.poll_all()
        settle_and_send(hub)
    assert [d for d, *_ in outgoing(hub)] == ["997", "855", "856", "810"]
    assert all(s == "sent" for _, s, _, _ in outgoing(hub))
    assert [a for d, _, a, _ in outgoing(hub)] == ["", "awaiting", "awaiting", "awaiting"]

    accepted = hub.edi.inbound.receive(their_997(hub, "855", "A", 71))
    assert accepted.acknowledged == ["855 0002: A"]
    rejected = hub.edi.inbound.receive(their_997(hub, "810", "R", 72))
    assert rejected.acknowledged == ["810 0004: R"]
    assert [a for d, _, a, _ in outgoing(hub) if d in ("855", "810")] == ["accepted", "rejected"]
    assert [d for d, *_ in outgoing(hub)].count("997") == 1  # an acknowledgment is never acknowledged
    with hub.uow() as uow:
        summaries = [c.summary for c in uow.cases.open_for_order(order_id)]
    assert any("rejected our 810" in s for s in summaries), summaries

    clock.advance(5 * 3600)  # the 856's 997 is past the partner's 4 hours
    assert hub.edi.sender.chase_up() == 1
    assert hub.edi.sender.chase_up() == 0  # once
    with hub.uow() as uow:
        summaries = [c.summary for c in uow.cases.open_for_order(order_id)]
    assert any("has not acknowledged our 856" in s for s in summaries), summaries


def test_a_send_is_retried_with_backoff_then_dead_lettered_with_a_case(edi_hub: Any, clock: FakeClock) -> None:
    hub = edi_hub
    calls: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["message-id"])
        return httpx.Response(503, text="maintenance")

    hub.edi.sender.client = partner_answers(down)
    hub.edi.inbound.receive(po_850())
    settle(hub)
    hub.edi.sender.send_due()
    assert [(d, s, n) for d, s, _, n in outgoing(hub)] == [("997", "queued", 1), ("855", "queued", 0)]
    assert hub.edi.sender.send_due() == 0  # not due yet: backing off (and the 855 waits behind the 997)
    clock.advance(61)
    hub.edi.sender.send_due()
    clock.advance(61)
    hub.edi.sender.send_due()
    assert outgoing(hub)[0][1:] == ("dead_letter", "", 3)
    assert len(set(calls)) == 1  # one AS2 Message-ID for every attempt of one interchange
    with hub.db.read() as conn:
        bodies = [r.body for r in conn.execute(select(cases))]
    assert any("could not be reached in 3 attempts" in b and "ordersync edi resend" in b for b in bodies)

    hub.edi.sender.client = partner_answers(mdn_for)  # fixed: resend
    (dead,) = [r for r in _rows(hub) if r["state"] == "dead_letter"]
    with hub.db.write() as conn:
        edi_store.resend(conn, dead["id"])
    hub.edi.sender.send_due()
    assert [(d, s) for d, s, _, _ in outgoing(hub)] == [("997", "sent"), ("855", "sent")]


def test_a_refusing_mdn_is_a_dead_letter_at_once_and_a_wrong_mic_is_retried(edi_hub: Any, clock: FakeClock) -> None:
    hub = edi_hub
    answers = iter([lambda r: mdn_for(r, payload=b"other bytes"),
                    lambda r: mdn_for(r, "processed/error: authentication-failed")])
    hub.edi.sender.client = partner_answers(lambda r: next(answers)(r))
    hub.edi.inbound.receive(SAMPLE)
    hub.edi.sender.send_due()
    (first,) = [r for r in _rows(hub) if r["document"] == "997"]
    assert (first["state"], first["attempts"]) == ("queued", 1) and "MIC" in first["last_error"]
    clock.advance(30)
    hub.edi.sender.send_due()
    (first,) = [r for r in _rows(hub) if r["document"] == "997"]
    assert (first["state"], first["attempts"]) == ("dead_letter", 2) and "authentication-failed" in first["last_error"]


def _rows(hub: Any) -> list[Any]:
    with hub.db.read() as conn:
        return list(conn.execute(select(edi_interchanges).where(edi_interchanges.c.direction == "out")).mappings())


def test_post_as2_keeps_the_message_before_its_mdn(edi_hub: Any) -> None:
    client = TestClient(create_app(edi_hub), raise_server_exceptions=False)
    headers = {"AS2-From": "XYZAS2", "AS2-To": "ORDERSYNC", "Message-ID": "<po-1@xyz.example>",
               "Content-Type": "application/edi-x12", "Disposition-Notification-To": "edi@xyz.example",
               "Disposition-Notification-Options": "signed-receipt-protocol=optional, pkcs7-signature; "
                                                   "signed-receipt-micalg=optional, sha256"}
    r = client.post("/as2", content=SAMPLE, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/report")
    mdn = as2.read_mdn(r.headers["content-type"], r.content)
    assert mdn is not None and mdn.processed and mdn.original_message_id == "<po-1@xyz.example>"
    assert mdn.mic == as2.mic(SAMPLE)
    with edi_hub.db.read() as conn:
        (kept,) = conn.execute(select(edi_interchanges.c.raw, edi_interchanges.c.state, edi_interchanges.c.transport,
                                      edi_interchanges.c.message_id)).all()
    assert (bytes(kept.raw), kept.state, kept.transport, kept.message_id) == (SAMPLE, "received", "as2",
                                                                             "<po-1@xyz.example>")
    assert edi_hub.edi.inbound.process_waiting() == 1  # the worker's job takes it from there

    signed = client.post("/as2", content=b"...", headers={**headers, "Content-Type": "multipart/signed; x=y"})
    refusal = as2.read_mdn(signed.headers["content-type"], signed.content)
    assert refusal is not None and not refusal.processed and "not supported" in refusal.text
    required = client.post("/as2", content=SAMPLE, headers={
        **headers, "Disposition-Notification-Options": "signed-receipt-protocol=required, pkcs7-signature"})
    refusal = as2.read_mdn(required.headers["content-type"], required.content)
    assert refusal is not None and not refusal.processed
    no_mdn = client.post("/as2", content=SAMPLE, headers={k: v for k, v in headers.items()
                                                         if not k.startswith("Disposition")})
    assert no_mdn.status_code == 200 and no_mdn.content.startswith(b"Received and kept")
    big = SAMPLE + b"\n" * (2 * 1024 * 1024)  # past the API's 1 MiB: /as2 takes interchanges up to 64 MiB
    assert client.post("/as2", content=big, headers=headers).status_code == 200


def test_ops_pages_list_partners_and_interchanges_and_resend(edi_hub: Any) -> None:
    hub = edi_hub
    hub.edi.inbound.receive(SAMPLE)
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    signin = {"email": staff(hub, "operations"), "password": PASSWORD, "next": "/ops/edi"}
    assert client.post("/ops/signin", data=signin, follow_redirects=False).status_code == 303
    page = client.get("/ops/edi").text
    assert 'id="edi-partner-xyz-retail"' in page and "12:4405197800" in page
    ids = re.findall(r'data-interchange-id="([0-9a-f]+)"', page)
    assert len(ids) == 2  # the 850 received, our 997 queued
    out_id = next(i for i in ids if f'data-interchange-id="{i}" data-state="queued"' in page)
    detail = client.get(f"/ops/edi/{out_id}").text
    assert "ST*997*" in detail and 'id="edi-resend"' in detail
    csrf = re.search(r'name="csrf" value="([^"]+)"', detail)
    assert csrf
    r = client.post(f"/ops/edi/{out_id}/resend", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=queued")
    assert client.get("/ops/edi/nope").status_code == 404


def test_an_asynchronous_mdn_goes_to_the_url_the_sender_names(edi_hub: Any) -> None:
    import http.server
    import queue
    import threading

    received: queue.Queue[tuple[str, bytes]] = queue.Queue()

    class Receipts(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receipts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    elsewhere = TestClient(create_app(edi_hub), raise_server_exceptions=False).post("/as2", content=SAMPLE, headers={
        "AS2-From": "XYZAS2", "AS2-To": "ORDERSYNC", "Message-ID": "<po-3@xyz.example>",
        "Disposition-Notification-To": "edi@xyz.example",
        "Receipt-Delivery-Option": f"http://127.0.0.1:{server.server_port}/mdn"})
    refusal = as2.read_mdn(elsewhere.headers["content-type"], elsewhere.content)
    assert refusal is not None and not refusal.processed and "not one of our partners" in refusal.text
    edi_hub.edi.partners[0] = replace(edi_hub.edi.partners[0], as2_url=f"http://127.0.0.1:{server.server_port}/as2")
    try:
        client = TestClient(create_app(edi_hub), raise_server_exceptions=False)
        r = client.post("/as2", content=SAMPLE, headers={
            "AS2-From": "XYZAS2", "AS2-To": "ORDERSYNC", "Message-ID": "<po-2@xyz.example>",
            "Content-Type": "application/edi-x12", "Disposition-Notification-To": "edi@xyz.example",
            "Receipt-Delivery-Option": f"http://127.0.0.1:{server.server_port}/mdn"})
        assert r.status_code == 202 and not r.content
        content_type, body = received.get(timeout=10)
    finally:
        server.shutdown()
    mdn = as2.read_mdn(content_type, body)
    assert mdn is not None and mdn.processed and mdn.original_message_id == "<po-2@xyz.example>"
    assert mdn.mic == as2.mic(SAMPLE)


def test_a_refusal_after_a_lost_attempt_is_taken_as_the_duplicate_of_that_attempt(edi_hub: Any) -> None:
    """The sender died during a send (the row still says so): the partner, which had it, refuses the
    same control number again. That is not a dead letter: the first copy's 997 decides."""
    from ordersync.channels.edi.sending import IN_FLIGHT

    hub = edi_hub
    hub.edi.inbound.receive(SAMPLE)
    (ack,) = _rows(hub)
    with hub.db.write() as conn:
        edi_store.update_interchange(conn, ack["id"], last_error=f"{IN_FLIGHT}2026-12-05T07:00:00+00:00",
                                     message_id="<lost@ordersync>")
    hub.edi.sender.client = partner_answers(lambda r: mdn_for(r, "processed/error: duplicate-document"))
    hub.edi.sender.send_due()
    (ack,) = _rows(hub)
    assert (ack["state"], ack["message_id"]) == ("sent", "<lost@ordersync>") and "lost" in ack["detail"]
    with hub.db.read() as conn:
        assert not [b for (b,) in conn.execute(select(cases.c.body)) if "refused" in b]
