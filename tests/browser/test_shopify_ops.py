"""``/ops/shopify`` in Chromium: a Shopify B2B company the ERP does not know orders (its Austrian depot has its
own VAT id, so neither external id nor tax id finds the account); the order waits. An operator signs in,
sees it waiting on the page, maps the company location to its ERP account (C-1002), confirms, and sees the
order taken in, with a link to its timeline.

The hub is a real ``ordersync serve`` whose configuration has a shop whose Admin API is a Shopify double
served from this process; the double's webhooks reach the hub over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ordersync.devkit.shopify import ShopifyDouble
from tests.browser.conftest import CONFIG, Server, serve_hub
from tests.browser.pages import ops_sign_in, reload_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COMPANY, DEPOT = "Alpen Field Service", "Innsbruck Service Depot"


@pytest.fixture(scope="module")
def shopify() -> Iterator[ShopifyDouble]:
    double = ShopifyDouble(plan="plus")
    hamburg = double.add_location("Hamburg")
    double.add_product("BRG-6204-2RS", "Deep groove ball bearing 6204-2RS", "7.80", {hamburg: 500})
    double.add_company(COMPANY, locations=[{"name": DEPOT, "tax_id": "ATU61234567", "currency": "EUR"}])
    double.start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shopify: ShopifyDouble) -> Iterator[Server]:
    """This module's hub (it overrides the package's): the demo ERP twin and one Shopify shop, the double."""
    shop = {"name": "alpine", "domain": shopify.shop, "api_url": shopify.base_url, "token": shopify.token,
            "secret": shopify.secret, "plan": "plus"}
    config = CONFIG + "\n[[shopify.shops]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in shop.items())
    with serve_hub(tmp_path_factory.mktemp("shopify-hub"), config) as hub:
        shopify.subscribe("ORDERS_CREATE", f"{hub.url}/shopify/webhooks")
        shopify.webhooks.start(interval=0.05)
        yield hub


def test_an_operator_maps_a_waiting_shopify_company_and_its_order_is_taken_in(
        page: Any, server: Server, shopify: ShopifyDouble, shot: Callable[[str], Path]) -> None:
    _, body = shopify.execute("{ companyLocations(first: 5) { nodes { id } } }")
    location = body["data"]["companyLocations"]["nodes"][0]["id"]
    order = shopify.place_order(location, [("BRG-6204-2RS", 12)], po_number="PO-AFS-IBK-7")
    name = shopify.order(order)["name"]

    ops_sign_in(page, server.staff("operations", name="Dana Keller"), "/ops/shopify")
    waiting = page.locator(f'#waiting article[data-location-id="{location}"]')
    reload_until(page, lambda: waiting.count() == 1)  # the webhook came, the worker found no account
    expect(waiting).to_contain_text(COMPANY)
    expect(waiting).to_contain_text(DEPOT)
    expect(waiting).to_contain_text("ATU61234567")
    expect(waiting.locator(f'tr:has-text("{name}")')).to_contain_text("matches no ERP account")
    expect(page.locator("#waiting")).to_have_attribute("data-count", "1")
    shot("waiting")

    waiting.get_by_label(f"ERP account for {COMPANY}, {DEPOT}").select_option("C-1002")
    waiting.get_by_role("button", name="Map…").click()
    question = page.locator("#map-question")
    expect(question).to_have_text(f"Map {COMPANY}, {DEPOT} to C-1002 Alpen Field Service GmbH?")
    expect(page.locator("#map-consequence")).to_contain_text(f"1 waiting order will be taken in ({name})")
    expect(page.locator("#map-confirm")).to_have_text("Map and take 1 order in")
    expect(page.locator("#map-cancel")).to_be_visible()
    shot("confirm")

    page.click("#map-confirm")
    flash = page.locator("#flash")
    expect(flash).to_have_attribute("data-taken", "1")
    expect(flash).to_contain_text(f"Mapped {COMPANY}, {DEPOT} to ERP account C-1002 Alpen Field Service GmbH; "
                                  f"1 order taken in: {name} (hub order ")
    expect(flash).to_contain_text("By Dana Keller, just now.")
    expect(page.locator("#waiting")).to_have_attribute("data-count", "0")
    expect(page.locator(f'tr[data-shopify-id="{order}"]')).to_have_attribute("data-state", "taken")
    shot("mapped")

    link = flash.locator("a.taken")
    order_id = link.get_attribute("data-order-id")
    link.click()
    expect(page).to_have_url(re.compile(f"/ops/orders/{order_id}$"))
    expect(page.locator("#order-summary")).to_have_attribute("data-order-id", str(order_id))
    expect(page.locator("#order-summary")).to_contain_text("C-1002")
    shot("order")
