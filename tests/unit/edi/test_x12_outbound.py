"""The 856 ship notice and the 810 invoice answering a partner's 850, from the ERP's shipment and
invoice, written and read back through the envelope reader."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from ordersync.canonical.v1 import Invoice, InvoiceLine, InvoiceState, Shipment, ShipmentLine, ShipmentState
from ordersync.channels.edi.x12 import TransactionSet, read_interchanges
from ordersync.channels.edi.x12.outbound import body_810, body_856
from ordersync.channels.edi.x12.po850 import PurchaseOrder, read_850
from ordersync.channels.edi.x12.writer import transaction_set
from tests.unit.edi.test_x12_850 import only_set
from tests.unit.edi.test_x12_acks import write
from tests.unit.edi.test_x12_envelope import SAMPLES

AT = dt.datetime(2026, 12, 5, 14, 30, tzinfo=dt.UTC)


def sample_po() -> PurchaseOrder:
    po, _ = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert po is not None
    return po


def read_back(code: str, functional_id: str, body: list[tuple[str, ...]]) -> list[list[str]]:
    data = write(functional_id, "004010", [transaction_set(code, "0001", body)])
    (ts,) = [i for i in read_interchanges(io.BytesIO(data)) if isinstance(i, TransactionSet)]
    assert ts.accepted, ts.errors
    return [s.elements for s in ts.segments]


def test_a_ship_notice_names_carrier_tracking_order_and_the_buyers_lines() -> None:
    shipment = Shipment(id="sh1", order_id="o1", erp_ref="CS/0042", state=ShipmentState.SHIPPED, carrier="DHLG",
                        tracking_number="JJD000390007", shipped_at=AT,
                        lines=(ShipmentLine(line_no=1, sku="AB3542", quantity=Decimal(120)),
                               ShipmentLine(line_no=2, sku="RD5322", quantity=Decimal(200))))
    segments = read_back("856", "SH", body_856(sample_po(), shipment, at=AT))
    assert segments == [
        ["BSN", "00", "CS/0042", "20261205", "1430", "0004"],
        ["HL", "1", "", "S"], ["TD5", "", "2", "DHLG"], ["REF", "CN", "JJD000390007"], ["DTM", "011", "20261205"],
        ["N1", "ST", "XYZ RETAIL", "9", "0003947268292"],
        ["HL", "2", "1", "O"], ["PRF", "08292233294", "", "", "20101127"],
        ["HL", "3", "2", "I"], ["LIN", "1", "CB", "065322-117", "PR", "RO", "VN", "AB3542"], ["SN1", "", "120", "EA"],
        ["HL", "4", "2", "I"], ["LIN", "2", "CB", "066850-116", "PR", "RO", "VN", "RD5322"], ["SN1", "", "200", "EA"],
        ["CTT", "4"]]


def test_an_invoice_carries_lines_total_in_cents_tax_and_due_date() -> None:
    invoice = Invoice(id="inv1", order_id="o1", account_id="C-1001", number="INV/2026/0007", state=InvoiceState.POSTED,
                      currency="EUR", untaxed_amount=Decimal("1110.00"), tax_amount=Decimal("210.90"),
                      total_amount=Decimal("1320.90"), due_date=dt.date(2027, 1, 4), posted_at=AT,
                      lines=(InvoiceLine(line_no=1, sku="AB3542", quantity=Decimal(120), unit_price=Decimal("9.25"),
                                         amount=Decimal("1110.00")),))
    segments = read_back("810", "IN", body_810(sample_po(), invoice))
    assert segments == [
        ["BIG", "20261205", "INV/2026/0007", "20101127", "08292233294"], ["CUR", "SE", "EUR"],
        ["ITD", "01", "3", "", "", "", "20270104", "30"],  # ITD06 net due date, ITD07 net days
        ["IT1", "1", "120", "EA", "9.25", "", "CB", "065322-117", "PR", "RO", "VN", "AB3542"],
        ["TDS", "132090"], ["TXI", "VA", "210.90"], ["CTT", "1"]]


def test_a_line_the_order_does_not_have_is_refused() -> None:
    shipment = Shipment(id="sh2", order_id="o1", state=ShipmentState.SHIPPED,
                        lines=(ShipmentLine(line_no=9, sku="X", quantity=Decimal(1)),))
    with pytest.raises(ValueError, match="line 9"):
        body_856(sample_po(), shipment, at=AT)
