"""Documents we send from the ERP's truth, answering a partner's 850: the 856 ship notice from an ERP
shipment and the 810 invoice from a posted ERP invoice. Lines are the purchase order's: the hub's line
``n`` is the PO's ``n``-th PO1, whose buyer line number and item IDs are echoed back.

856: structure code 0004 (shipment, order, item: no pack level), BSN, HL/S with TD5 (carrier), REF*CN
(tracking number), DTM*011 (shipped), N1*ST; HL/O with PRF (PO number); HL/I with LIN and SN1 per line.
810: BIG, CUR, ITD (net due date), IT1 per line, TDS (total in cents), TXI (tax), CTT.
"""

from __future__ import annotations

import datetime as dt

from ordersync.canonical.v1 import Invoice, Shipment
from ordersync.channels.edi.x12.po850 import PoLine, PurchaseOrder
from ordersync.channels.edi.x12.writer import number

SHIPMENT_STRUCTURE = "0004"


def _po_line(po: PurchaseOrder, line_no: int) -> PoLine:
    if not 1 <= line_no <= len(po.lines):
        raise ValueError(f"line {line_no} is not a line of purchase order {po.number} ({len(po.lines)} lines)")
    return po.lines[line_no - 1]


def body_856(po: PurchaseOrder, shipment: Shipment, *, at: dt.datetime) -> list[tuple[str, ...]]:
    """The segments between ST and SE of the ship notice for ``shipment`` of purchase order ``po``."""
    shipped = shipment.shipped_at or at
    body: list[tuple[str, ...]] = [
        ("BSN", "00", (shipment.erp_ref or shipment.id)[:30].zfill(2), at.strftime("%Y%m%d"), at.strftime("%H%M"),
         SHIPMENT_STRUCTURE),
        ("HL", "1", "", "S"),
    ]
    if shipment.carrier:
        body.append(("TD5", "", "2", shipment.carrier[:80]))
    if shipment.tracking_number:
        body.append(("REF", "CN", shipment.tracking_number[:50]))
    body.append(("DTM", "011", shipped.strftime("%Y%m%d")))
    ship_to = po.party("ST")
    if ship_to is not None:
        body.append(("N1", "ST", ship_to.name[:60], ship_to.id_qualifier, ship_to.id))
    body.append(("HL", "2", "1", "O"))
    body.append(("PRF", po.number, "", "", po.date.strftime("%Y%m%d") if po.date else ""))
    hl = 2
    for line in shipment.lines:
        po_line = _po_line(po, line.line_no)
        hl += 1
        body.append(("HL", str(hl), "2", "I"))
        body.append(("LIN", po_line.line_id, *po_line.id_elements))
        body.append(("SN1", "", number(line.quantity), po_line.unit))
    body.append(("CTT", str(hl)))
    return body


def body_810(po: PurchaseOrder, invoice: Invoice) -> list[tuple[str, ...]]:
    """The segments between ST and SE of the invoice ``invoice`` for purchase order ``po``."""
    posted = (invoice.posted_at or dt.datetime.now(dt.UTC)).date()
    body: list[tuple[str, ...]] = [
        ("BIG", posted.strftime("%Y%m%d"), (invoice.number or invoice.erp_ref or invoice.id)[:22],
         po.date.strftime("%Y%m%d") if po.date else "", po.number),
        ("CUR", "SE", invoice.currency),
    ]
    if invoice.due_date:
        net_days = str((invoice.due_date - posted).days) if invoice.due_date >= posted else ""
        body.append(("ITD", "01", "3", "", "", "", invoice.due_date.strftime("%Y%m%d"), net_days))
    for line in invoice.lines:
        po_line = _po_line(po, line.line_no)
        body.append(("IT1", po_line.line_id, number(line.quantity), po_line.unit, format(line.unit_price, "f"), "",
                     *po_line.id_elements))
    body.append(("TDS", str(int((invoice.total_amount * 100).to_integral_value()))))
    if invoice.tax_amount:
        body.append(("TXI", "VA", format(invoice.tax_amount, "f")))
    body.append(("CTT", str(len(invoice.lines))))
    return body
