"""What people do on the ERP side, done over JSON-RPC through Tryton's own workflows: the warehouse ships
(all, part of it, or part of it and no more; with a carrier and its tracking number), receives returned
goods, counts stock; production planning moves a backorder's date; accounting posts invoices and credit
notes; commerce changes a contract price.

For the demo (the ERP should move while the hub watches) and for the tests' ERP driver. It logs in as
the demo administrator (``demo_data.ADMIN``), who answers "yes" to every warning, as a person would
after reading it. :class:`~ordersync.adapters.erp.memory.MemoryErp` has the same methods (but
``revise_date``, which only the demo uses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.orders import best_sale
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserWarning
from ordersync.devkit import demo_data


def _origin_id(origin: Any, model: str) -> int | None:
    if isinstance(origin, str) and origin.startswith(f"{model},"):
        return int(origin.split(",", 1)[1])
    return None


class TrytonSimulator:
    """ERP-side actions on one Tryton database, by sale reference (the hub's ``OS-...``/``RMA-...``)."""

    def __init__(self, admin: TrytonClient) -> None:
        self.c = admin
        self.directory = Directory(admin)

    @classmethod
    def connect(cls, url: str, database: str, *, timeout: float = 120.0) -> TrytonSimulator:
        """A simulator logged in as the demo administrator."""
        user = demo_data.ADMIN
        return cls(TrytonClient(url, database, user["login"], user["password"], timeout=timeout))

    def close(self) -> None:
        self.c.close()

    def _call_acknowledging(self, model: str, method: str, ids: list[int]) -> None:
        """A button press where the administrator answers "yes" to every warning."""
        for _ in range(20):
            try:
                self.c.call(model, method, ids)
                return
            except TrytonUserWarning as warning:
                self.c.skip_warning(warning.name)
        raise RuntimeError(f"{model}.{method} keeps warning")

    def _sale(self, reference: str) -> dict[str, Any]:
        rows = self.c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None,
                           ["state", "shipments", "shipment_returns", "invoices", "lines"])
        sale = best_sale(rows)
        if sale is None:
            raise LookupError(f"no sale {reference}")
        return dict(sale)

    # -- the warehouse ---------------------------------------------------------------------------------
    def ship(self, reference: str, quantities: Mapping[int, Decimal] | None = None, *,
             carrier: str | None = None, tracking: str | None = None) -> None:
        """Ship the order's waiting shipments; ``quantities`` (by line number) ships only that much of
        those lines now: Tryton plans the rest into a new shipment (a split).

        Each goes with ``carrier`` (a carrier party's name; default the first demo carrier; ``""``: none,
        a pickup) and ``tracking`` as its ``shipping_reference`` (default a number in the carrier's style,
        deterministic per shipment: :func:`~ordersync.devkit.demo_data.tracking_number` of its id)."""
        sale = self._sale(reference)
        shipments = self.c.call("stock.shipment.out", "search_read",
                                [("id", "in", sale["shipments"]), ("state", "=", "waiting")], 0, None, None,
                                ["inventory_moves", "outgoing_moves"])
        carrier_id, style = self._carrier(carrier) if shipments else (None, None)
        for shipment in shipments:
            if quantities:
                self._pick_less(shipment, quantities)
            self.c.call("stock.shipment.out", "assign_try", [shipment["id"]])
            (state,) = self.c.call("stock.shipment.out", "read", [shipment["id"]], ["state"])
            if state["state"] == "waiting":  # not enough on the shelf: the warehouse forces it
                self.c.call("stock.shipment.out", "assign_force", [shipment["id"]])
            if tracking is not None or carrier_id is None:
                label = tracking
            elif style is not None:
                label = demo_data.tracking_number(style, shipment["id"])
            else:
                raise LookupError(f"carrier {carrier!r} is not a demo carrier: pass tracking=")
            # before pack: without a carrier Tryton warns on pack, and it is read-only once done
            self.c.call("stock.shipment.out", "write", [shipment["id"]],
                        {"carrier": carrier_id, "shipping_reference": label})
            for step in ("pick", "pack", "do"):
                self._call_acknowledging("stock.shipment.out", step, [shipment["id"]])

    def _carrier(self, name: str | None) -> tuple[int | None, demo_data.Carrier | None]:
        """The id of the carrier whose party is ``name`` (default the first demo carrier; ``""``: None) and
        its demo data (None for a carrier the demo did not seed)."""
        if name == "":
            return None, None
        name = name or demo_data.CARRIERS[0]["name"]
        found = self.c.call("carrier", "search", [("party.name", "=", name)], 0, 1, [("id", "ASC")])
        if not found:
            raise LookupError(f"no carrier {name!r} in the ERP")
        return int(found[0]), next((c for c in demo_data.CARRIERS if c["name"] == name), None)

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
            if seq is not None and seq in quantities:
                quantity = min(Decimal(str(move["quantity"])), quantities[seq])
                self.c.call("stock.move", "write", [move["id"]], {"quantity": float(quantity)})

    def ship_short(self, reference: str, quantities: Mapping[int, Decimal], *,
                   carrier: str | None = None, tracking: str | None = None) -> None:
        """Ship ``quantities`` (by line number) and no more: the shipment Tryton plans for the rest is
        cancelled and the sale told to ignore its moves (the "handle shipment exception" wizard)."""
        self.ship(reference, quantities, carrier=carrier, tracking=tracking)
        sale = self._sale(reference)
        rest = self.c.call("stock.shipment.out", "search",
                           [("id", "in", sale["shipments"]), ("state", "in", ["draft", "waiting", "assigned"])], 0,
                           None, None)
        if not rest:
            return
        self._call_acknowledging("stock.shipment.out", "cancel", rest)
        lines = self.c.call("sale.line", "read", sale["lines"], ["moves", "moves_ignored", "moves_recreated"])
        handled = {m for ln in lines for m in (*ln["moves_ignored"], *ln["moves_recreated"])}
        moves = [m for ln in lines for m in ln["moves"] if m not in handled]
        cancelled = self.c.call("stock.move", "search", [("id", "in", moves), ("state", "=", "cancelled")], 0, None,
                                None) if moves else []
        if cancelled:
            self._run_wizard("sale.handle.shipment.exception", sale["id"], "handle",
                             {"ask": {"ignore_moves": cancelled, "recreate_moves": [], "domain_moves": cancelled}})

    def _run_wizard(self, wizard: str, sale_id: int, state: str, data: dict[str, Any]) -> None:
        context = {"active_id": sale_id, "active_ids": [sale_id], "active_model": "sale.sale"}
        session, _, _ = self.c.request(f"wizard.{wizard}.create", [{}])
        try:
            self.c.request(f"wizard.{wizard}.execute", [session, data, state, context])
        finally:
            self.c.request(f"wizard.{wizard}.delete", [session, context])

    def receive_return(self, reference: str) -> None:
        """Receive the goods of return ``reference`` at the plant and put them back on the shelf."""
        sale = self._sale(reference)
        drafts = self.c.call("stock.shipment.out.return", "search",
                             [("id", "in", sale["shipment_returns"]), ("state", "=", "draft")], 0, None, None)
        if drafts:
            self._call_acknowledging("stock.shipment.out.return", "receive", drafts)
        received = self.c.call("stock.shipment.out.return", "search",
                               [("id", "in", sale["shipment_returns"]), ("state", "=", "received")], 0, None, None)
        if received:
            self._call_acknowledging("stock.shipment.out.return", "do", received)

    def revise_date(self, reference: str, date: dt.date) -> int:
        """Production planning moves the sale's shipments that have not started to ``date`` (a backorder
        will ship later): their planned date, and so the moves' and the lines' ``shipping_date`` the hub
        reads. Tryton edits the planned date in draft only, so waiting shipments go back to draft and
        wait again (as :mod:`~ordersync.adapters.erp.tryton.amend` does). Returns how many moved."""
        sale = self._sale(reference)
        rows = self.c.call("stock.shipment.out", "search_read",
                           [("id", "in", sale["shipments"]), ("state", "in", ["draft", "waiting"])], 0, None, None,
                           ["state"])
        if not rows:
            raise LookupError(f"sale {reference} has no shipment that has not started")
        ids = [r["id"] for r in rows]
        waiting = [r["id"] for r in rows if r["state"] == "waiting"]
        if waiting:
            self.c.call("stock.shipment.out", "draft", waiting)
        self.c.call("stock.shipment.out", "write", ids, {"planned_date": date})
        if waiting:
            self.c.call("stock.shipment.out", "wait", waiting)
        return len(ids)

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        """Count ``on_hand`` of ``sku`` at ``plant`` (an inventory)."""
        warehouse = self.directory.warehouse(plant)
        (row,) = self.c.call("stock.location", "read", [warehouse.id], ["storage_location"])
        inventory = {
            "location": row["storage_location"], "date": dt.date.today(), "company": self.directory.company,
            "lines": [["create", [{"product": self.directory.product(sku).id, "quantity": float(on_hand)}]]],
        }
        (inventory_id,) = self.c.call("stock.inventory", "create", [inventory])
        self._call_acknowledging("stock.inventory", "confirm", [inventory_id])

    # -- accounting and commerce -------------------------------------------------------------------------
    def post_invoices(self, reference: str) -> None:
        """Post the sale's draft invoices (of a return: its credit notes)."""
        sale = self._sale(reference)
        drafts = self.c.call("account.invoice", "search", [("id", "in", sale["invoices"]), ("state", "=", "draft")],
                             0, None, None)
        if drafts:
            self._call_acknowledging("account.invoice", "post", drafts)

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        """Give ``sku`` a fixed contract price on the account's price list."""
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
        """``(ERP id, state)`` of every sale carrying ``reference`` (to count duplicates)."""
        rows = self.c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, [("id", "ASC")],
                           ["state"])
        return [(str(r["id"]), r["state"]) for r in rows]
