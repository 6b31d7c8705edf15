"""Test drivers: what only the ERP side does, for the ERP contract suite.

The port is the hub's view; these are the warehouse, the accountant and a crash: leave a draft or a
quotation behind as an interrupted submission would, ship a sale (fully, or part of it, which splits the
rest into a second shipment), post its invoice, count stock, change a contract price. One small Protocol,
one implementation per ERP; the Tryton one works over RPC as the administrator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.orders import best_sale
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserWarning
from ordersync.adapters.erp.tryton.submit_plan import Job, create_values, prepare
from ordersync.ports.erp import SalesOrderRequest


class ErpTestDriver(Protocol):
    """The ERP-side operations the contract suite needs."""

    def leave_draft(self, request: SalesOrderRequest) -> str:
        """Create the draft sale a crash right after ``create`` leaves; its ERP id."""
        ...

    def leave_quotation(self, request: SalesOrderRequest) -> str:
        """Create and quote the sale, as a crash right after ``quote`` leaves it; its ERP id."""
        ...

    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None) -> None:
        """Ship the order's waiting shipment; ``quantities`` (by line number) ships only that much of
        those lines now, the ERP puts the rest into a new shipment."""
        ...

    def post_invoices(self, reference: str) -> None:
        """Post the order's draft invoices."""
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

    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None) -> None:
        self.erp.ship(reference, dict(quantities) if quantities is not None else None)

    def post_invoices(self, reference: str) -> None:
        self.erp.post_invoices(reference)

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        self.erp.set_stock(sku, plant, on_hand)

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        self.erp.set_price(account_id, sku, price)

    def sales_with_reference(self, reference: str) -> list[tuple[str, str]]:
        return self.erp.sales_with_reference(reference)


def _origin_id(origin: Any, model: str) -> int | None:
    if isinstance(origin, str) and origin.startswith(f"{model},"):
        return int(origin.split(",", 1)[1])
    return None


class TrytonDriver:
    """The driver of a Tryton database: JSON-RPC as the administrator, through Tryton's own workflows."""

    def __init__(self, admin: TrytonClient) -> None:
        self.c = admin
        self.directory = Directory(admin)

    def _call_acknowledging(self, model: str, method: str, ids: list[int]) -> None:
        """A button press where the administrator answers "yes" to every warning."""
        for _ in range(20):
            try:
                self.c.call(model, method, ids)
                return
            except TrytonUserWarning as warning:
                self.c.skip_warning(warning.name)
        raise AssertionError(f"{model}.{method} keeps warning")

    def _sale(self, reference: str) -> dict[str, Any]:
        rows = self.c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None,
                           ["state", "shipments", "invoices", "lines"])
        sale = best_sale(rows)
        assert sale is not None, f"no sale {reference}"
        return dict(sale)

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

    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None) -> None:
        sale = self._sale(reference)
        shipments = self.c.call("stock.shipment.out", "search_read",
                                [("id", "in", sale["shipments"]), ("state", "=", "waiting")], 0, None, None,
                                ["inventory_moves", "outgoing_moves"])
        for shipment in shipments:
            if quantities:
                self._pick_less(shipment, quantities)
            self.c.call("stock.shipment.out", "assign_try", [shipment["id"]])
            (state,) = self.c.call("stock.shipment.out", "read", [shipment["id"]], ["state"])
            if state["state"] == "waiting":  # not enough on the shelf: the warehouse forces it
                self.c.call("stock.shipment.out", "assign_force", [shipment["id"]])
            for step in ("pick", "pack", "do"):
                self._call_acknowledging("stock.shipment.out", step, [shipment["id"]])

    def _pick_less(self, shipment: dict[str, Any], quantities: Mapping[int, Decimal]) -> None:
        """Pick only ``quantities`` of some lines: on pack Tryton moves that much out, the rest is
        re-planned by the sale into a new shipment when this one is done."""
        outgoing = self.c.call("stock.move", "read", shipment["outgoing_moves"], ["origin"])
        line_ids = {m["id"]: _origin_id(m["origin"], "sale.line") for m in outgoing}
        lines = self.c.call("sale.line", "read", [i for i in line_ids.values() if i], ["sequence"])
        sequence = {row["id"]: row["sequence"] for row in lines}
        for move in self.c.call("stock.move", "read", shipment["inventory_moves"], ["origin", "quantity"]):
            line_id = line_ids.get(_origin_id(move["origin"], "stock.move") or 0)
            seq = sequence.get(line_id or 0)
            if seq in quantities:
                quantity = min(Decimal(str(move["quantity"])), quantities[seq])
                self.c.call("stock.move", "write", [move["id"]], {"quantity": float(quantity)})

    def post_invoices(self, reference: str) -> None:
        sale = self._sale(reference)
        drafts = self.c.call("account.invoice", "search", [("id", "in", sale["invoices"]), ("state", "=", "draft")],
                             0, None, None)
        if drafts:
            self._call_acknowledging("account.invoice", "post", drafts)

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        warehouse = self.directory.warehouse(plant)
        (row,) = self.c.call("stock.location", "read", [warehouse.id], ["storage_location"])
        inventory = {
            "location": row["storage_location"], "date": dt.date.today(), "company": self.directory.company,
            "lines": [["create", [{"product": self.directory.product(sku).id, "quantity": float(on_hand)}]]],
        }
        (inventory_id,) = self.c.call("stock.inventory", "create", [inventory])
        self._call_acknowledging("stock.inventory", "confirm", [inventory_id])

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        party = self.directory.party(account_id)
        product = self.directory.product(sku)
        formula = f"Decimal('{price}')"
        lines = self.c.call("product.price_list.line", "search",
                            [("price_list", "=", party.price_list), ("product", "=", product.id)], 0, None, None)
        if lines:
            self.c.call("product.price_list.line", "write", lines, {"formula": formula})
        else:  # first line of the list: it wins over the category and catch-all lines
            self.c.call("product.price_list.line", "create", [{
                "price_list": party.price_list, "sequence": 1, "product": product.id, "formula": formula,
                "quantity": 0.0}])

    def sales_with_reference(self, reference: str) -> list[tuple[str, str]]:
        rows = self.c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, [("id", "ASC")],
                           ["state"])
        return [(str(r["id"]), r["state"]) for r in rows]
