"""A buyer buying in the portal on a phone (390 px wide, German browser): prices and stock as they read them,
the pack-size rule shown and kept, a cart line to fix, a quick order pasted from a spreadsheet, the
ship-to picked from the company's addresses, and a reload of a form's address that lands on its page.
No page scrolls sideways."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import BUYER_SCOPES as SCOPES
from tests.browser.pages import add_to_cart, portal_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}


def no_sideways_scroll(page: Any) -> None:
    page.wait_for_load_state()  # after a click that navigates: measure the new page, once it is there
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide at {PHONE['width']} px"


def test_buying_on_a_phone(page: Any, server: Server, shot: Callable[[str], Path]) -> None:
    page.set_viewport_size(PHONE)
    page.set_extra_http_headers({"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    portal_sign_in(page, server.buyer(*SCOPES, account="C-1001"))

    # the catalog: money and stock in German, plants by name, the pack rule where the item is
    bearing = page.locator('#catalog tr[data-sku="BRG-6204-2RS"]')
    expect(bearing.locator(".price")).to_have_text(re.compile(r"^\s*\d+,\d\d\s€"))
    expect(page.locator("#catalog thead")).to_contain_text("Plant North (Hamburg)")
    fitting = page.locator('#catalog tr[data-sku="FIT-PTC-8MM"]')
    expect(fitting.locator(".rules")).to_contain_text("minimum 50, multiples of 10")
    expect(fitting.locator('input[name="quantity"]')).to_have_value("50")
    no_sideways_scroll(page)
    shot("catalog-390")

    # 55 is not a quantity it is sold in: the browser says so before anything is sent
    fitting.locator('input[name="quantity"]').fill("55")
    fitting.locator("button.add-to-cart").click()
    assert fitting.locator('input[name="quantity"]').evaluate("e => e.validity.stepMismatch")
    expect(page.locator("#cart-count")).to_have_text("0")
    add_to_cart(page, "FIT-PTC-8MM", 60)
    add_to_cart(page, "BRG-6204-2RS", 10)

    # the cart keeps a line that breaks the rule and says what to change
    page.click("#cart-link")
    page.locator('#cart tr[data-sku="FIT-PTC-8MM"] input.qty').fill("45")
    page.click("#update-cart")
    line = page.locator('#cart tr[data-sku="FIT-PTC-8MM"]')
    expect(line).to_have_class("needs-fix")
    expect(line.locator(".line-problems")).to_contain_text("minimum order quantity is 50")
    expect(page.locator("#place-order")).to_be_disabled()
    expect(page.locator("#cart-total")).to_have_text(re.compile(r"\d,\d\d\s€$"))
    no_sideways_scroll(page)
    shot("cart-fix-390")
    line.locator("button.fix").click()
    expect(page.locator('#cart tr[data-sku="FIT-PTC-8MM"] input.qty')).to_have_value("50")
    expect(page.locator("#place-order")).to_be_enabled()

    # a quick order pasted from a spreadsheet (the customer's own part numbers), previewed line by line
    page.click("#nav-quick-order")
    page.fill("#quick-lines", "Part;Quantity\nRIS-220-0412;100\nRIS-510-1201;4\nXYZ-404;2\nFIT-TEE-G12-SS;15")
    page.click("#quick-preview-button")
    expect(page.locator("#quick-header")).to_be_visible()
    expect(page.locator('#quick-preview tr[data-line="2"]')).to_have_class("recognised")
    expect(page.locator('#quick-preview tr[data-line="2"]')).to_contain_text("FIT-ELB-G12-SS")
    expect(page.locator('#quick-preview tr[data-line="4"]')).to_contain_text("XYZ-404 is not in your catalog")
    expect(page.locator('#quick-preview tr[data-line="5"]')).to_contain_text("sold in multiples of 10")
    no_sideways_scroll(page)
    shot("quick-order-390")
    page.click("#quick-add")
    expect(page).to_have_url(re.compile(r"/portal/cart\?added=2$"))
    expect(page.locator("#cart-count")).to_have_text("4")

    # ship to the Stuttgart address and place the order
    page.check('input[name="ship_to_id"][value="RIS-STR"]')
    page.fill("#po", "PO-PHONE-1")
    no_sideways_scroll(page)
    page.click("#place-order")
    expect(page).to_have_url(re.compile(r"/portal/orders/[0-9a-f]{32}"))
    expect(page.locator("#cart-count")).to_have_text("0")

    # the address a form was posted to, opened again: its page, never a bare 405
    page.goto("/portal/cart/checkout")
    expect(page).to_have_url(re.compile(r"/portal/cart$"))
    expect(page.locator("#cart-empty")).to_be_visible()
    no_sideways_scroll(page)
