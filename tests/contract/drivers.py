"""Test drivers: what only the ERP side does, for the ERP contract suite.

The port is the hub's view; these are the warehouse, the accountant and a crash: leave a draft or a
quotation behind as an interrupted submission would, ship a sale (fully, or part of it, which splits the
rest into a second shipment, or part of it and no more; with a carrier and a tracking number), receive
returned goods, post invoices and credit notes, count stock, change a contract price. One small Protocol,
one implementation per ERP: the ERP-side methods of the twin, and for Tryton the simulator the demo uses
(``tryton/simulate.py``) plus the crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.adapters.erp.tryton.submit_plan import Job, create_values, prepare
from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.ports.erp import SalesOrderRequest


class ErpTestDriver(Protocol):
    """The ERP-side operations the contract suite needs."""

    def leave_draft(self, request: SalesOrderRequest) -> str:
        """Create the draft sale a crash right after ``create`` leaves; its ERP id."""
        ...

    def leave_quotation(self, request: SalesOrderRequest) -> str:
        """Create and quote the sale, as a crash right after ``quote`` leaves it; its ERP id."""
        ...

    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None, *, carrier: str | None = None,
             tracking: str | None = None) -> None:
        """Ship the order's waiting shipment; ``quantities`` (by line number) ships only that much of
        those lines now, the ERP puts the rest into a new shipment. It goes with ``carrier`` (a carrier's
        name, default the first demo carrier; ``""``: none) and ``tracking`` (default one in the carrier's
        style)."""
        ...

    def ship_short(self, reference: str, quantities: Mapping[int, Decimal], *, carrier: str | None = None,
                   tracking: str | None = None) -> None:
        """Ship ``quantities`` (by line number) and cancel the rest of the order's shipping for good."""
        ...

    def receive_return(self, reference: str) -> None:
        """Receive the goods of return ``reference`` back into the plant."""
        ...

    def post_invoices(self, reference: str) -> None:
        """Post the sale's draft invoices (of a return: its credit notes)."""
        ...

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        """Count ``on_hand`` of ``sku`` at ``plant`` (an inventory)."""
        ...

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        """Give ``sku`` a fixed contract price on the account's price list."""
        ...

    def sales_with_reference(self, reference: str) -> list[tuple[str, str]]:
        """``(ERP id, state)`` of every sale carrying ``reference``."""
        ...


class MemoryDriver:
    """The driver of :class:`MemoryErp`: its ERP-side methods."""

    def __init__(self, erp: MemoryErp) -> None:
        self.erp = erp

    def leave_draft(self, request: SalesOrderRequest) -> str:
        return self.erp.leave_behind(request)

    def leave_quotation(self, request: SalesOrderRequest) -> str:
        return self.erp.leave_behind(request, quoted=True)

    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None, *, carrier: str | None = None,
             tracking: str | None = None) -> None:
        self.erp.ship(reference, dict(quantities) if quantities is not None else None, carrier=carrier,
                      tracking=tracking)

    def ship_short(self, reference: str, quantities: Mapping[int, Decimal], *, carrier: str | None = None,
                   tracking: str | None = None) -> None:
        self.erp.ship_short(reference, dict(quantities), carrier=carrier, tracking=tracking)

    def receive_return(self, reference: str) -> None:
        self.erp.receive_return(reference)

    def post_invoices(self, reference: str) -> None:
        self.erp.post_invoices(reference)

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        self.erp.set_stock(sku, plant, on_hand)

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        self.erp.set_price(account_id, sku, price)

    def sales_with_reference(self, reference: str) -> list[tuple[str, str]]:
        return self.erp.sales_with_reference(reference)


class TrytonDriver(TrytonSimulator):
    """The driver of a Tryton database: the ERP-side simulator (as the administrator), plus the drafts and
    quotations an interrupted submission leaves behind."""

    def leave_draft(self, request: SalesOrderRequest) -> str:
        job = Job(0, request)
        prepare(job, self.directory, dt.date.today())
        assert job.result is None, job.result
        (sale_id,) = self.c.call("sale.sale", "create", [create_values(job)])
        return str(sale_id)

    def leave_quotation(self, request: SalesOrderRequest) -> str:
        sale_id = self.leave_draft(request)
        self._call_acknowledging("sale.sale", "quote", [int(sale_id)])
        return sale_id
