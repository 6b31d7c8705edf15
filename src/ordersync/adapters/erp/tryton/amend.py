"""Amending a confirmed Tryton sale: line quantities (0 cancels a line) and promised dates.

Quantities go through trytond-sale-amendment (one ``sale.amendment`` with a line per change, then
``validate_amendment``): Tryton recomputes the moves of waiting shipments and the draft invoice.
Tryton accepts reducing a line below what has already shipped (the sale then shows a negative quantity
to ship) and deletes the draft moves of a shipment being picked, so the adapter refuses both itself,
from the ERP's own moves. Tryton has no date amendment and plans one date per shipment: a new date
is written to the line's waiting shipment (reset to draft, planned date, back to waiting), which is
allowed only when every line of that shipment gets the same date. The rules are written once, in
:mod:`ordersync.adapters.erp.erp_common` (``plan_amendment``, ``plan_dates``), for this adapter and its
in-memory twin; this module reads the sale and writes what they decide.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import (
    AMENDABLE_SALE_STATES,
    ShipmentRef,
    amendment_result,
    not_amendable,
    plan_amendment,
    plan_dates,
    quantity_part,
)
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserError
from ordersync.ports.erp import AmendmentRequest, AmendmentResult, LineChange, UnknownItem


def _shipment_id(reference: Any) -> int | None:
    if isinstance(reference, str) and reference.startswith("stock.shipment.out,"):
        return int(reference.split(",", 1)[1])
    return None


class _SaleView:
    """A sale's lines, their outgoing moves and shipments, read in three calls; what the amendment rules
    read (:class:`~ordersync.adapters.erp.erp_common.SaleLines`)."""

    def __init__(self, client: TrytonClient, sale: dict[str, Any]) -> None:
        self.sale = sale
        lines = client.call(
            "sale.line",
            "read",
            sale["lines"],
            ["sequence", "type", "product", "quantity", "unit", "unit_price", "moves"],
        )
        self.lines = {row["sequence"]: row for row in lines if row["type"] == "line"}
        move_ids = [m for row in self.lines.values() for m in row["moves"]]
        moves = client.call("stock.move", "read", move_ids, ["state", "quantity", "shipment"]) if move_ids else []
        self.moves = {m["id"]: m for m in moves}
        shipment_ids = sorted({s for m in moves if (s := _shipment_id(m["shipment"])) is not None})
        shipments = client.call("stock.shipment.out", "read", shipment_ids, ["state", "number"]) if shipment_ids else []
        self.shipments = {s["id"]: s for s in shipments}

    def line_moves(self, seq: int) -> list[dict[str, Any]]:
        return [self.moves[m] for m in self.lines[seq]["moves"] if m in self.moves]

    def has_line(self, seq: int) -> bool:
        return seq in self.lines

    def quantity(self, seq: int) -> Decimal:
        return Decimal(str(self.lines[seq]["quantity"]))

    def shipped(self, seq: int) -> Decimal:
        return sum((Decimal(str(m["quantity"])) for m in self.line_moves(seq) if m["state"] == "done"), Decimal(0))

    def pending_shipments(self, seq: int) -> list[ShipmentRef]:
        ids = {_shipment_id(m["shipment"]) for m in self.line_moves(seq) if m["state"] not in ("done", "cancelled")}
        return [ShipmentRef(i, self.shipments[i]["number"], self.shipments[i]["state"])
                for i in sorted(i for i in ids if i is not None and i in self.shipments)]

    def lines_in(self, shipment_id: int) -> set[int]:
        return {
            seq
            for seq in self.lines
            if any(
                _shipment_id(m["shipment"]) == shipment_id and m["state"] not in ("done", "cancelled")
                for m in self.line_moves(seq)
            )
        }


class Amender:
    """Applies an :class:`AmendmentRequest` to the Tryton sale with that reference."""

    def __init__(self, client: TrytonClient) -> None:
        self._c = client

    def amend(self, request: AmendmentRequest) -> AmendmentResult:
        rows = self._c.call(
            "sale.sale",
            "search_read",
            [("reference", "=", request.reference), ("state", "!=", "cancelled")],
            0,
            None,
            [("id", "ASC")],
            ["state", "number", "lines"],
        )
        if not rows:
            raise UnknownItem("order", request.reference)
        sale = max(rows, key=lambda r: (r["state"] in AMENDABLE_SALE_STATES, -r["id"]))
        refused_whole = not_amendable(request, sale["state"])
        if refused_whole is not None:
            return refused_whole
        view = _SaleView(self._c, sale)
        plan = plan_amendment(view, request.changes)
        applied, refused, dated = list(plan.applied), list(plan.refused), list(plan.dated)
        if plan.quantities:
            try:
                self._amend_quantities(sale["id"], view, plan.quantities)
                applied += [quantity_part(c) for c, _ in plan.quantities]
            except TrytonUserError as exc:
                why = f"{exc.message} {exc.description}".strip()
                refused += [(c, why) for c, _ in plan.quantities]
                dated = [c for c in dated if all(c is not a for a, _ in plan.quantities)]
            view = _SaleView(self._c, sale)  # moves and shipments were rebuilt
        dates_applied, dates_refused, planned = plan_dates(view, dated)
        self._plan_shipments(view, planned)
        return amendment_result(request, [*applied, *dates_applied], [*refused, *dates_refused])

    def _amend_quantities(self, sale_id: int, view: _SaleView, quantities: list[tuple[LineChange, Decimal]]) -> None:
        lines = [{"action": "line", "line": view.lines[c.line_no]["id"], "product": view.lines[c.line_no]["product"],
                  "quantity": float(target), "unit": view.lines[c.line_no]["unit"],
                  "unit_price": view.lines[c.line_no]["unit_price"]} for c, target in quantities]
        (amendment,) = self._c.call("sale.amendment", "create", [
            {"sale": sale_id, "description": "ordersync", "lines": [["create", lines]]}])
        self._c.call("sale.amendment", "validate_amendment", [amendment])

    def _plan_shipments(self, view: _SaleView, planned: dict[int, dt.date]) -> None:
        waiting = [i for i in planned if view.shipments[i]["state"] == "waiting"]
        if waiting:
            self._c.call("stock.shipment.out", "draft", waiting)  # the planned date is editable in draft only
        for shipment_id, day in planned.items():
            self._c.call("stock.shipment.out", "write", [shipment_id], {"planned_date": day})
        if waiting:
            self._c.call("stock.shipment.out", "wait", waiting)
