"""The Shopify double for tests (see :mod:`ordersync.devkit.shopify`), and a seeded shop to start from."""

from __future__ import annotations

from ordersync.devkit.shopify import RETRY_DELAYS, ManualClock, ShopifyDouble, SystemClock, sign

__all__ = ["RETRY_DELAYS", "ManualClock", "ShopifyDouble", "SystemClock", "seeded_double", "sign"]


def seeded_double(**kwargs: object) -> tuple[ShopifyDouble, dict[str, object]]:
    """A double with two locations, three products and one B2B company with two locations; returns the
    double and the gids by name (``warehouse``, ``store``, ``company``, ``buyer``, ``buyer_2``, ``contact``,
    ``variants`` by SKU)."""
    double = ShopifyDouble(**kwargs)  # type: ignore[arg-type]
    warehouse = double.add_location("Kestrel Warehouse")
    store = double.add_location("Kestrel Showroom")
    variants = {
        "KC-BOLT-M8": double.add_product("KC-BOLT-M8", "Hex bolt M8", "0.40", {warehouse: 5000, store: 100}),
        "KC-NUT-M8": double.add_product("KC-NUT-M8", "Hex nut M8", "0.12", {warehouse: 8000}),
        "KC-WASH-M8": double.add_product("KC-WASH-M8", "Washer M8", "0.05", {warehouse: 10000, store: 500}),
    }
    company = double.add_company("Acme Maschinenbau GmbH", external_id="ERP-C-1001", locations=[
        {"name": "Acme Werk Stuttgart", "external_id": "ERP-A-1", "tax_id": "DE811234567", "currency": "EUR"},
        {"name": "Acme Lager Ulm", "external_id": "ERP-A-2", "tax_id": "DE811234567", "currency": "EUR"},
    ])
    ids: dict[str, object] = {"warehouse": warehouse, "store": store, "company": company["company"],
                              "buyer": company["locations"][0], "buyer_2": company["locations"][1],
                              "contact": company["contact"], "variants": variants}
    return double, ids
