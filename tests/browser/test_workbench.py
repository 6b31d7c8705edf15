"""The exception workbench in Chromium, at a desk (1440 px) and on a phone (390 px): a finance clerk opens a
credit hold and decides on the page (the customer, the credit limit and exposure, open invoices, the
order's lines and the limit that would release it), backs out of the confirmation that Cancel asks for,
then releases the order; an operations manager refreshes the queue without losing focus and assigns a
case to a team picked from the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import BUYER_SCOPES, add_to_cart, ops_sign_in, place_cart, portal_sign_in, reload_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESK = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def held_order(browser: Any, server: Server, po: str) -> str:
    """A buyer of C-1004 (near its credit limit in the demo profile) orders eight motors: held for credit."""
    buyer = browser.new_context(base_url=server.url)
    try:
        shop = buyer.new_page()
        portal_sign_in(shop, server.buyer(*BUYER_SCOPES, account="C-1004"))
        add_to_cart(shop, "MOT-IE3-4.0-4P", 8)
        order_id = place_cart(shop, po=po)
        expect(shop.locator("#order-outcome")).to_have_attribute("data-kind", "held", timeout=30_000)
        return order_id
    finally:
        buyer.close()


def no_sideways_scroll(page: Any) -> None:
    page.wait_for_load_state()  # after a click that navigates: measure the new page, once it is there
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide at {PHONE['width']} px"


def open_case_of(page: Any, order_id: str) -> None:
    row = page.locator(f'#case-list tr[data-type="credit_hold"]:has(a[href="/ops/orders/{order_id}"])')
    expect(row).to_have_count(1)
    row.locator("a.case-link").click()
    expect(page.locator("#case-order")).to_have_attribute("data-order-id", order_id)


def test_a_finance_clerk_decides_a_credit_hold_on_the_page(browser: Any, page: Any, server: Server,
                                                          shot: Callable[[str], Path]) -> None:
    order_id = held_order(browser, server, "PO-WB-CREDIT")
    page.set_viewport_size(DESK)
    ops_sign_in(page, server.staff("finance", name="Fiona Finance"), "/ops/cases?view=finance")
    row = page.locator(f'#case-list tr[data-type="credit_hold"]:has(a[href="/ops/orders/{order_id}"])')
    expect(row).to_contain_text("PO-WB-CREDIT")  # the order number, not an id
    expect(row).to_contain_text("Ostsee Pumpen")  # the customer's name
    expect(row.locator('td[data-label="Amount"]')).to_contain_text(re.compile(r"\d"))
    expect(page.locator("#count-finance")).to_have_text(re.compile(r"[1-9]\d*"))
    shot("queue-1440")
    open_case_of(page, order_id)

    panel = page.locator("#credit-panel")
    expect(panel.locator("#credit-customer")).to_contain_text("Ostsee Pumpen")
    expect(panel.locator("#credit-limit")).to_contain_text(re.compile(r"\d"))
    expect(panel.locator("#credit-exposure")).to_contain_text(re.compile(r"\d"))
    expect(panel.locator("#credit-open-invoices")).to_be_visible()
    expect(panel.locator("#credit-lines tr[data-line='1']")).to_contain_text("MOT-IE3-4.0-4P")
    expect(panel.locator("#credit-needed")).to_contain_text("releases this order")
    expect(page.locator("#raise-amount")).not_to_have_value("")
    shot("credit-hold-1440")

    # Cancel asks first; going back changes nothing
    page.fill("#action-comment", "checking with accounts payable")
    page.click("#action-cancel")
    confirm = page.locator("#case-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("cannot be undone")
    shot("cancel-confirmation-1440")
    page.click("#confirm-no")
    expect(page.locator("#case-confirm")).to_have_count(0)
    expect(page.locator("#case-order")).to_have_attribute("data-order-state", "on_hold")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#credit-panel")).to_be_visible()
    no_sideways_scroll(page)
    shot("credit-hold-390")

    page.fill("#action-comment", "paid by wire today; limit raise requested")
    page.click("#action-release_hold")
    expect(page.locator("#flash")).to_have_attribute("data-done", "release_hold")
    expect(page.locator("#case-summary")).to_have_attribute("data-state", "resolved")
    order = page.locator("#case-order")
    reload_until(page, lambda: order.get_attribute("data-order-state") == "accepted")
    expect(page.locator("#case-history li[data-action='release']")).to_contain_text("Fiona Finance")
    shot("released-390")


def test_an_operations_manager_assigns_a_case_to_a_team_from_the_list(browser: Any, page: Any, server: Server,
                                                                     shot: Callable[[str], Path]) -> None:
    order_id = held_order(browser, server, "PO-WB-ASSIGN")
    page.set_viewport_size(DESK)
    ops_sign_in(page, server.staff("operations", name="Otto Operations"), "/ops/cases?type=credit_hold")
    # the list refreshes in place: the button keeps the focus, the page is not reloaded
    page.focus("#case-refresh")
    page.evaluate("window.__kept = true")
    page.keyboard.press("Enter")
    expect(page.locator("#case-refreshed")).to_contain_text("UTC")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__kept === true && document.activeElement.id") == "case-refresh"
    open_case_of(page, order_id)

    options = page.locator("#action-owner-team optgroup[label='Teams'] option")
    expect(options).to_contain_text(["commerce", "finance", "integration", "operations"])
    page.select_option("#action-owner-team", "operations")
    page.fill("#assign-comment", "the customer's ERP master data looks wrong")
    shot("assign-1440")
    page.click("#action-assign")
    expect(page.locator("#flash")).to_have_attribute("data-done", "assign")
    expect(page.locator("#case-owner")).to_have_text("operations")
    expect(page.locator("#case-history li[data-action='assign']")).to_contain_text("to operations")

    page.set_viewport_size(PHONE)
    page.goto("/ops/cases?owner=operations")
    expect(page.locator(f'#case-list tr:has(a[href="/ops/orders/{order_id}"])')).to_have_count(1)
    no_sideways_scroll(page)
    shot("queue-390")
