"""Shopify B2B order to fulfillment against a real Tryton and the Shopify double (Shopify's own Admin
schema, its cost accounting, webhooks signed and delivered like Shopify's): a real ``ordersync serve``
process takes webhooks over HTTP, the CLI registers them, pushes the company's contract prices and the
plants' stock, and reconciles. A company orders; its webhook comes three times and out of order and the
sweep runs too: one Tryton sale. A webhook the double drops is recovered by the sweep. Tryton ships: the
fulfillment with its carrier and tracking number appears in Shopify. Two stock writers racing a seller
never leave an item wrong."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordersync.adapters.erp.factory import make_erp
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import free_port
from ordersync.ports.erp import order_reference
from tests.contract.drivers import TrytonDriver
from tests.e2e.test_subscriber_outage import serve, stop, until
from tests.support.shopify import ShopifyDouble
from tests.support.tryton import admin, erp_settings, sales_by_reference

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(600)]

MAIN = demo_data.profile("main")
ACCOUNT = "C-1001"
SKUS = ("BRG-6204-2RS", "FIT-ELB-G12-SS", "SEN-PX-M12-NPN")
SHOP = "kestrel"


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


class Store:
    """The double, served, with the demo's plants as locations and one B2B company of C-1001."""

    def __init__(self) -> None:
        self.d = ShopifyDouble(plan="plus")
        self.hamburg = self.d.add_location("Hamburg")
        self.augsburg = self.d.add_location("Augsburg")
        for sku in SKUS:
            product = demo_data.product(MAIN, sku)
            self.d.add_product(sku, product["name"], str(product["list_price"]), {self.hamburg: 7, self.augsburg: 7})
        company = self.d.add_company("Rheinland Industrial Supply GmbH", external_id=ACCOUNT, locations=[
            {"name": "Werk Düsseldorf", "external_id": "RIS-DUS", "currency": "EUR"}])
        self.buyer = company["locations"][0]
        self.url = self.d.start()

    def item(self, sku: str) -> str:
        return str(self.d.variant_by_sku(sku)["inventory_item_id"])


@pytest.fixture
def shop() -> Iterator[Store]:
    store = Store()
    yield store
    store.d.stop()


def configure(data_dir: Path, tryton: Any, store: Store, port: int) -> None:
    erp = erp_settings(tryton, retries=1, reset_timeout=1)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "ordersync.toml").write_text(f"""
[[erp]]
name = "main"
kind = "tryton"
url = "{erp.url}"
database = "main"
login = "{erp.login}"
password = "{erp.password}"
retries = 1
reset_timeout = 1.0

[shopify]
poll_seconds = 0.2
base_seconds = 0.5
cap_seconds = 2.0

[[shopify.shops]]
name = "{SHOP}"
domain = "{store.d.shop}"
api_url = "{store.url}"
token = "{store.d.token}"
secret = "{store.d.secret}"
plan = "plus"
webhook_url = "http://127.0.0.1:{port}/shopify/webhooks"
reconcile_minutes = 600
stock_minutes = 0
prices_minutes = 0
quantity_breaks = [10, 100]
locations = {{ "PLANT-N" = "{store.hamburg}", "PLANT-S" = "{store.augsburg}" }}
""")


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ordersync.cli", "shopify", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def hub_orders(data_dir: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(data_dir / "ordersync.db") as db:
        return list(db.execute("SELECT id, state, external_order_number FROM orders WHERE channel = 'shopify-kestrel'"
                               " ORDER BY received_at"))


def atp(tryton: Any, sku: str, plant: str) -> int:
    erp = make_erp(erp_settings(tryton))
    try:
        return max(0, int(next(p.available_to_promise for p in erp.availability([sku]) if p.plant == plant)))
    finally:
        close = getattr(erp, "close", None)
        if close:
            close()


@pytest.fixture
def running(tmp_path: Path, tryton: Any, shop: Store) -> Iterator[Path]:
    data_dir, port = tmp_path / "hub", free_port()
    configure(data_dir, tryton, shop, port)
    hub = serve(data_dir, port, tmp_path / "serve.log")
    shop.d.webhooks.start(interval=0.05)
    try:
        yield data_dir
    finally:
        shop.d.webhooks.stop()
        stop(hub)


def test_a_company_orders_once_gets_its_prices_and_stock_and_sees_its_fulfillment_with_tracking(
        tryton: Any, shop: Store, running: Path) -> None:
    data_dir, d = running, shop.d
    out = cli(data_dir, "webhooks", SHOP)
    assert "ORDERS_CREATE" in out
    again = cli(data_dir, "webhooks", SHOP)  # again: nothing more
    assert "ORDERS_CREATE" in again
    cli(data_dir, "sync", SHOP)
    # the company's catalog has its contract prices, the locations the plants' available-to-promise
    [catalog] = [c for c in d.catalogs if shop.buyer in c["company_location_ids"]]
    price_list = catalog["price_list_id"]
    for sku in SKUS:
        variant = d.variant_by_sku(sku)["id"]
        assert d.fixed_price(price_list, variant) == demo_data.contract_price(MAIN, ACCOUNT, sku, 1), sku
        assert d.available(shop.item(sku), shop.hamburg) == atp(tryton, sku, "PLANT-N"), sku
        assert d.available(shop.item(sku), shop.augsburg) == atp(tryton, sku, "PLANT-S"), sku
    assert d.quantity_breaks(price_list, d.variant_by_sku("BRG-6204-2RS")["id"])  # C-1001: 20 % off from 100

    # one order: its orders/create comes three times, after its orders/paid; and the sweep runs too
    d.webhooks.hold()
    d.webhooks.duplicate_next(3)
    gid = d.place_order(shop.buyer, [("BRG-6204-2RS", 20), ("FIT-ELB-G12-SS", 10)], po_number="RIS-77", paid=True)
    d.webhooks.release("reverse")
    until(lambda: [s for _, s, _ in hub_orders(data_dir)] == ["accepted"], 120, lambda: hub_orders(data_dir))
    report = json.loads(cli(data_dir, "reconcile", SHOP, "--json").strip().splitlines()[-1])
    assert report["taken"] == [] and report["known"] >= 1
    [(order_id, _, number)] = hub_orders(data_dir)
    assert number == gid.rsplit("/", 1)[1]
    reference = order_reference(order_id, "PLANT-N")
    assert {ref: len(states) for ref, states in sales_by_reference(tryton, order_reference(order_id, "")).items()} \
        == {reference: 1}

    # a webhook the double drops: the sweep brings the order
    d.webhooks.drop_next()
    dropped = d.place_order(shop.buyer, [("SEN-PX-M12-NPN", 5)], po_number="RIS-78")
    time.sleep(2)
    assert len(hub_orders(data_dir)) == 1
    report = json.loads(cli(data_dir, "reconcile", SHOP, "--json").strip().splitlines()[-1])
    assert report["taken"] == [d.order(dropped)["name"]]
    until(lambda: [s for _, s, _ in hub_orders(data_dir)] == ["accepted", "accepted"], 120,
          lambda: hub_orders(data_dir))
    second = hub_orders(data_dir)[1][0]
    assert sum(len(s) for s in sales_by_reference(tryton, order_reference(second, "")).values()) == 1

    # Tryton ships the first order: the fulfillment with carrier and tracking appears in Shopify
    client = admin(tryton)
    try:
        TrytonDriver(client).ship(reference)
    finally:
        client.close()
    until(lambda: bool(d.fulfillments(gid)), 120, lambda: d.fulfillments(gid))
    [fulfillment] = d.fulfillments(gid)
    assert fulfillment["tracking_number"] and fulfillment["tracking_company"], fulfillment
    assert sorted((line["sku"], Decimal(str(line["quantity"]))) for line in fulfillment["line_items"]) == \
        [("BRG-6204-2RS", Decimal(20)), ("FIT-ELB-G12-SS", Decimal(10))]


def test_two_stock_writers_racing_a_seller_never_leave_an_item_wrong(tryton: Any, shop: Store,
                                                                     running: Path) -> None:
    data_dir, d = running, shop.d
    sku = "BRG-6204-2RS"
    item = shop.item(sku)
    cli(data_dir, "sync", SHOP, "--stock")
    selling = threading.Event()
    selling.set()
    sold: list[int] = []
    stale: list[int] = []

    def seller() -> None:
        for n in range(40):
            d.sell(item, shop.hamburg, 1)
            sold.append(n)
            time.sleep(0.15)
        selling.clear()

    def writer() -> None:
        while selling.is_set():
            report = json.loads(cli(data_dir, "sync", SHOP, "--stock", "--json").strip().splitlines()[-1])
            stale.append(report["stock"]["stale_retries"])

    threads = [threading.Thread(target=seller), threading.Thread(target=writer), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    cli(data_dir, "sync", SHOP, "--stock")  # the push after the last sale
    assert len(sold) == 40 and len(stale) >= 4  # both writers pushed again and again while the seller sold
    assert sum(stale) > 0  # and writes were refused as stale (a sale came between a read and a write)
    assert d.available(item, shop.hamburg) == atp(tryton, sku, "PLANT-N")
    assert d.available(item, shop.augsburg) == atp(tryton, sku, "PLANT-S")
