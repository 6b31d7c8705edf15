"""Steps the browser tests share: signing people in to the portal and the dashboard, filling the cart."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.support.people import PASSWORD

BUYER_SCOPES = ("catalog:read", "orders:read", "orders:write", "returns:write")


def portal_sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Sign a buyer in with their password (``Server.buyer`` makes one)."""
    page.goto("/portal/")
    expect(page).to_have_url(re.compile(r"/portal/signin"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(r"/portal/catalog"))


def add_to_cart(page: Any, sku: str, quantity: int) -> None:
    row = page.locator(f'#catalog tr[data-sku="{sku}"]')
    row.locator('input[name="quantity"]').fill(str(quantity))
    row.locator("button.add-to-cart").click()
    expect(page.locator("#added")).to_contain_text(sku)


def place_cart(page: Any, po: str = "") -> str:
    """Place the cart from the cart page; the new order's id."""
    page.click("#cart-link")
    if po:
        page.fill("#po", po)
    page.click("#place-order")
    expect(page).to_have_url(re.compile(r"/portal/orders/[0-9a-f]{32}"))
    order_id: str = page.locator("#order-id").inner_text()
    return order_id


def ops_sign_in(page: Any, email: str, target: str = "/ops", password: str = PASSWORD) -> None:
    """Sign a staff member in with their password (``Server.staff`` makes one)."""
    page.goto(target)
    expect(page).to_have_url(re.compile(r"/ops/signin"))
    page.fill("#signin-email", email)
    page.fill("#signin-password", password)
    page.click("#signin-submit")
    expect(page).not_to_have_url(re.compile(r"/ops/signin"))


def reload_until(page: Any, done: Callable[[], bool], seconds: float = 30.0) -> None:
    """Reload the page until ``done()`` holds (pages without a refresh of their own)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url} did not reach the expected state in {seconds} s")
        time.sleep(0.3)
        page.reload()
