"""Reading Tryton sales with their shipments and invoices as canonical documents.

A fixed number of RPC calls however many sales, shipments or invoices are read: sales, their lines,
shipments (with their carrier's name and tracking number), the shipments' outgoing moves, invoices,
invoice lines, the receivable lines (for the due date). Shared by :meth:`TrytonErp.order` and the change
poller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import (
    INVOICE_STATES,
    SALE_STATES,
    SHIPMENT_STATES,
    VISIBLE_INVOICE_STATES,
    at_midnight,
    order_id_of,
    utc,
)
from ordersync.adapters.erp.tryton import contract
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.canonical.v1 import Invoice, InvoiceLine, Shipment, ShipmentLine
from ordersync.ports.contracts import PayloadObserver, Unobserved
from ordersync.ports.erp import ErpOrder, ErpOrderLine, parse_reference

SALE_FIELDS = [
    "reference",
    "number",
    "state",
    "party",
    "warehouse",
    "currency.code",
    "lines",
    "shipments",
    "invoices",
    "write_date",
    "create_date",
]
#: ``carrier.party.name`` and ``shipping_reference`` (trytond-stock-package-shipping): the carrier and its
#: tracking number, read with the shipment (no extra call)
_SHIPMENT_FIELDS = [
    "state",
    "number",
    "warehouse",
    "outgoing_moves",
    "effective_date",
    "carrier.party.name",
    "shipping_reference",
    "write_date",
    "create_date",
]
_INVOICE_FIELDS = [
    "number",
    "state",
    "party",
    "currency.code",
    "untaxed_amount",
    "tax_amount",
    "total_amount",
    "amount_to_pay",
    "lines",
    "lines_to_pay",
    "invoice_date",
    "write_date",
    "create_date",
]


def stamp(row: Mapping[str, Any]) -> dt.datetime:
    """When a record last changed: ``write_date``, or ``create_date`` for one never written since."""
    return utc(row.get("write_date") or row["create_date"])


def _line_id(origin: Any) -> int | None:
    """The sale line id in a move's or invoice line's ``origin`` (``"sale.line,12"``), else None."""
    if isinstance(origin, str) and origin.startswith("sale.line,"):
        return int(origin.split(",", 1)[1])
    return None


def _carrier_name(row: Mapping[str, Any]) -> str | None:
    """The name of a shipment row's carrier party (``carrier.party.name``), None without a carrier."""
    party = (row.get("carrier.") or {}).get("party.") or {}
    return party.get("name") or None


@dataclass(frozen=True)
class SaleLineInfo:
    """What a shipment or invoice line needs to know about the sale line it comes from."""

    id: int
    sequence: int
    sku: str
    reference: str
    account_id: str


class Documents:
    """Reads sales, shipments and invoices of one Tryton database as canonical values."""

    def __init__(self, client: TrytonClient, directory: Directory, observer: PayloadObserver | None = None) -> None:
        self._client = client
        self._dir = directory
        self._observer = observer or Unobserved()

    def _read(self, model: str, ids: Iterable[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        ids = sorted(set(ids))
        return self._seen(model, list(self._client.call(model, "read", ids, list(fields))) if ids else [])

    def _seen(self, model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows``, after the observer measured them against what we read of ``model`` (drift)."""
        if rows and model in contract.SCHEMAS:
            self._observer.observe(contract.source(model), contract.SCHEMAS[model], rows)
        return rows

    # -- sales -----------------------------------------------------------------------------------------
    def sales(self, domain: list[Any]) -> list[dict[str, Any]]:
        """Sale rows matching ``domain`` (``SALE_FIELDS``), oldest first."""
        rows = self._client.call("sale.sale", "search_read", domain, 0, None, [("id", "ASC")], SALE_FIELDS)
        return self._seen("sale.sale", list(rows))

    def orders(self, sales: Sequence[Mapping[str, Any]]) -> list[ErpOrder]:
        """The sales as :class:`ErpOrder` with lines, shipments and visible invoices, in the given order."""
        lines = self._read(
            "sale.line",
            (i for s in sales for i in s["lines"]),
            ["sequence", "type", "product", "quantity", "unit_price", "shipping_date"],
        )
        by_line = {row["id"]: row for row in lines}
        infos = {
            row["id"]: SaleLineInfo(
                row["id"],
                row["sequence"] or 0,
                self._dir.sku(row["product"]),
                s["reference"] or "",
                self._dir.party_code(s["party"]),
            )
            for s in sales
            for row in (by_line[i] for i in s["lines"] if i in by_line)
            if row["product"]
        }
        shipments = self.shipments(
            self._read("stock.shipment.out", (i for s in sales for i in s["shipments"]), _SHIPMENT_FIELDS), infos
        )
        invoices = self.invoices(self._visible_invoices(i for s in sales for i in s["invoices"]), infos)
        out = []
        for sale in sales:
            reference = sale["reference"] or ""
            parsed = parse_reference(reference)
            order_lines = sorted(
                (
                    ErpOrderLine(
                        line_no=row["sequence"] or 0,
                        sku=self._dir.sku(row["product"]),
                        quantity=Decimal(str(row["quantity"])),
                        unit_price=row["unit_price"] or Decimal(0),
                        promised_date=row.get("shipping_date"),
                    )
                    for row in (by_line[i] for i in sale["lines"] if i in by_line)
                    if row["type"] == "line" and row["product"]
                ),
                key=lambda line: line.line_no,
            )
            out.append(
                ErpOrder(
                    reference=reference,
                    order_id=order_id_of(reference),
                    plant=parsed[1] if parsed else self._dir.plant_code(sale["warehouse"]),
                    erp_order_id=str(sale["id"]),
                    erp_order_number=sale["number"] or "",
                    state=SALE_STATES[sale["state"]],
                    account_id=self._dir.party_code(sale["party"]),
                    currency=(sale.get("currency.") or {}).get("code") or self._dir.currency,
                    lines=tuple(order_lines),
                    shipments=tuple(shipments[i][1] for i in sorted(sale["shipments"]) if i in shipments),
                    invoices=tuple(invoices[i][1] for i in sorted(sale["invoices"]) if i in invoices),
                )
            )
        return out

    # -- shipments -------------------------------------------------------------------------------------
    def shipment_rows(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        return self._read("stock.shipment.out", ids, _SHIPMENT_FIELDS)

    def sale_lines(self, ids: Iterable[int]) -> dict[int, SaleLineInfo]:
        """Sale lines by id with their sale's reference and party (one call)."""
        rows = self._read("sale.line", ids, ["sequence", "product", "sale.reference", "sale.party"])
        return {
            row["id"]: SaleLineInfo(
                row["id"],
                row["sequence"] or 0,
                self._dir.sku(row["product"]),
                (row.get("sale.") or {}).get("reference") or "",
                self._dir.party_code((row.get("sale.") or {}).get("party") or 0),
            )
            for row in rows
            if row.get("product")
        }

    def shipments(
        self, rows: Sequence[Mapping[str, Any]], infos: dict[int, SaleLineInfo] | None = None
    ) -> dict[int, tuple[str, Shipment]]:
        """``{shipment id: (sale reference, Shipment)}``; lines are numbered by the sale line sequence."""
        moves = self._read(
            "stock.move", (m for r in rows for m in r["outgoing_moves"]), ["origin", "product", "quantity", "state"]
        )
        origins = {m["id"]: _line_id(m["origin"]) for m in moves}
        known = dict(infos or {})
        missing = {i for i in origins.values() if i is not None and i not in known}
        known.update(self.sale_lines(missing))
        by_move = {m["id"]: m for m in moves}
        out: dict[int, tuple[str, Shipment]] = {}
        for row in rows:
            quantities: dict[tuple[int, str], Decimal] = {}
            reference = ""
            for move_id in row["outgoing_moves"]:
                move = by_move.get(move_id)
                if move is None or (move["state"] == "cancelled" and row["state"] != "cancelled"):
                    continue
                info = known.get(origins.get(move_id) or 0)
                reference = reference or (info.reference if info else "")
                key = (info.sequence if info else 0, self._dir.sku(move["product"]))
                quantities[key] = quantities.get(key, Decimal(0)) + Decimal(str(move["quantity"]))
            out[row["id"]] = (
                reference,
                Shipment(
                    id=str(row["id"]),
                    order_id=order_id_of(reference) or str(row["id"]),
                    plant=self._dir.plant_code(row["warehouse"]),
                    erp_ref=row["number"] or "",
                    state=SHIPMENT_STATES[row["state"]],
                    carrier=_carrier_name(row),
                    tracking_number=row.get("shipping_reference") or None,
                    lines=tuple(
                        ShipmentLine(line_no=max(seq, 1), sku=sku, quantity=qty)
                        for (seq, sku), qty in sorted(quantities.items())
                    ),
                    shipped_at=at_midnight(row.get("effective_date")) if row["state"] in ("shipped", "done") else None,
                ),
            )
        return out

    # -- invoices --------------------------------------------------------------------------------------
    def _visible_invoices(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        ids = sorted(set(ids))
        if not ids:
            return []
        domain = [("id", "in", ids), ("state", "in", list(VISIBLE_INVOICE_STATES))]
        return self._seen("account.invoice", list(self._client.call("account.invoice", "search_read", domain, 0, None,
                                                                     None, _INVOICE_FIELDS)))

    def invoice_rows(self, domain: list[Any]) -> list[dict[str, Any]]:
        domain = [*domain, ("type", "=", "out"), ("state", "in", list(VISIBLE_INVOICE_STATES))]
        return self._seen("account.invoice", list(self._client.call("account.invoice", "search_read", domain, 0, None,
                                                                     None, _INVOICE_FIELDS)))

    def invoices(
        self, rows: Sequence[Mapping[str, Any]], infos: dict[int, SaleLineInfo] | None = None
    ) -> dict[int, tuple[str, Invoice]]:
        """``{invoice id: (sale reference, Invoice)}``; due date = the earliest maturity to pay."""
        lines = self._read(
            "account.invoice.line",
            (i for r in rows for i in r["lines"]),
            ["origin", "product", "quantity", "unit_price", "amount", "type"],
        )
        origins = {ln["id"]: _line_id(ln["origin"]) for ln in lines}
        known = dict(infos or {})
        known.update(self.sale_lines({i for i in origins.values() if i is not None and i not in known}))
        maturities = {
            row["id"]: row.get("maturity_date")
            for row in self._read("account.move.line", (i for r in rows for i in r["lines_to_pay"]), ["maturity_date"])
        }
        by_id = {ln["id"]: ln for ln in lines}
        out: dict[int, tuple[str, Invoice]] = {}
        for row in rows:
            reference = ""
            invoice_lines = []
            for line_id in row["lines"]:
                line = by_id.get(line_id)
                if line is None or line["type"] != "line" or not line.get("product"):
                    continue
                info = known.get(origins.get(line_id) or 0)
                reference = reference or (info.reference if info else "")
                invoice_lines.append(
                    InvoiceLine(
                        line_no=max(info.sequence if info else 1, 1),
                        sku=self._dir.sku(line["product"]),
                        quantity=abs(Decimal(str(line["quantity"]))),
                        unit_price=line["unit_price"] or Decimal(0),
                        amount=line["amount"] or Decimal(0),
                    )
                )
            dues = [d for d in (maturities.get(i) for i in row["lines_to_pay"]) if d is not None]
            out[row["id"]] = (
                reference,
                Invoice(
                    id=str(row["id"]),
                    order_id=order_id_of(reference) or str(row["id"]),
                    account_id=self._dir.party_code(row["party"]),
                    number=row["number"] or "",
                    erp_ref=row["number"] or "",
                    state=INVOICE_STATES[row["state"]],
                    currency=(row.get("currency.") or {}).get("code") or self._dir.currency,
                    untaxed_amount=row["untaxed_amount"],
                    tax_amount=row["tax_amount"],
                    total_amount=row["total_amount"],
                    due_date=min(dues) if dues else None,
                    posted_at=at_midnight(row.get("invoice_date")),
                    open_amount=row.get("amount_to_pay") if row["state"] in ("posted", "paid") else None,
                    lines=tuple(sorted(invoice_lines, key=lambda x: x.line_no)),
                ),
            )
        return out
