"""The catalogs port: the accounts' assortments and the ERPs' plants as the read model keeps them
(:mod:`ordersync.runtime.readmodel`), so that preparing an order does not ask the ERP for what changes
rarely. Contract prices, credit and stock are asked live; they are not here."""

from __future__ import annotations

from typing import Protocol

from ordersync.canonical.erp import Plant
from ordersync.canonical.v1 import Product


class Catalogs(Protocol):
    def products(self, account_id: str, *, refresh: bool = False) -> list[Product]:
        """The account's assortment (``refresh``: read from its ERP first, e.g. before refusing an item)."""
        ...

    def plants(self, erp: str) -> list[Plant]:
        """The plants of ERP ``erp``."""
        ...
