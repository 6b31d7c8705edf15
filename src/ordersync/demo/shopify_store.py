"""The demo's Shopify B2B store: Kestrel's own Shopify Plus shop, played by the Shopify double
(:mod:`ordersync.devkit.shopify`, Shopify's real Admin schema, cost budget and webhooks), served on a
local port. Three B2B companies buy there:

- Alpen Field Service GmbH (ERP account C-1002), matched by its VAT number (its Shopify company has no
  external id), ordering for its Nürnberg site (the ship-to);
- Rheinland Industrial Supply GmbH (C-1001), matched by its external id (its company in Shopify carries
  the ERP account number);
- Nordlicht Technik ApS, whom the ERP does not know: its order waits and a case asks for a mapping.

The hub registers its webhooks, pushes the contract prices into one catalog per company, the plants'
stock into the two Shopify locations and the payment terms; then the companies order. One order's
webhook arrives three times and after its ``orders/paid``; another webhook is lost, and the
reconciliation sweep brings that order. When the warehouse ships in Tryton, the fulfillment with its
tracking number appears in Shopify.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ordersync.channels.shopify import operations as ops
from ordersync.config import ShopifyShopSettings
from ordersync.devkit import demo_data
from ordersync.devkit.shopify import ShopifyDouble
from ordersync.runtime.hub import Hub
from ordersync.store import shopify as store
from ordersync.store.schema import orders, shopify_events, shopify_orders

NAME = "kestrel-b2b"
#: ERP plant -> the Shopify location its stock is sold from
LOCATIONS = {"PLANT-N": "Lager Hamburg", "PLANT-S": "Lager Augsburg"}


@dataclass
class DemoShop:
    double: ShopifyDouble
    settings: ShopifyShopSettings
    buyers: dict[str, str]  # company name -> company location gid
    placed: list[str] = field(default_factory=list)  # order gids
    dropped: str | None = None
    repeated: str | None = None

    def stop(self) -> None:
        self.double.stop()


def _vat(code: str) -> str | None:
    customer: dict[str, Any] = dict(demo_data.customer(demo_data.profile("main"), code))
    return customer.get("vat") or customer.get("tax_id")


def start(hub_url: str) -> DemoShop:
    """Serve the double, seeded with Kestrel's catalogue, its two plants and three B2B companies."""
    prof = demo_data.profile("main")
    double = ShopifyDouble(shop=f"{NAME}.myshopify.com", token="shpat_demo", secret="demo-webhook-secret",
                           plan="plus")
    locations = {plant: double.add_location(name) for plant, name in LOCATIONS.items()}
    for product in prof["products"]:
        double.add_product(product["sku"], product["name"], product["list_price"], {g: 0 for g in locations.values()})
    alpen = double.add_company("Alpen Field Service GmbH", external_id=None, locations=[
        {"name": "Alpen FS Nürnberg", "external_id": "AFS-NUE", "tax_id": _vat("C-1002"), "currency": "EUR"}])
    # not C-1004, close to its credit limit: the storefront's credit-hold order is C-1004's, and a Shopify
    # order racing it for the last of the limit would decide which one is held
    rheinland = double.add_company("Rheinland Industrial Supply GmbH", external_id="C-1001", locations=[
        {"name": "Rheinland Werk Köln", "currency": "EUR"}])
    nordlicht = double.add_company("Nordlicht Technik ApS", external_id="NT-0815", locations=[
        {"name": "Nordlicht Aarhus", "tax_id": "DK12345678", "currency": "EUR"}])
    base = double.start()
    settings = ShopifyShopSettings(
        name=NAME, domain=double.shop, api_url=base, token=double.token, secret=double.secret, plan="plus",
        webhook_url=f"{hub_url}/shopify/webhooks", reconcile_minutes=1, overlap_minutes=5, stock_minutes=5,
        prices_minutes=60, locations=locations)
    buyers = {"alpen": alpen["locations"][0], "rheinland": rheinland["locations"][0],
              "nordlicht": nordlicht["locations"][0]}
    return DemoShop(double, settings, buyers)


def config_toml(settings: ShopifyShopSettings) -> str:
    """The shop's block for the demo's ordersync.toml (the double's demo token and secret: never a real
    shop's; a real one takes them from the environment, token_env / secret_env)."""
    locations = ", ".join(f'"{k}" = "{v}"' for k, v in settings.locations.items())
    return "\n".join(["", "[[shopify.shops]]", f'name = "{settings.name}"', f'domain = "{settings.domain}"',
                      f'api_url = "{settings.api_url}"', f'token = "{settings.token}"',
                      f'secret = "{settings.secret}"', f'plan = "{settings.plan}"',
                      f'webhook_url = "{settings.webhook_url}"', f"reconcile_minutes = {settings.reconcile_minutes}",
                      f"overlap_minutes = {settings.overlap_minutes}", f"stock_minutes = {settings.stock_minutes}",
                      f"prices_minutes = {settings.prices_minutes}", f"locations = {{ {locations} }}", ""])


def connect(hub: Hub, shop: DemoShop) -> dict[str, Any]:
    """What `ordersync shopify webhooks` and `sync` do: subscribe, then push prices, stock and terms."""
    channel = hub.shopify
    client = channel.shop(NAME).client
    for topic in ops.WEBHOOK_TOPICS:
        client.execute(ops.WEBHOOK_CREATE, {"topic": topic, "uri": shop.settings.webhook_url})
    sync = channel.syncs[NAME]
    pushed = {"prices": sync.push_prices(), "stock": sync.push_stock(), "terms": sync.push_payment_terms()}
    shop.double.webhooks.start(interval=0.1)
    return {k: {f: v[f] for f in ("calls", "points", "seconds") if f in v} for k, v in pushed.items()}


def place_orders(hub: Hub, shop: DemoShop, count: int, *, seed: int) -> None:
    """The companies order: ``count`` orders in all; one webhook three times and out of order, one lost."""
    prof = demo_data.profile("main")
    rng = random.Random(seed)
    d = shop.double
    skus = {"alpen": ["SEN-PX-M12-NPN", "VLV-SV-24V-G12", "SEN-PT-0-10B"],
            "rheinland": ["BRG-6204-2RS", "FIT-ELB-G12-SS"], "nordlicht": ["BRG-6204-2RS"]}
    for i in range(count):
        who = "nordlicht" if i == count - 1 else ("alpen" if i % 2 == 0 else "rheinland")
        lines = []
        for sku in rng.sample(skus[who], k=min(len(skus[who]), rng.choice((1, 2)))):
            quantity = next(q for q in range(rng.randint(2, 8), 500) if demo_data.quantity_allowed(prof, sku, q))
            lines.append((sku, quantity))
        if i == 0:  # three deliveries of its orders/create, after its orders/paid
            d.webhooks.hold()
            d.webhooks.duplicate_next(3)
            shop.repeated = d.place_order(shop.buyers[who], lines, po_number=f"SHOP-{i + 1:03d}", paid=True)
            d.webhooks.release("reverse")
            shop.placed.append(shop.repeated)
            continue
        if i == 1:  # a webhook Shopify never delivers: only the sweep finds the order
            d.webhooks.drop_next()
            shop.dropped = d.place_order(shop.buyers[who], lines, po_number=f"SHOP-{i + 1:03d}")
            shop.placed.append(shop.dropped)
            continue
        shop.placed.append(d.place_order(shop.buyers[who], lines, po_number=f"SHOP-{i + 1:03d}"))
    time.sleep(1.0)
    hub.shopify.inbound.reconcile(NAME)  # as the scheduled sweep would, a minute later


def wait_settled(hub: Hub, shop: DemoShop, timeout: float) -> bool:
    """Until every placed order is a decided hub order (accepted, rejected or held) or is known to wait
    (a company no ERP account matches: Nordlicht's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with hub.db.read() as conn:
            rows = conn.execute(select(shopify_orders.c.shopify_id, shopify_orders.c.state, orders.c.state)
                                .select_from(shopify_orders.outerjoin(orders, orders.c.id == shopify_orders.c.order_id))
                                ).all()
        done = {gid for gid, link, state in rows
                if link in ("unmatched", "rejected", "ignored") or state in ("accepted", "rejected", "on_hold")}
        if done >= set(shop.placed):
            return True
        time.sleep(0.5)
    return False


def summary(hub: Hub, shop: DemoShop, pushed: dict[str, Any], wait_for_fulfillments: float = 30.0) -> dict[str, Any]:
    d = shop.double
    deadline = time.monotonic() + wait_for_fulfillments
    with hub.db.read() as conn:
        shipped = {str(r[0]) for r in conn.execute(select(shopify_orders.c.shopify_id).select_from(
            shopify_orders.join(orders, orders.c.id == shopify_orders.c.order_id))
            .where(orders.c.state.in_(("shipped", "invoiced", "partially_shipped", "closed"))))}
    while time.monotonic() < deadline and not all(d.fulfillments(gid) for gid in shipped):
        time.sleep(0.5)
    fulfilled = [f for gid in shop.placed for f in d.fulfillments(gid)]
    with hub.db.read() as conn:
        events = {f"{t} {s}": int(n) for t, s, n in conn.execute(
            select(shopify_events.c.topic, shopify_events.c.state, func.count())
            .group_by(shopify_events.c.topic, shopify_events.c.state))}
        deliveries = conn.execute(select(func.sum(shopify_events.c.deliveries))).scalar() or 0
        states = {str(s): int(n) for s, n in conn.execute(
            select(orders.c.state, func.count()).select_from(
                shopify_orders.join(orders, orders.c.id == shopify_orders.c.order_id)).group_by(orders.c.state))}
        waiting = [str(r[0]) for r in conn.execute(select(shopify_orders.c.name)
                                                    .where(shopify_orders.c.state == "unmatched"))]
        report = store.get_state(conn, NAME, "report", "reconcile") or {}
    return {"shop": shop.settings.domain, "admin_api": shop.settings.api_url, "orders_placed": len(shop.placed),
            "hub_order_states": states, "waiting_for_a_mapping": waiting, "webhook_events": events,
            "webhook_deliveries": int(deliveries), "dropped_webhook_recovered": _taken(hub, shop.dropped),
            "last_reconciliation": {k: report.get(k) for k in ("seen", "known", "taken", "unmatched")},
            "pushes": pushed, "fulfillments_in_shopify": len(fulfilled),
            "with_tracking": sum(1 for f in fulfilled if f["tracking_number"]),
            "shopify_calls": d.calls, "shopify_points": d.points}


def _taken(hub: Hub, gid: str | None) -> bool:
    if gid is None:
        return False
    with hub.db.read() as conn:
        link = store.order_link(conn, NAME, gid)
    return bool(link and link["order_id"])
