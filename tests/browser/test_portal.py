"""A buyer in the portal, in Chromium: signs in with the account's key, fills the cart from the catalog,
places the order and sees the hub accept it (the worker runs in the served process, on the demo
profile's ERP twin)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import BUYER_SCOPES as SCOPES
from tests.browser.pages import add_to_cart
from tests.browser.pages import portal_sign_in as sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

def test_buyer_places_an_order_and_sees_it_accepted(page: Any, server: Server, shot: Callable[[str], Path]) -> None:
    sign_in(page, server.buyer(*SCOPES, account="C-1001"))
    expect(page.locator("#account")).to_have_text("C-1001")
    bearing = page.locator('#catalog tr[data-sku="BRG-6204-2RS"]')
    expect(bearing.locator(".price")).to_contain_text("€")  # money as people read it (Babel, the browser's language)
    expect(bearing.locator(".atp").first).to_have_text(re.compile(r"\d"))
    shot("catalog")

    add_to_cart(page, "BRG-6204-2RS", 10)
    add_to_cart(page, "FIT-ELB-G12-SS", 100)
    expect(page.locator("#cart-count")).to_have_text("2")
    page.click("#cart-link")
    expect(page.locator('#cart tr[data-sku="BRG-6204-2RS"] .promise')).to_contain_text("from Plant North (Hamburg)")
    page.fill("#po", "PO-BROWSER-1")
    shot("cart")

    page.click("#place-order")
    expect(page).to_have_url(re.compile(r"/portal/orders/[0-9a-f]{32}"))
    expect(page.locator("#placed")).to_be_visible()
    # the page refreshes itself until the hub has decided
    expect(page.locator("#order-state")).to_have_attribute("data-state", "accepted", timeout=30_000)
    expect(page.locator("#order-outcome")).to_have_attribute("data-kind", "accepted")
    expect(page.locator("#allocations li.ships")).to_have_count(2)
    expect(page.locator("#cart-count")).to_have_text("0")
    shot("accepted")

    order_id = page.locator("#order-id").inner_text()
    page.click("#nav-orders")
    row = page.locator(f'#orders tr[data-order="{order_id}"]')
    expect(row).to_have_attribute("data-state", "accepted")  # its text: the state's one status text
    expect(row).to_contain_text("PO-BROWSER-1")


def test_buyer_sees_a_backorder_outcome(page: Any, server: Server, shot: Callable[[str], Path]) -> None:
    sign_in(page, server.buyer(*SCOPES, account="C-1002"))
    add_to_cart(page, "BRG-NU210-ECP", 10)  # 3 in stock, all at PLANT-N
    page.click("#cart-link")
    expect(page.locator("#cart-backorder")).to_be_visible()
    page.click("#place-order")
    expect(page.locator("#order-state")).to_have_attribute("data-state", "accepted", timeout=30_000)
    expect(page.locator("#order-outcome")).to_have_attribute("data-kind", "partial")
    expect(page.locator("#allocations li.backordered")).to_contain_text("7 \u00d7 BRG-NU210-ECP")
    expect(page.locator("#allocations li.ships")).to_contain_text("3 \u00d7 BRG-NU210-ECP ships from PLANT-N")
    shot("partial")
