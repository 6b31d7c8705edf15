"""The catalogs port: the accounts' assortments and the ERPs' plants as the read model keeps them
(:mod:`ordersync.runtime.readmodel`), so that preparing an order does not ask the ERP for what changes
rarely, and stock while the ERP's change capture follows it. Contract prices and credit are asked live."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ordersync.canonical.erp import Plant
from ordersync.canonical.v1 import Product, StockPosition


class Catalogs(Protocol):
    def products(self, account_id: str, *, refresh: bool = False) -> list[Product]:
        """The account's assortment (``refresh``: read from its ERP first, e.g. before refusing an item)."""
        ...

    def plants(self, erp: str) -> list[Plant]:
        """The plants of ERP ``erp``."""
        ...

    def followed_stock(self, erp: str, skus: Sequence[str]) -> list[StockPosition] | None:
        """Stock per plant of ``skus`` at ERP ``erp`` as the read model holds it, while this process's
        change capture follows that ERP (its last turn a few seconds ago: every stock move the ERP makes
        reaches the read model within seconds); None when it does not, or a SKU is not held (ask the ERP)."""
        ...
