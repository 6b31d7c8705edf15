"""The people side of the Shopify channel: ``ordersync shopify`` against a served Shopify double and the
in-memory ERP (connect, webhooks, reconcile, shops, events, map), and ``/ops/shopify`` showing a shop's
numbers to a signed-in operator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ordersync.bootstrap import build_hub
from ordersync.cli import app
from ordersync.config import ErpSettings, Settings, ShopifySettings, ShopifyShopSettings
from ordersync.runtime.hub import Hub
from ordersync.server import create_app
from tests.support.hub import settle
from tests.support.people import PASSWORD, staff
from tests.support.shopify import ShopifyDouble

SHOP = "kestrel"
WEBHOOKS = "https://hub.example.com/shopify/webhooks"
runner = CliRunner()


def seeded() -> ShopifyDouble:
    """A Plus shop selling two ERP products to one company the ERP knows (C-1001) and one it does not."""
    double = ShopifyDouble(plan="plus")
    warehouse = double.add_location("Hamburg")
    for sku, price in (("BRG-6204-2RS", "4.80"), ("FIT-ELB-G12-SS", "4.60")):
        double.add_product(sku, sku, price, {warehouse: 500})
    double.add_company("Rheinland Industrial Supply GmbH", external_id="C-1001",
                       locations=[{"name": "Düsseldorf", "external_id": "RIS-DUS", "currency": "EUR"}])
    double.add_company("Unbekannt AG", locations=[{"name": "Bonn", "tax_id": "DE999999999"}])
    return double


def location(double: ShopifyDouble, company: str) -> str:
    _, body = double.execute("{ companyLocations(first: 10) { nodes { id company { name } } } }")
    return str(next(n["id"] for n in body["data"]["companyLocations"]["nodes"] if n["company"]["name"] == company))


@pytest.fixture
def double() -> Iterator[ShopifyDouble]:
    yield seeded()


@pytest.fixture
def served(double: ShopifyDouble) -> Iterator[str]:
    with double.serve() as base_url:
        yield base_url


def configure(tmp_path: Path, api_url: str, **shop: Any) -> Path:
    values = {"name": SHOP, "domain": "kestrel-b2b.myshopify.com", "api_url": api_url, "token": "shpat_test",
              "secret": "whsec_test", "plan": "plus", "webhook_url": WEBHOOKS, **shop}
    (tmp_path / "ordersync.toml").write_text(
        '[[erp]]\nname = "main"\nkind = "memory"\n\n[[shopify.shops]]\n'
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return tmp_path


def shopify(data_dir: Path, *args: str) -> Any:
    return runner.invoke(app, ["shopify", *args, "--data-dir", str(data_dir)], catch_exceptions=False)


def one_red_line(result: Any) -> str:
    """The error: one line on stderr, nothing on stdout, no traceback."""
    assert result.stdout == "" and "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


# -- the command line -------------------------------------------------------------------------------------

def test_connect_names_the_shop_and_warns_when_the_configured_plan_is_not_the_shops(tmp_path: Path,
                                                                                     served: str) -> None:
    good = shopify(configure(tmp_path, served), "connect", SHOP)
    assert good.exit_code == 0, good.output
    assert "kestrel-b2b.myshopify.com" in good.stdout and "(Plus)" in good.stdout and "currency EUR" in good.stdout
    assert "warning" not in good.output
    standard = shopify(configure(tmp_path, served, plan="standard"), "connect", SHOP, "--json")
    assert standard.exit_code == 0
    said = json.loads(standard.stdout)
    assert said["plus"] is True and said["configured_plan"] == "standard" and said["currency"] == "EUR"
    assert len(said["warnings"]) == 1 and 'set plan = "plus"' in said["warnings"][0]


def test_connect_with_a_refused_token_or_no_shop_is_one_red_line_and_an_exit_code(tmp_path: Path,
                                                                                  served: str) -> None:
    refused = shopify(configure(tmp_path, served, token="shpat_wrong"), "connect", SHOP)
    assert refused.exit_code == 1
    line = one_red_line(refused)
    assert "Shopify refused" in line and "HTTP 401" in line and "access token" in line
    unknown = shopify(tmp_path, "connect", "nowhere")
    assert unknown.exit_code == 2 and "no Shopify shop named 'nowhere' (configured: kestrel)" in one_red_line(unknown)
    unreachable = shopify(configure(tmp_path, "http://127.0.0.1:9"), "connect", SHOP)
    assert unreachable.exit_code == 1 and "cannot be reached" in one_red_line(unreachable)


def test_webhooks_subscribes_each_topic_once_however_often_it_runs(tmp_path: Path, served: str,
                                                                   double: ShopifyDouble) -> None:
    data_dir = configure(tmp_path, served)
    double.subscribe("ORDERS_CREATE", "https://elsewhere.example.com/hooks")  # another app's: left alone
    first = json.loads(shopify(data_dir, "webhooks", SHOP, "--json").stdout)
    assert sorted(r["topic"] for r in first if r["state"] == "created") == sorted(
        ["ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_CANCELLED", "ORDERS_PAID", "ORDERS_EDITED"])
    assert [r["uri"] for r in first if r["state"] == "elsewhere"] == ["https://elsewhere.example.com/hooks"]
    again = shopify(data_dir, "webhooks", SHOP)
    assert again.exit_code == 0 and "0 created, 5 already there" in again.stdout
    _, body = double.execute("{ webhookSubscriptions(first: 50) { nodes { topic uri } } }")
    ours = [n["topic"] for n in body["data"]["webhookSubscriptions"]["nodes"] if n["uri"] == WEBHOOKS]
    assert sorted(ours) == sorted(set(ours)) and len(ours) == 5
    wrong = shopify(data_dir, "webhooks", SHOP, "--url", "https://hub.example.com/hooks")
    assert wrong.exit_code == 2 and "must end with /shopify/webhooks" in one_red_line(wrong)


def test_reconcile_json_takes_in_what_no_webhook_brought_and_map_lets_the_waiting_order_go_on(
        tmp_path: Path, served: str, double: ShopifyDouble) -> None:
    data_dir = configure(tmp_path, served)
    known = double.place_order(location(double, "Rheinland Industrial Supply GmbH"), [("BRG-6204-2RS", 20)])
    stranger = location(double, "Unbekannt AG")
    waiting = double.place_order(stranger, [("FIT-ELB-G12-SS", 5)])
    result = shopify(data_dir, "reconcile", SHOP, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    names = {gid: double.order(gid)["name"] for gid in (known, waiting)}
    assert report["shop"] == SHOP and report["seen"] == 2 and report["errors"] == []
    assert report["taken"] == [names[known]] and report["unmatched"] == [names[waiting]]
    again = json.loads(shopify(data_dir, "reconcile", SHOP, "--json").stdout)
    assert again["taken"] == [] and again["known"] == 1  # the watermark (minus the overlap) and the key hold

    (row,) = json.loads(shopify(data_dir, "shops", "--json").stdout)
    assert row["orders"] == {"taken": 1, "unmatched": 1} and row["token"] is True
    assert row["reconcile"]["unmatched"] == [names[waiting]] and row["watermark"]
    assert "kestrel-b2b.myshopify.com" in shopify(data_dir, "shops").stdout

    bad = shopify(data_dir, "map", SHOP, stranger, "C-9999")
    assert bad.exit_code == 1 and "C-9999 is not an active ERP account" in one_red_line(bad)
    mapped = shopify(data_dir, "map", SHOP, stranger, "C-1002")
    assert mapped.exit_code == 0, mapped.output
    assert f"1 waiting order(s) taken in: {names[waiting]}" in mapped.stdout
    (row,) = json.loads(shopify(data_dir, "shops", "--json").stdout)
    assert row["orders"] == {"taken": 2}
    assert json.loads(shopify(data_dir, "events", "--json").stdout) == []  # the sweep, not webhooks, brought them


# -- /ops/shopify -----------------------------------------------------------------------------------------

@pytest.fixture
def hub(tmp_path: Path, double: ShopifyDouble) -> Iterator[Hub]:
    shop = ShopifyShopSettings(name=SHOP, domain=double.shop, token=double.token, secret=double.secret, plan="plus",
                               webhook_url="http://testserver/shopify/webhooks")
    settings = Settings(data_dir=tmp_path / "hub", erp=[ErpSettings(name="main", kind="memory", retries=1)],
                        shopify=ShopifySettings(shops=[shop]))
    built = build_hub(settings, shopify_transport=double.transport())
    yield built
    built.close()


def test_ops_shopify_shows_a_shops_health_lag_refusals_reports_and_orders(hub: Hub, double: ShopifyDouble) -> None:
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    assert client.get("/ops/shopify", follow_redirects=False).status_code == 303  # signed in only
    signin = client.post("/ops/signin", data={"email": staff(hub), "password": PASSWORD, "next": "/ops/shopify"},
                         follow_redirects=False)
    assert signin.status_code == 303 and signin.headers["location"] == "/ops/shopify"

    double.webhooks.use_client(client)
    double.subscribe("ORDERS_CREATE", "http://testserver/shopify/webhooks")
    double.webhooks.duplicate_next(2)
    by_webhook = double.place_order(location(double, "Rheinland Industrial Supply GmbH"), [("BRG-6204-2RS", 10)])
    assert double.webhooks.deliver_due() == 2
    forged = client.post("/shopify/webhooks", content=b"{}", headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": double.shop,
        "X-Shopify-Hmac-Sha256": "Zm9yZ2Vk", "X-Shopify-Event-Id": "forged-1"})
    assert forged.status_code == 401
    hub.shopify.inbound.process_waiting()
    settle(hub)  # the worker's first round: the order's flow, and the scheduled sweep and pushes
    double.webhooks.drop_next()  # a webhook lost on the way: the next sweep finds its order
    by_sweep = double.place_order(location(double, "Rheinland Industrial Supply GmbH"), [("FIT-ELB-G12-SS", 4)])
    assert hub.shopify.inbound.reconcile(SHOP).taken == [double.order(by_sweep)["name"]]
    hub.shopify.syncs[SHOP].push_payment_terms()

    page = client.get("/ops/shopify")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert 'id="nav-shopify" href="/ops/shopify" aria-current="page"' in html
    assert "style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # CSP: no inline code
    assert re.search(r'id="shop-kestrel-health" data-health="ok"', html)
    assert 'id="shop-kestrel-token" data-token="yes"' in html
    lag = re.search(r'id="shop-kestrel-lag" data-sample="(\d+)" data-median="([\d.]+)" data-max="([\d.]+)"', html)
    assert lag and lag.group(1) == "1" and float(lag.group(2)) <= float(lag.group(3)) < 60
    assert 'data-state="processed" data-count="1"' in html
    assert all(f'id="shop-kestrel-push-{kind}" data-kind="{kind}"' in html for kind in ("prices", "stock", "terms"))
    assert 'id="shop-kestrel-refused" data-count="1"' in html and "forged-1" in html
    assert re.search(r'id="shop-kestrel-reconcile" data-seen="2" data-taken="1" data-unmatched="0" '
                     r'data-refused="0" data-errors="0"', html)
    points = re.search(r'id="shop-kestrel-throttle" data-points="([\d.]+)" data-throttled="(\d+)"', html)
    assert points and float(points.group(1)) > 0 and points.group(2) == "0"
    assert "10000 points" in html and "1000/s restored" in html  # Plus's budget, as Shopify reports it
    with hub.db.read() as conn:
        from ordersync.store import shopify as store

        links = {o["shopify_id"]: o["order_id"] for o in store.recent_orders(conn, SHOP)}
    for gid in (by_webhook, by_sweep):
        assert f'href="/ops/orders/{links[gid]}"' in html  # each Shopify order links to its hub order
