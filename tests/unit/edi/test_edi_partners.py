"""A partner's 850 becomes a canonical order: items by the seller's number, the partner's map or the
buyer's part number; ship-to by the partner's map; what cannot be mapped is a reason, never a guess."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from ordersync.channels.edi.partners import Partner, find_partner, order_from_850
from ordersync.channels.edi.x12 import InterchangeClosed, read_interchanges
from ordersync.channels.edi.x12.po850 import read_850
from tests.unit.edi.test_x12_850 import only_set
from tests.unit.edi.test_x12_envelope import SAMPLES

AT = dt.datetime(2026, 12, 5, 14, 30, tzinfo=dt.UTC)
XYZ = Partner(name="xyz-retail", interchange_qualifier="12", interchange_id="4405197800", account_id="C-1001",
              ship_to={"0003947268292": "C-1001-SOLON"})
PGW = Partner(name="pgw", interchange_qualifier="01", interchange_id="828513080", account_id="C-1002",
              ship_to={"W_341001": "C-1002-BEREA"}, items={"0650002027": "LMP-200W-E39"})


def test_the_sender_names_the_partner() -> None:
    data = (SAMPLES / "nodex12_850.edi").read_bytes()
    (closed,) = [i for i in read_interchanges(io.BytesIO(data)) if isinstance(i, InterchangeClosed)]
    assert find_partner([PGW, XYZ], closed.interchange) is XYZ
    assert find_partner([PGW], closed.interchange) is None


def test_a_vics_order_becomes_a_canonical_order_with_our_skus_and_the_mapped_ship_to() -> None:
    po, _ = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert po is not None
    order, problems = order_from_850(po, XYZ, order_id="o1", received_at=AT)
    assert problems == [] and order is not None
    assert (order.channel, order.external_order_number, order.account_id, order.ship_to_id) == (
        "edi-xyz-retail", "08292233294", "C-1001", "C-1001-SOLON")
    assert order.requested_date == dt.date(2010, 12, 14)
    assert [(x.line_no, x.sku, x.customer_part_number, x.quantity, x.unit_price_shown) for x in order.lines[:2]] == [
        (1, "AB3542", None, Decimal(120), Decimal("9.25")), (2, "RD5322", None, Decimal(220), Decimal("13.79"))]


def test_buyer_part_numbers_go_to_the_erp_unless_the_partner_maps_them_and_a_replace_is_refused() -> None:
    po, _ = read_850(only_set((SAMPLES / "x12parser_850_PGWGlass.txt").read_bytes()))
    assert po is not None and po.purpose == "05"
    order, problems = order_from_850(po, PGW, order_id="o2", received_at=AT)
    assert order is None and [p.segment for p in problems] == ["BEG"]  # a replacement is a change, not an order
    po.purpose = "00"
    order, problems = order_from_850(po, PGW, order_id="o2", received_at=AT)
    assert problems == [] and order is not None
    assert [(x.sku, x.customer_part_number) for x in order.lines] == [
        (None, "0459001004"), ("LMP-200W-E39", None), (None, "0670104514"), (None, "0684202074")]
    assert order.currency == "USD" and order.lines[0].requested_date == dt.date(2010, 8, 20)


def test_an_unknown_ship_to_is_a_reason_not_a_guess() -> None:
    po, _ = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert po is not None
    order, problems = order_from_850(po, Partner(name="x", interchange_qualifier="12", interchange_id="4405197800",
                                                 account_id="C-1001"), order_id="o3", received_at=AT)
    assert order is None and [p.message for p in problems] == [
        "ship-to 9:0003947268292 (XYZ RETAIL) is not an address of x's account C-1001"]
