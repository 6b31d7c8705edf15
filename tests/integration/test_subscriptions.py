"""Outbound event subscriptions: signed webhooks to a real HTTP receiver in the test process, on the
embedded runtime with a fake clock (retries are due when the clock is advanced, not after sleeping)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ordersync.bootstrap import Hub, build_hub
from ordersync.canonical.v1 import OrderState
from ordersync.cli import app
from ordersync.config import Settings, WebhookSettings
from ordersync.demo import sink
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import ValidationFailed
from ordersync.flows.services.intake import move_order, receive_order
from ordersync.messaging.deadletters import DeadLetterFilter
from ordersync.runtime.outbound import FANOUT, WEBHOOKS, SubscriptionService
from ordersync.runtime.webhooks import Outcome, classify
from ordersync.store.schema import inbox, outbox, webhook_deliveries
from tests.support.orders import make_order

SECRET = "a-shared-secret-for-tests-0123"
STEPS = (OrderState.VALIDATED, OrderState.PRICED, OrderState.ALLOCATED)


def settings(tmp_path: Path, store: str | None = None, **webhooks: Any) -> Settings:
    wh = {"base_seconds": 1.0, "max_attempts": 4, "wait_cap_seconds": 5.0, "concurrency": 3, "batch": 5,
          "poll_seconds": 0.05, **webhooks}
    return Settings(data_dir=tmp_path / "hub", store=store, webhooks=WebhookSettings(**wh))


@pytest.fixture
def hub(tmp_path: Path, clock: FakeClock) -> Iterator[Hub]:
    h = build_hub(settings(tmp_path), clock=clock)
    yield h
    h.close()


@pytest.fixture
def crm() -> Iterator[sink.Sink]:
    with sink.start(secret=SECRET, tolerance_seconds=None, keep=10_000) as s:  # the hub runs on a fake clock
        yield s


def subscribe(hub: Hub, url: str, *types: str) -> str:
    _, info = SubscriptionService(hub.db, hub.clock).add("crm", url, types or ["*"], secret=SECRET)
    return info.id


def place(hub: Hub, external: str, steps: tuple[OrderState, ...] = ()) -> str:
    with hub.uow() as uow:
        record, _ = receive_order(uow, make_order(external))
    for step in steps:
        with hub.uow() as uow:
            move_order(uow, record.id, step, "test")
    return record.id


def pump(hub: Hub) -> None:
    """Relay and consumers until idle, then send what is due, until nothing moves."""
    assert hub.webhooks is not None
    for _ in range(100):
        if hub.worker.drain() + hub.webhooks.send_due() == 0:
            return
    raise AssertionError("webhooks did not settle")


def rows(hub: Hub) -> list[dict[str, Any]]:
    with hub.db.read() as conn:
        return [dict(r) for r in conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)).mappings()]


def seq_of(hub: Hub) -> dict[str, int]:
    with hub.db.read() as conn:
        return {m: s for m, s in conn.execute(select(outbox.c.message_id, outbox.c.seq))}


def arrivals(crm: sink.Sink, order_id: str) -> list[sink.Received]:
    return [r for r in crm.received() if r.order_id == order_id and 200 <= r.status < 300]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the request ------------------------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    """Keeps every request raw (headers and bytes), to check the signature independently of the hub."""

    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def test_each_event_is_posted_as_its_envelope_and_signed_over_timestamp_and_body(hub: Hub, clock: FakeClock) -> None:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/in"
        subscribe(hub, url, "order.received", "order.state_changed")
        subscribe(hub, url, "order.accepted")  # takes none of these events
        order_id = place(hub, "PO-SIG")
        pump(hub)
    finally:
        server.shutdown()
        server.server_close()
    with hub.db.read() as conn:
        sent = {r.message_id: r.body for r in conn.execute(select(outbox).where(outbox.c.correlation_id == order_id))}
    assert len(Recorder.seen) == 2 == len(sent)
    by_delivery = {r["delivery_id"]: r for r in rows(hub)}
    for headers, body in Recorder.seen:
        envelope = json.loads(body)
        assert body.decode() == sent[envelope["message_id"]]  # the envelope exactly as the outbox holds it
        assert headers["content-type"] == "application/json"
        assert headers["x-ordersync-event"] == envelope["type"]
        assert headers["x-ordersync-timestamp"] == str(int(clock.now().timestamp()))
        mac = hmac.new(SECRET.encode(), headers["x-ordersync-timestamp"].encode() + b"." + body, hashlib.sha256)
        assert headers["x-ordersync-signature"] == "sha256=" + mac.hexdigest()
        row = by_delivery[headers["x-ordersync-delivery"]]
        assert row["message_id"] == envelope["message_id"] and row["state"] == "delivered"
        assert row["last_status"] == 204 and row["attempts"] == 1


def test_the_sink_refuses_a_wrong_signature_and_counts_a_repeated_delivery_once(crm: sink.Sink) -> None:
    import httpx

    from ordersync.adapters.webhooks import HttpWebhookSender
    from ordersync.ports.webhooks import WebhookRequest

    body = json.dumps({"message_id": "m1", "type": "order.accepted", "correlation_id": "o1"}).encode()
    good = WebhookRequest(crm.url, SECRET, "order.accepted", "d1", body, int(time.time()))
    sender = HttpWebhookSender(timeout=5)
    try:
        assert sender.send(good).status == 200
        assert sender.send(good).status == 200  # a retry after a lost answer: same delivery id
        assert sender.send(WebhookRequest(crm.url, "another-secret-of-16-chars", "order.accepted", "d2", body,
                                          int(time.time()))).status == 401
    finally:
        sender.close()
    summary = httpx.get(crm.url.replace("/hooks", "/")).json()
    assert summary["accepted"] == 1 and summary["duplicates"] == 1 and summary["refused"] == 1
    assert summary["by_type"] == {"order.accepted": 1} and crm.deliveries() == {"d1": 2}


# -- outcomes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (408, Outcome.RETRY), (429, Outcome.RETRY),
    (500, Outcome.RETRY), (503, Outcome.RETRY), (301, Outcome.REFUSED), (400, Outcome.REFUSED),
    (401, Outcome.REFUSED), (404, Outcome.REFUSED), (410, Outcome.REFUSED), (422, Outcome.REFUSED),
])
def test_statuses_are_delivered_retried_or_refused_for_good(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_a_500_is_retried_with_growing_backoff_under_the_same_delivery_id(hub: Hub, clock: FakeClock,
                                                                          crm: sink.Sink) -> None:
    answers = iter([500, 503])
    crm.respond = lambda _r: next(answers, 200)
    subscribe(hub, crm.url, "order.received")
    place(hub, "PO-RETRY")
    pump(hub)
    [row] = rows(hub)
    assert row["state"] == "pending" and row["attempts"] == 1 and row["last_status"] == 500
    first_wait = (row["next_attempt_at"] - clock.now()).total_seconds()
    assert 0.5 <= first_wait <= 1.0  # base 1 s with jitter
    clock.advance(first_wait - 0.1)
    pump(hub)
    assert len(crm.received()) == 1  # not due yet
    clock.advance(0.1)
    pump(hub)
    [row] = rows(hub)
    assert row["attempts"] == 2 and row["last_status"] == 503
    second_wait = (row["next_attempt_at"] - clock.now()).total_seconds()
    assert 1.0 <= second_wait <= 2.0  # doubled
    clock.advance(second_wait)
    pump(hub)
    [row] = rows(hub)
    assert row["state"] == "delivered" and row["attempts"] == 3
    assert [h["status"] for h in json.loads(row["history"])] == [500, 503, 200]
    assert [r.status for r in crm.received()] == [500, 503, 200]
    assert {r.delivery_id for r in crm.received()} == {row["delivery_id"]}
    assert hub.dead_letters.count() == 0


def test_after_max_attempts_a_failing_delivery_is_a_dead_letter_and_the_order_moves_on(
    hub: Hub, clock: FakeClock, crm: sink.Sink
) -> None:
    crm.respond = lambda r: 500 if r.event_type == "order.received" else 200
    subscribe(hub, crm.url)
    order_id = place(hub, "PO-EXHAUST", STEPS[:1])
    for _ in range(6):
        pump(hub)
        clock.advance(30)
    [letter] = hub.dead_letters.list()
    assert (letter.consumer, letter.type, letter.correlation_id, letter.reason) == (WEBHOOKS, "order.received",
                                                                                   order_id, "exhausted")
    assert letter.attempts == 4 and [h["status"] for h in letter.history] == [500] * 4
    assert "HTTP 500" in letter.error
    # the later events of the order were sent once the first one was dead-lettered, in order
    assert [r.event_type for r in arrivals(crm, order_id) if r.event_type.startswith("order.")] == [
        "order.state_changed", "order.state_changed"]


def test_a_permanent_4xx_is_dead_lettered_at_once_with_the_answer_and_replay_sends_it_again(
    hub: Hub, clock: FakeClock, crm: sink.Sink
) -> None:
    crm.respond = lambda r: 422 if r.event_type == "order.received" else 200
    subscribe(hub, crm.url)
    order_id = place(hub, "PO-410", STEPS[:1])
    pump(hub)
    [letter] = hub.dead_letters.list()
    assert letter.reason == "rejected" and letter.attempts == 1 and letter.correlation_id == order_id
    assert "HTTP 422" in letter.error and '"ok": false' in letter.error  # the receiver's answer is kept
    [dead] = [r for r in rows(hub) if r["state"] == "dead"]
    assert dead["last_status"] == 422 and '"ok": false' in dead["last_error"]
    assert len([r for r in crm.received() if r.status == 422]) == 1  # not retried

    crm.respond = None
    preview = hub.dead_letters.replay(DeadLetterFilter(ids=(letter.id,)), dry_run=True)
    assert [i.outlook for i in preview.items] == ["will run"]
    hub.dead_letters.replay(DeadLetterFilter(ids=(letter.id,)), dry_run=False)
    pump(hub)
    again = [r for r in crm.received() if r.delivery_id == dead["delivery_id"]]
    assert [r.status for r in again] == [422, 200]
    assert {r["delivery_id"]: r["state"] for r in rows(hub)}[dead["delivery_id"]] == "delivered"
    assert hub.dead_letters.count() == 0 and hub.dead_letters.get(letter.id).status == "replayed"
    assert {t: n for t, n in crm.counts().items() if t.startswith("order.")} == {"order.received": 1,
                                                                                "order.state_changed": 2}


# -- ordering, outages, runtime changes --------------------------------------------------------------------


def test_events_of_one_order_wait_for_its_earlier_one_while_another_order_proceeds(
    tmp_path: Path, clock: FakeClock, store_url: str, crm: sink.Sink
) -> None:
    hub = build_hub(settings(tmp_path, store_url), clock=clock)
    try:
        blocked: set[str] = set()
        crm.respond = lambda r: 503 if r.order_id in blocked else 200
        subscribe(hub, crm.url)
        a = place(hub, "PO-A")
        blocked.add(a)
        b = place(hub, "PO-B")
        for step in STEPS:  # interleaved: each order's events are written one after another
            for order_id in (a, b):
                with hub.uow() as uow:
                    move_order(uow, order_id, step, "test")
        pump(hub)
        seqs = seq_of(hub)
        assert len(arrivals(crm, b)) == 5 and len(arrivals(crm, a)) == 0
        tried_a = {r.delivery_id for r in crm.received() if r.order_id == a}
        assert len(tried_a) == 1  # only the first event of A was tried; its later ones wait
        blocked.clear()
        clock.advance(5)
        pump(hub)
        for order_id in (a, b):
            got = [seqs[r.message_id] for r in arrivals(crm, order_id) if r.message_id]
            with hub.db.read() as conn:
                expected = sorted(conn.execute(select(outbox.c.seq).where(outbox.c.correlation_id == order_id))
                                  .scalars())
            assert got == expected  # every event, once, in the order they happened
        assert all(n == 1 for n in crm.deliveries().values())
    finally:
        hub.close()


def test_a_subscriber_that_is_down_uses_no_attempts_is_probed_and_gets_everything_in_order_when_back(
    hub: Hub, clock: FakeClock
) -> None:
    port = free_port()
    sub_id = subscribe(hub, f"http://127.0.0.1:{port}/hooks")
    orders = [place(hub, f"PO-DOWN-{i}", STEPS) for i in range(3)]
    pump(hub)
    assert hub.webhooks is not None and sub_id in hub.webhooks.down()
    waits = {r["delivery_id"]: len(json.loads(r["history"])) for r in rows(hub)}
    assert sorted(waits.values()) == [0] * 12 + [1] * 3  # one try per order's first event, then everyone waits
    assert all(r["attempts"] == 0 and r["state"] == "pending" for r in rows(hub))
    clock.advance(5)
    pump(hub)  # one probe for the whole subscription, not one per order
    assert sum(len(json.loads(r["history"])) for r in rows(hub)) == 4
    with sink.start(port=port, secret=SECRET, tolerance_seconds=None) as crm:
        clock.advance(10)
        pump(hub)
        seqs = seq_of(hub)
        for order_id in orders:
            got = [seqs[r.message_id] for r in arrivals(crm, order_id) if r.message_id]
            assert len(got) == 5 and got == sorted(got)
    assert all(r["state"] == "delivered" and r["attempts"] == 1 for r in rows(hub))
    assert hub.dead_letters.count() == 0 and hub.webhooks.down() == {}


def test_a_subscription_added_while_the_worker_runs_gets_the_next_events_and_a_removed_one_none(
    tmp_path: Path, crm: sink.Sink
) -> None:
    hub = build_hub(settings(tmp_path))  # the system clock: a real worker with its periodic threads
    stop = threading.Event()
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), daemon=True)
    worker.start()
    service = SubscriptionService(type(hub.db)(hub.settings.store_url), hub.clock)  # like the CLI: its own store

    def fanned_out(order_id: str) -> bool:
        with hub.db.read() as conn:
            mids = list(conn.execute(select(outbox.c.message_id).where(outbox.c.correlation_id == order_id)).scalars())
            done = conn.execute(select(inbox.c.message_id).where(inbox.c.consumer == FANOUT,
                                                                   inbox.c.message_id.in_(mids))).scalars()
            return len(mids) > 0 and len(list(done)) == len(mids)

    def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    try:
        before = place(hub, "PO-BEFORE")
        until(lambda: fanned_out(before))
        _, info = service.add("crm", crm.url, ["order.received", "order.state_changed"], secret=SECRET)
        during = place(hub, "PO-DURING", STEPS[:1])
        until(lambda: len(arrivals(crm, during)) == 3)
        service.remove(info.id)
        after = place(hub, "PO-AFTER")
        until(lambda: fanned_out(after))
        time.sleep(0.3)  # a few sender polls
        assert {r.order_id for r in crm.received()} == {during}
        with hub.db.read() as conn:
            expected = list(conn.execute(select(outbox.c.message_id).where(outbox.c.correlation_id == during)
                                         .order_by(outbox.c.seq)).scalars())
        assert [r.message_id for r in arrivals(crm, during)] == expected
    finally:
        stop.set()
        worker.join(timeout=30)
        service.db.dispose()
        hub.close()


# -- managing subscriptions --------------------------------------------------------------------------------


def test_subscriptions_are_checked_when_added(hub: Hub) -> None:
    service = SubscriptionService(hub.db, hub.clock)
    with pytest.raises(ValidationFailed) as bad:
        service.add("", "ftp://crm", ["order.nothing", "order.ready_for_erp"], secret="short")
    text = str(bad.value)
    assert "http:// or https://" in text and "order.nothing" in text and "order.ready_for_erp" in text
    assert "name" in text and "16 characters" in text
    secret, info = service.add("notify", "https://notify.example/hook", ["order.accepted", "*"])
    assert info.types == ("*",) and len(secret) >= 32


def test_the_cli_adds_lists_and_removes_subscriptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    monkeypatch.setenv("CRM_SECRET", SECRET)
    added = invoke("subscriptions", "add", "CRM", "--url", "http://127.0.0.1:9/hooks", "--secret-env", "CRM_SECRET",
                   "--type", "order.accepted", "--type", "erp.shipment_changed")
    assert "order.accepted" in added and SECRET not in added
    made = invoke("subscriptions", "add", "Notify", "--url", "https://notify.example/in")
    [listed_crm, listed_notify] = json.loads(invoke("subscriptions", "list", "--json"))
    assert listed_crm["types"] == ["erp.shipment_changed", "order.accepted"] and listed_notify["types"] == ["*"]
    assert "secret" not in listed_crm and listed_crm["pending"] == 0
    assert made.strip().splitlines()[-1] not in json.dumps([listed_crm, listed_notify])  # generated, shown once
    assert "removed subscription" in invoke("subscriptions", "remove", listed_crm["id"])
    assert [x["name"] for x in json.loads(invoke("subscriptions", "list", "--json"))] == ["Notify"]
    assert len(json.loads(invoke("subscriptions", "list", "--all", "--json"))) == 2
