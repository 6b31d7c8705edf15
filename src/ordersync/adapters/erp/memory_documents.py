"""The in-memory twin's records as canonical documents, stock positions and changes (the twin of
``tryton/documents.py`` and ``tryton/changes.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import (
    INVOICE_STATES,
    SALE_STATES,
    SHIPMENT_STATES,
    VISIBLE_INVOICE_STATES,
    at_midnight,
    order_id_of,
    shipping_date,
    version,
)
from ordersync.adapters.erp.memory_state import ErpState, MInvoice, MSale, MShipment
from ordersync.canonical.v1 import Invoice, InvoiceLine, Shipment, ShipmentLine, StockPosition
from ordersync.ports.erp import (
    Change,
    ChangeBatch,
    ChangeKind,
    ErpOrder,
    ErpOrderLine,
    SalesOrderRequest,
    UnknownItem,
    parse_reference,
)

_RANK = {"cancelled": 0, "draft": 1, "quotation": 2, "confirmed": 3, "processing": 3, "done": 3}


class MemoryDocuments:
    """Reads of :class:`ErpState` shaped like the Tryton adapter's."""

    def __init__(self, state: ErpState) -> None:
        self._st = state

    def best(self, reference: str) -> MSale | None:
        """The sale standing for ``reference``: the most advanced, then the oldest (as in Tryton)."""
        return max(self._st.sales_of(reference), key=lambda s: (_RANK[s.state], -s.id), default=None)

    def sale_values(self, request: SalesOrderRequest) -> dict[str, Any]:
        """``create_sale`` keyword arguments for a request (already validated)."""
        cust = self._st.customers[request.account_id]
        delivery = [a["key"] for a in cust.addresses if a["delivery"]]
        return {
            "reference": request.reference,
            "party": request.account_id,
            "plant": request.plant,
            "currency": request.currency or self._st.currency,
            "ship_to": request.ship_to_id or delivery[0],
            "po": request.buyer_po_number or None,
            "shipping_date": shipping_date([ln.promised_date for ln in request.lines], self._st.today()),
            "lines": [(ln.line_no, ln.sku, ln.quantity, ln.unit_price) for ln in request.lines],
        }

    def shipment(self, shipment: MShipment) -> tuple[str, Shipment]:
        st = self._st
        sale = st.sales[shipment.sale_id]
        quantities: dict[tuple[int, str], Decimal] = {}
        seqs = {ln.id: ln.seq for ln in sale.lines}
        for move in st.moves.values():
            if move.shipment_id == shipment.id and (move.state != "cancelled" or shipment.state == "cancelled"):
                key = (seqs.get(move.line_id, 0), move.sku)
                quantities[key] = quantities.get(key, Decimal(0)) + move.quantity
        return sale.reference, Shipment(
            id=str(shipment.id),
            order_id=order_id_of(sale.reference),
            plant=shipment.plant,
            erp_ref=shipment.number,
            state=SHIPMENT_STATES[shipment.state],
            carrier=shipment.carrier,
            tracking_number=shipment.tracking,
            lines=tuple(
                ShipmentLine(line_no=max(seq, 1), sku=sku, quantity=q) for (seq, sku), q in sorted(quantities.items())
            ),
            shipped_at=at_midnight(shipment.effective_date) if shipment.state in ("shipped", "done") else None,
        )

    def invoice(self, invoice: MInvoice) -> tuple[str, Invoice]:
        sale = self._st.sales[invoice.sale_id]
        total = invoice.total
        return sale.reference, Invoice(
            id=str(invoice.id),
            order_id=order_id_of(sale.reference),
            account_id=invoice.party,
            number=invoice.number,
            erp_ref=invoice.number,
            state=INVOICE_STATES[invoice.state],
            currency=sale.currency,
            untaxed_amount=total,
            tax_amount=Decimal("0.00"),
            total_amount=total,
            due_date=invoice.due_date,
            posted_at=at_midnight(invoice.invoice_date),
            open_amount=invoice.to_pay,
            lines=tuple(
                InvoiceLine(
                    line_no=max(ln.seq, 1),
                    sku=ln.sku,
                    quantity=abs(ln.quantity),
                    unit_price=ln.unit_price,
                    amount=ln.amount,
                )
                for ln in sorted(invoice.lines, key=lambda x: x.seq)
            ),
        )

    def order(self, sale: MSale) -> ErpOrder:
        st = self._st
        parsed = parse_reference(sale.reference)
        shipments = sorted((s for s in st.shipments.values() if s.sale_id == sale.id), key=lambda s: s.id)
        invoices = sorted(
            (i for i in st.invoices.values() if i.sale_id == sale.id and i.state in VISIBLE_INVOICE_STATES),
            key=lambda i: i.id,
        )
        return ErpOrder(
            reference=sale.reference,
            order_id=order_id_of(sale.reference),
            plant=parsed[1] if parsed else sale.plant,
            erp_order_id=str(sale.id),
            erp_order_number=sale.number or "",
            state=SALE_STATES[sale.state],
            account_id=sale.party,
            currency=sale.currency,
            lines=tuple(
                ErpOrderLine(
                    line_no=ln.seq,
                    sku=ln.sku,
                    quantity=ln.quantity,
                    unit_price=ln.unit_price,
                    promised_date=st.line_date(sale, ln),
                )
                for ln in sorted(sale.lines, key=lambda x: x.seq)
            ),
            shipments=tuple(self.shipment(s)[1] for s in shipments),
            invoices=tuple(self.invoice(i)[1] for i in invoices),
        )

    def positions(self, skus: Sequence[str]) -> list[StockPosition]:
        """Stock of each SKU at each plant (on hand, ATP = forecast never below zero, reserved)."""
        st = self._st
        now = st.clock()
        out = []
        for sku in skus:
            if sku not in st.products:
                raise UnknownItem("sku", sku)
            for plant in sorted(st.plants):
                on_hand = st.on_hand.get((sku, plant), Decimal(0))
                atp = max(st.forecast(sku, plant), Decimal(0))
                out.append(
                    StockPosition(
                        sku=sku,
                        plant=plant,
                        on_hand=on_hand,
                        reserved=on_hand - atp,
                        available_to_promise=atp,
                        as_of=now,
                    )
                )
        return out

    def changes(self, since: dt.datetime) -> ChangeBatch:
        """Records stamped at or after ``since`` as changes (see ``tryton/changes.py``)."""
        st, docs = self._st, self
        changes: list[Change] = []
        seen: list[dt.datetime] = []
        for shipment in sorted(st.shipments.values(), key=lambda s: s.id):
            if shipment.stamp >= since:
                seen.append(shipment.stamp)
                reference, canonical = docs.shipment(shipment)
                changes.append(
                    Change(
                        kind=ChangeKind.SHIPMENT,
                        key=f"shipment:{shipment.id}",
                        version=version(shipment.stamp, shipment.state),
                        reference=reference or None,
                        shipment=canonical,
                    )
                )
        for invoice in sorted(st.invoices.values(), key=lambda i: i.id):
            if invoice.stamp >= since and invoice.state != "draft":
                seen.append(invoice.stamp)
                reference, bill = docs.invoice(invoice)
                changes.append(
                    Change(
                        kind=ChangeKind.INVOICE,
                        key=f"invoice:{invoice.id}",
                        version=version(invoice.stamp, invoice.state),
                        reference=reference or None,
                        invoice=bill,
                    )
                )
        moved = sorted(sku for sku, stamp in st.stock_stamps.items() if stamp >= since)
        positions = self.positions(moved)
        for sku in moved:
            seen.append(st.stock_stamps[sku])
            changes.append(
                Change(
                    kind=ChangeKind.STOCK,
                    key=f"stock:{sku}",
                    version=version(st.stock_stamps[sku]),
                    stock=tuple(p for p in positions if p.sku == sku),
                )
            )
        for price_list in sorted(st.price_lists.values(), key=lambda p: p.id):
            if price_list.stamp >= since:
                seen.append(price_list.stamp)
                users = tuple(sorted(c.code for c in st.customers.values() if c.price_list == price_list.id))
                changes.append(
                    Change(
                        kind=ChangeKind.PRICE_LIST,
                        key=f"price_list:{price_list.id}",
                        version=version(price_list.stamp),
                        account_ids=users,
                    )
                )
        for sale in sorted(st.sales.values(), key=lambda s: s.id):
            if sale.stamp >= since and parse_reference(sale.reference):
                seen.append(sale.stamp)
                changes.append(
                    Change(
                        kind=ChangeKind.ORDER,
                        key=f"order:{sale.id}",
                        version=version(sale.stamp, sale.state),
                        reference=sale.reference,
                    )
                )
        return ChangeBatch(changes=tuple(changes), watermark=max([since, *seen]))
