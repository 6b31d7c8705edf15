"""The dashboard's overview in Chromium: its charts are drawn (inline SVG, labelled, with their numbers in
a table), readable at 1440 and 390 px (labels of 12 px or more, no horizontal scrolling), nothing breaks
the CSP, a hold is shown apart from the hub's acknowledgment clock, the invoice-sync clock the ERP twin
cannot time is hidden with the reason, and the 10-second refresh keeps keyboard focus (and an open table)
where it was."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import ops_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS = ("throughput-chart", "backlog-chart", "ageing-chart", "latency-chart", "holds-chart", "cases-chart",
          "dead-letters-chart")

#: the smallest label on screen, in CSS px: each SVG text's font size times the drawing's scale
SMALLEST_LABEL = """() => Math.min(...[...document.querySelectorAll('svg.chart')].flatMap(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return [...svg.querySelectorAll('text')].map(t => parseFloat(getComputedStyle(t).fontSize) * scale);
}))"""


def _place(server: Server, account: str, sku: str, quantity: int, ship_to: str | None = None) -> str:
    """An order through the API (the portal's own pages are tested elsewhere); its id."""
    key = server.key("orders:read", "orders:write", account=account, client="dealer_app")
    body = {"external_order_number": f"OV-{uuid.uuid4().hex[:8]}",
            "ship_to_id": ship_to, "lines": [{"line_no": 1, "sku": sku, "quantity": str(quantity)}]}
    r = httpx.post(f"{server.url}/v1/orders", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 202, r.text
    order_id: str = r.json()["order_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.url}/v1/orders/{order_id}", headers={"Authorization": f"Bearer {key}"},
                          timeout=10).json().get("state")
        if state in ("accepted", "on_hold", "rejected"):
            return order_id
        time.sleep(0.3)
    raise AssertionError(f"order {order_id} did not settle in 30 s")


def _orders(server: Server) -> None:
    """One order accepted (C-1001) and one held for finance (C-1004 over its credit limit)."""
    _place(server, "C-1001", "BRG-6204-2RS", 10, ship_to="RIS-DUS")
    _place(server, "C-1004", "MOT-IE3-4.0-4P", 8)


def test_overview_charts_are_readable_at_desktop_and_phone_width(browser: Any, page: Any, server: Server,
                                                                shot: Callable[[str], Path]) -> None:
    _orders(server)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.set_viewport_size({"width": 1440, "height": 1000})
    ops_sign_in(page, server.staff())
    for chart in CHARTS:
        svg = page.locator(f"svg#{chart}")
        expect(svg).to_have_attribute("role", "img")
        title = page.locator(f"#{chart}-title")
        assert title.text_content(), chart
        assert page.locator(f"#{chart}-desc").text_content(), chart
    assert int(page.locator("#throughput-chart").get_attribute("data-total") or 0) >= 2
    expect(page.locator('#backlog-chart g.bar[data-state="on_hold"]')).to_have_attribute("data-count", "1")
    expect(page.locator('#backlog-chart g.bar[data-state="on_hold"] rect')).to_have_count(1)
    # the numbers behind a chart: the same count in its table
    page.locator("#backlog summary").click()
    expect(page.locator("#backlog-data table")).to_be_visible()
    expect(page.locator("#backlog-data tr", has_text="on hold").locator("td")).to_have_text("1")
    # the hold is people's time: counted apart, not as the hub's acknowledgment breach
    expect(page.locator("#sla-holds")).to_have_attribute("data-open", "1")
    expect(page.locator("#sla-acknowledgment")).to_have_attribute("data-breached", "0")
    # the twin keeps invoice dates only: the clock is hidden, and the page says why
    hidden = page.locator("#sla-invoice_sync")
    expect(hidden).to_have_attribute("data-hidden", "true")
    expect(hidden).to_contain_text("posting date")
    assert page.evaluate(SMALLEST_LABEL) >= 12
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    shot("1440")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#throughput-chart")).to_be_visible()
    smallest = page.evaluate(SMALLEST_LABEL)
    assert smallest >= 12, f"a chart label is {smallest:.1f} px at 390 px wide"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
    shot("390")
    assert violations == []


def test_the_refresh_redraws_and_keeps_keyboard_focus_and_open_tables(page: Any, server: Server,
                                                          shot: Callable[[str], Path]) -> None:
    ops_sign_in(page, server.staff())
    page.wait_for_function("() => window.htmx !== undefined")
    # a link in a tile, with the keyboard; an open table of numbers beside it
    page.locator("#throughput summary").click()
    link = page.locator("#pipeline-accepted a")
    link.focus()
    page.evaluate("() => { window.focusedBefore = document.activeElement; }")
    total = int(page.locator("#throughput-chart").get_attribute("data-total") or 0)
    _place(server, "C-1001", "BRG-6204-2RS", 2, ship_to="RIS-DUS")  # a new order, while the link has focus
    page.wait_for_function("total => +document.querySelector('#throughput-chart').dataset.total > total",
                           arg=total, timeout=25_000)  # the 10-second poll drew the chart again
    expect(page.locator("#tile-orders-value")).to_have_attribute("data-count", str(total + 1))
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.activeElement === window.focusedBefore && window.focusedBefore.isConnected")
    expect(link).to_be_focused()
    expect(page.locator("#throughput details")).to_have_attribute("open", "")
    # the Refresh button, with the keyboard: the figures come again and the button keeps focus
    button = page.locator("#refresh-button")
    button.focus()
    page.evaluate("() => { window.focusedBefore = document.activeElement; }")
    before = page.locator("#as-of").get_attribute("datetime")
    page.keyboard.press("Enter")
    page.wait_for_function("before => document.querySelector('#as-of').getAttribute('datetime') !== before",
                           arg=before, timeout=10_000)
    assert page.evaluate("() => document.activeElement === window.focusedBefore")
    expect(button).to_be_focused()
    assert page.url.endswith("/ops")
    shot("after-refresh")
