""":class:`ShopifyDouble`: one fake Shopify shop, its Admin GraphQL API and its webhooks, for tests and
the demo."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette

from . import bulk, orders, payloads
from .clock import Clock, SystemClock
from .cost import Bucket
from .executor import Executor
from .http import INVALID_TOKEN, Server, asgi_app, mock_transport, route
from .payloads import topic_enum
from .state import Obj, ShopState
from .subscriptions import subscribe
from .webhooks import Webhooks


class ShopifyDouble:
    """A Shopify shop that answers the connector's GraphQL documents against Shopify's own Admin schema.

    Seed it in Python (:meth:`add_location`, :meth:`add_product`, :meth:`add_company`), act in it as a
    buyer or merchant would (:meth:`place_order`, :meth:`pay`, :meth:`cancel_order`, :meth:`sell`), reach it
    through :meth:`execute`, :attr:`app`, :meth:`transport` or :meth:`serve`, and look inside
    (:meth:`order`, :meth:`available`, :attr:`calls` ...). Webhooks queue in :attr:`webhooks`.
    """

    def __init__(self, shop: str = "kestrel-b2b.myshopify.com", token: str = "shpat_test",
                 secret: str = "whsec_test", plan: str = "plus", version: str = "2026-07",
                 clock: Clock | None = None, currency: str = "EUR") -> None:
        self.shop = shop
        self.token = token
        self.secret = secret
        self.plan = plan
        self.version = version
        self.clock: Clock = clock or SystemClock()
        self.state = ShopState(shop, plan, currency, self.clock)
        self.bucket = Bucket(self.clock, plan)
        self._executor = Executor(self.state, version, self.bucket)
        self.webhooks = Webhooks(self.state, secret, version, self.clock)
        self.state.emit = self.webhooks.enqueue
        self._handle = route(self._executor.execute, self._bulk_file, version, token)
        self.app: Starlette = asgi_app(self._handle)
        self._server = Server(self.app)

    # --- the API --------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where the double is reached: the served address, else the shop's own."""
        return self._server.base_url or f"https://{self.shop}"

    def execute(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None,
                headers: Mapping[str, str] | None = None, operation_name: str | None = None) -> tuple[int, Any]:
        """One Admin GraphQL request: (HTTP status, Shopify's JSON body). A token (argument or
        ``X-Shopify-Access-Token`` header) is checked when given; in-process calls may leave it out."""
        supplied = token
        if supplied is None and headers:
            supplied = next((v for k, v in headers.items() if k.lower() == "x-shopify-access-token"), None)
        if supplied is not None and supplied != self.token:
            return 401, {"errors": INVALID_TOKEN}
        return self._executor.execute(query, variables, operation_name, self.base_url)

    def _bulk_file(self, number: int) -> str | None:
        with self.state.lock:
            return bulk.jsonl(self.state, number)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering like the app, without sockets (any host)."""
        return mock_transport(self._handle)

    def start(self) -> str:
        """Serve the app with uvicorn on 127.0.0.1 at a free port; returns the base URL."""
        return self._server.start()

    def stop(self) -> None:
        self.webhooks.stop()
        self._server.stop()

    @contextmanager
    def serve(self) -> Iterator[str]:
        base_url = self.start()
        try:
            yield base_url
        finally:
            self.stop()

    # --- seeding --------------------------------------------------------------------------------------

    def add_location(self, name: str) -> str:
        with self.state.lock:
            return str(self.state.add_location(name)["id"])

    def add_product(self, sku: str, title: str, price: Decimal | str,
                    inventory: Mapping[str, int] | None = None) -> str:
        """A product with one variant and an inventory item stocked at every location; returns the variant."""
        with self.state.lock:
            return str(self.state.add_product(sku, title, price, inventory)["id"])

    def add_company(self, name: str, external_id: str | None = None,
                    locations: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """A B2B company with its locations (name, external_id, tax_id, currency) and a main contact."""
        with self.state.lock:
            company = self.state.add_company(name, external_id, locations)
            return {"company": company["id"], "locations": [loc["id"] for loc in company["_locations"]],
                    "contact": company["mainContact"]["id"]}

    def subscribe(self, topic: str, uri: str) -> str:
        """A webhook subscription (``ORDERS_CREATE`` or ``orders/create``) without GraphQL."""
        with self.state.lock:
            return str(subscribe(self.state, topic_enum(topic), uri, self.version)["id"])

    # --- what happens in the store --------------------------------------------------------------------

    def place_order(self, location: str, lines: Iterable[tuple[str, int]], po_number: str | None = None,
                    paid: bool = False) -> str:
        """A buyer of company location ``location`` orders ``lines`` of (sku, quantity)."""
        with self.state.lock:
            return str(orders.place_order(self.state, location, lines, po_number, paid)["id"])

    def pay(self, order: str) -> None:
        with self.state.lock:
            orders.pay(self.state, self.state.require(order, "Order"))

    def edit_order(self, order: str, quantities: dict[str, int]) -> None:
        """The merchant lowers line quantities (0 removes the line): ``orders/edited`` and ``orders/updated``."""
        with self.state.lock:
            orders.edit(self.state, self.state.require(order, "Order"), quantities)

    def cancel_order(self, order: str, reason: str = "CUSTOMER", restock: bool = True) -> None:
        with self.state.lock:
            errors = orders.cancel(self.state, self.state.require(order, "Order"), reason, restock)
        if errors:
            raise ValueError(errors[0]["message"])

    def sell(self, inventory_item: str, location: str, quantity: int) -> None:
        """Another writer (a POS sale, another app) takes ``quantity`` off available and on hand."""
        self._move(inventory_item, location, -quantity)

    def set_available(self, inventory_item: str, location: str, quantity: int) -> None:
        with self.state.lock:
            level = self._level(inventory_item, location)
            self._move(inventory_item, location, quantity - level["_q"]["available"])

    def _move(self, inventory_item: str, location: str, delta: int) -> None:
        with self.state.lock:
            level = self._level(inventory_item, location)
            self.state.change(level, "available", delta)
            self.state.level_changed(level)

    def _level(self, inventory_item: str, location: str) -> Obj:
        level = self.state.level(inventory_item, location)
        if level is None:
            raise KeyError(f"{inventory_item} is not stocked at {location}")
        return level

    # --- inspection -----------------------------------------------------------------------------------

    def order(self, gid: str) -> dict[str, Any]:
        """The order as its webhook body would show it now (REST shape, numeric ids, amounts as strings)."""
        with self.state.lock:
            return payloads.order(self.state.require(gid, "Order"))

    @property
    def orders(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [payloads.order(o) for o in self.state.orders]

    def available(self, inventory_item: str, location: str) -> int:
        with self.state.lock:
            return int(self._level(inventory_item, location)["_q"]["available"])

    def quantities(self, inventory_item: str, location: str) -> dict[str, int]:
        """Every named quantity of a level (available, committed, on_hand ...)."""
        with self.state.lock:
            return dict(self._level(inventory_item, location)["_q"])

    def variant_by_sku(self, sku: str) -> dict[str, Any]:
        with self.state.lock:
            variant = self.state.variants_by_sku[sku]
            item = variant["inventoryItem"]["id"]
            return {"id": variant["id"], "sku": sku, "title": variant["product"]["title"],
                    "price": variant["price"], "product_id": variant["product"]["id"],
                    "inventory_item_id": item, "inventoryItem": {"id": item}}

    def fulfillments(self, order: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [{"id": f["id"], "status": f["status"],
                     "tracking_company": f["_tracking"][0]["company"] if f["_tracking"] else None,
                     "tracking_number": f["_tracking"][0]["number"] if f["_tracking"] else None,
                     "tracking_url": f["_tracking"][0]["url"] if f["_tracking"] else None,
                     "tracking": [dict(t) for t in f["_tracking"]],
                     "line_items": [{"line_item_id": fl["lineItem"]["id"], "sku": fl["lineItem"]["sku"],
                                     "quantity": fl["quantity"]} for fl in f["_lineItems"]]}
                    for f in self.state.require(order, "Order")["_fulfillments"]]

    def refunds(self, order: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [{"id": r["id"], "note": r["note"], "amount": r["totalRefundedSet"]["shopMoney"]["amount"],
                     "line_items": [{"line_item_id": rl["lineItem"]["id"], "sku": rl["lineItem"]["sku"],
                                     "quantity": rl["quantity"], "restock_type": rl["restockType"]}
                                    for rl in r["_lineItems"]]}
                    for r in self.state.require(order, "Order")["_refunds"]]

    def fixed_price(self, price_list: str, variant: str) -> Decimal | None:
        with self.state.lock:
            entry = self.state.require(price_list, "PriceList")["_prices"].get(variant)
            return Decimal(entry["price"]["amount"]) if entry else None

    def quantity_breaks(self, price_list: str, variant: str) -> list[tuple[int, Decimal]]:
        """(minimum quantity, unit price) of a variant on a price list, smallest minimum first."""
        with self.state.lock:
            entry = self.state.require(price_list, "PriceList")["_prices"].get(variant)
            breaks = entry["_breaks"] if entry else []
            return sorted((b["minimumQuantity"], Decimal(b["price"]["amount"])) for b in breaks)

    @property
    def catalogs(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [{"id": c["id"], "title": c["title"], "status": c["status"],
                     "price_list_id": c["priceList"]["id"] if c["priceList"] else None,
                     "company_location_ids": [loc["id"] for loc in c["_locations"]]} for c in self.state.catalogs]

    @property
    def price_lists(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [{"id": p["id"], "name": p["name"], "currency": p["currency"],
                     "catalog_id": p["catalog"]["id"] if p["catalog"] else None,
                     "company_location_ids": [loc["id"] for loc in p["catalog"]["_locations"]] if p["catalog"] else [],
                     "fixed_prices_count": len(p["_prices"])} for p in self.state.price_lists]

    def payment_terms(self, company_location: str) -> dict[str, Any] | None:
        with self.state.lock:
            location = self.state.require(company_location, "CompanyLocation")
            template = location["buyerExperienceConfiguration"]["paymentTermsTemplate"]
            if template is None:
                return None
            return {"id": template["id"], "name": template["name"], "type": template["paymentTermsType"],
                    "due_in_days": template["dueInDays"]}

    @property
    def calls(self) -> int:
        return self._executor.meter.calls

    @property
    def points(self) -> int:
        """Actual cost consumed, summed over every executed request."""
        return self._executor.meter.points

    @property
    def throttled(self) -> int:
        return self._executor.meter.throttled

    @property
    def mutations_by_name(self) -> Counter[str]:
        return self._executor.meter.mutations_by_name
