"""Operations in the dashboard, in Chromium: a finance user releases the credit hold of an order over
the customer's limit and sees it go on to the ERP; a dead letter (a webhook the CRM refused) is replayed
after a dry run, and the CRM receives it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ordersync.domain.clock import SystemClock
from ordersync.runtime.outbound import SubscriptionService
from tests.browser.conftest import Server
from tests.browser.pages import BUYER_SCOPES, add_to_cart, ops_sign_in, place_cart, portal_sign_in, reload_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_ops_releases_a_credit_hold_and_the_order_moves_on(browser: Any, page: Any, server: Server,
                                                           shot: Callable[[str], Path]) -> None:
    # C-1004 is close to its credit limit (demo profile): eight motors take it over
    buyer = browser.new_context(base_url=server.url)
    try:
        shop = buyer.new_page()
        portal_sign_in(shop, server.buyer(*BUYER_SCOPES, account="C-1004"))
        add_to_cart(shop, "MOT-IE3-4.0-4P", 8)
        order_id = place_cart(shop, po="PO-OVER-LIMIT")
        expect(shop.locator("#order-outcome")).to_have_attribute("data-kind", "held", timeout=30_000)
        expect(shop.locator("#hold-reason")).to_contain_text("credit")

        ops_sign_in(page, server.staff(), "/ops/cases?type=credit_hold")
        row = page.locator(f'#case-list tr[data-type="credit_hold"]:has(a[href="/ops/orders/{order_id}"])')
        expect(row).to_have_count(1)
        shot("queue")
        row.locator("a.case-link").click()
        expect(page.locator("#case-order")).to_have_attribute("data-order-state", "on_hold")
        page.fill("#action-comment", "limit raised by finance for this order")
        page.click("#action-release_hold")
        expect(page.locator("#flash")).to_have_attribute("data-done", "release_hold")
        expect(page.locator("#case-summary")).to_have_attribute("data-state", "resolved")
        order = page.locator("#case-order")
        reload_until(page, lambda: order.get_attribute("data-order-state") == "accepted")
        shot("released")

        shop.reload()  # the buyer sees it too
        expect(shop.locator("#order-state")).to_have_attribute("data-state", "accepted", timeout=30_000)
    finally:
        buyer.close()


class Crm:
    """A subscriber that refuses every delivery (422) until it is fixed, and records what it took."""

    def __init__(self) -> None:
        self.refusing = True
        self.received: list[dict[str, Any]] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = 422 if crm.refusing else 200
                if status == 200:
                    crm.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/events"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def crm(server: Server) -> Iterator[Crm]:
    sink = Crm()
    service = SubscriptionService(server.db, SystemClock())
    _, info = service.add("browser CRM", sink.url, ["order.accepted"], secret="browser-test-secret-0123")
    yield sink
    service.remove(info.id)
    sink.http.shutdown()


def test_a_dead_letter_is_replayed_after_a_dry_run(browser: Any, page: Any, server: Server, crm: Crm,
                                                   shot: Callable[[str], Path]) -> None:
    buyer = browser.new_context(base_url=server.url)
    try:
        shop = buyer.new_page()
        portal_sign_in(shop, server.buyer(*BUYER_SCOPES, account="C-1003"))
        add_to_cart(shop, "FIT-TEE-G12-SS", 50)
        order_id = place_cart(shop)
        expect(shop.locator("#order-state")).to_have_attribute("data-state", "accepted", timeout=30_000)
    finally:
        buyer.close()

    ops_sign_in(page, server.staff(), "/ops/dead-letters")
    letter = page.locator(f'#dlq-list tr[data-status="dead"]:has(a[href="/ops/orders/{order_id}"])')
    reload_until(page, lambda: letter.count() == 1)  # the CRM's 422 dead-letters the delivery at once
    letter_id = letter.get_attribute("data-dead-letter-id")
    shot("dead")

    page.check(f"#dlq-pick-{letter_id}")
    page.click("#dlq-preview")
    preview = page.locator(f"#dlq-preview-{letter_id}")
    expect(preview).to_have_attribute("data-outlook", "will run")
    expect(page.locator("#dlq-replay-confirm")).to_have_attribute("data-count", "1")
    shot("dry-run")
    assert crm.received == []  # the dry run sent nothing

    crm.refusing = False  # the CRM is fixed
    page.click("#dlq-replay-confirm")
    expect(page.locator("#flash")).to_have_attribute("data-replayed", "1")
    page.goto("/ops/dead-letters?status=all")
    expect(page.locator(f"#dlq-row-{letter_id}")).to_have_attribute("data-status", "replayed")
    reload_until(page, lambda: any(order_id in json.dumps(e) for e in crm.received))
    shot("replayed")
