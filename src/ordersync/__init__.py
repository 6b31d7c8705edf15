"""ordersync: a B2B order hub between ERP, storefronts, warehouse, carriers, CRM and EDI partners."""

__version__ = "0.1.0"
