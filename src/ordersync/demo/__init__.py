"""``ordersync demo``: the hub on the embedded default with a real Tryton ERP and a storefront simulator."""
