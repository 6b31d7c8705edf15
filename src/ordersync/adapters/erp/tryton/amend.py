"""Amending a confirmed Tryton sale: line quantities (0 cancels a line) and promised dates.

Quantities go through trytond-sale-amendment (one ``sale.amendment`` with a line per change, then
``validate_amendment``): Tryton recomputes the moves of waiting shipments and the draft invoice.
Tryton accepts reducing a line below what has already shipped (the sale then shows a negative quantity
to ship) and deletes the draft moves of a shipment being picked, so the adapter refuses both itself,
from the ERP's own moves. Tryton has no date amendment and plans one date per shipment: a new date
is written to the line's waiting shipment (reset to draft, planned date, back to waiting), which is
allowed only when every line of that shipment gets the same date.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import PICKING_SHIPMENT_STATES
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserError
from ordersync.ports.erp import AmendmentRequest, AmendmentResult, LineChange, UnknownItem

_AMENDABLE = ("processing", "done")


def _shipment_id(reference: Any) -> int | None:
    if isinstance(reference, str) and reference.startswith("stock.shipment.out,"):
        return int(reference.split(",", 1)[1])
    return None


class _SaleView:
    """A sale's lines, their outgoing moves and shipments, read in three calls."""

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

    def shipped(self, seq: int) -> Decimal:
        return sum((Decimal(str(m["quantity"])) for m in self.line_moves(seq) if m["state"] == "done"), Decimal(0))

    def pending_shipments(self, seq: int) -> list[dict[str, Any]]:
        ids = {_shipment_id(m["shipment"]) for m in self.line_moves(seq) if m["state"] not in ("done", "cancelled")}
        return [self.shipments[i] for i in sorted(i for i in ids if i is not None and i in self.shipments)]

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
        sale = max(rows, key=lambda r: (r["state"] in _AMENDABLE, -r["id"]))
        if sale["state"] not in _AMENDABLE:
            reason = f"the ERP order is a {sale['state']}: only confirmed orders are amended (resubmit it instead)"
            return AmendmentResult(reference=request.reference, refused=tuple((c, reason) for c in request.changes))
        applied: list[LineChange] = []
        refused: list[tuple[LineChange, str]] = []
        view = _SaleView(self._c, sale)
        amendments: list[tuple[LineChange, dict[str, Any]]] = []
        dated: list[LineChange] = []
        for change in request.changes:
            line = view.lines.get(change.line_no)
            if line is None:
                refused.append((change, f"the ERP order has no line {change.line_no}"))
                continue
            target = Decimal(0) if change.cancel else change.quantity
            if target is not None:
                refusal = self._quantity_refusal(view, change.line_no, target)
                if refusal:
                    refused.append((change, refusal))
                    continue
                if target != Decimal(str(line["quantity"])):
                    amendments.append(
                        (
                            change,
                            {
                                "action": "line",
                                "line": line["id"],
                                "product": line["product"],
                                "quantity": float(target),
                                "unit": line["unit"],
                                "unit_price": line["unit_price"],
                            },
                        )
                    )
                elif change.promised_date is None:
                    applied.append(change)
            if change.promised_date is not None:
                dated.append(change)
        if amendments:
            try:
                (amendment,) = self._c.call(
                    "sale.amendment",
                    "create",
                    [
                        {
                            "sale": sale["id"],
                            "description": "ordersync",
                            "lines": [["create", [values for _, values in amendments]]],
                        }
                    ],
                )
                self._c.call("sale.amendment", "validate_amendment", [amendment])
                applied += [_quantity_part(c) for c, _ in amendments if c.promised_date is not None]
                applied += [c for c, _ in amendments if c.promised_date is None]
            except TrytonUserError as exc:
                why = f"{exc.message} {exc.description}".strip()
                refused += [(c, why) for c, _ in amendments]
                dated = [c for c in dated if all(c is not a for a, _ in amendments)]
            view = _SaleView(self._c, sale)  # moves and shipments were rebuilt
        a, r = self._move_dates(view, dated)
        applied += a
        refused += r
        applied.sort(key=lambda c: c.line_no)
        refused.sort(key=lambda x: x[0].line_no)
        message = f"{len(applied)} change(s) applied, {len(refused)} refused"
        return AmendmentResult(
            reference=request.reference, applied=tuple(applied), refused=tuple(refused), message=message
        )

    @staticmethod
    def _quantity_refusal(view: _SaleView, seq: int, target: Decimal) -> str | None:
        shipped = view.shipped(seq)
        if target < shipped:
            return f"line {seq}: {shipped} already shipped, cannot reduce it to {target}"
        busy = [s for s in view.pending_shipments(seq) if s["state"] in PICKING_SHIPMENT_STATES]
        if busy and target != Decimal(str(view.lines[seq]["quantity"])):
            shipment = f"{busy[0]['number']} ({busy[0]['state']})"
            return f"line {seq} is being picked in shipment {shipment}: amend it after it ships"
        return None

    def _move_dates(
        self, view: _SaleView, changes: list[LineChange]
    ) -> tuple[list[LineChange], list[tuple[LineChange, str]]]:
        applied: list[LineChange] = []
        refused: list[tuple[LineChange, str]] = []
        wanted = {c.line_no: c.promised_date for c in changes}
        plan: dict[int, dt.date] = {}
        for change in changes:
            assert change.promised_date is not None
            part = _date_part(change)
            shipments = view.pending_shipments(change.line_no)
            if not shipments:
                refused.append((part, f"line {change.line_no} has nothing left to ship"))
                continue
            busy = [s for s in shipments if s["state"] in PICKING_SHIPMENT_STATES]
            if busy:
                refused.append((part, f"line {change.line_no} is being picked in shipment {busy[0]['number']}"))
                continue
            others = sorted(
                seq for s in shipments for seq in view.lines_in(s["id"]) if wanted.get(seq) != change.promised_date
            )
            if others:
                refused.append(
                    (
                        part,
                        f"line {change.line_no} ships with line(s) {', '.join(map(str, others))} in one "
                        "shipment and Tryton plans one date per shipment: change them together",
                    )
                )
                continue
            for shipment in shipments:
                plan[shipment["id"]] = change.promised_date
            applied.append(part)
        by_state: dict[str, list[int]] = defaultdict(list)
        for shipment_id in plan:
            by_state[view.shipments[shipment_id]["state"]].append(shipment_id)
        waiting = by_state.get("waiting", [])
        if waiting:
            self._c.call("stock.shipment.out", "draft", waiting)  # the planned date is editable in draft only
        for shipment_id, day in plan.items():
            self._c.call("stock.shipment.out", "write", [shipment_id], {"planned_date": day})
        if waiting:
            self._c.call("stock.shipment.out", "wait", waiting)
        return applied, refused


def _quantity_part(change: LineChange) -> LineChange:
    return change.model_copy(update={"promised_date": None})


def _date_part(change: LineChange) -> LineChange:
    return LineChange(line_no=change.line_no, promised_date=change.promised_date)
