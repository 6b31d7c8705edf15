"""Purchase orders (850) as partners send them: the shared third-party samples and broken orders."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from ordersync.channels.edi.x12 import TransactionSet, read_interchanges
from ordersync.channels.edi.x12.po850 import read_850
from tests.unit.edi.test_x12_envelope import SAMPLES, interchange


def only_set(data: bytes) -> TransactionSet:
    (ts,) = [i for i in read_interchanges(io.BytesIO(data)) if isinstance(i, TransactionSet)]
    return ts


def test_the_vics_sample_reads_with_ship_to_lines_and_item_ids() -> None:
    po, problems = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert problems == [] and po is not None
    assert (po.purpose, po.order_type, po.number, po.date) == ("00", "SA", "08292233294", dt.date(2010, 11, 27))
    assert po.requested_date == dt.date(2010, 12, 14)
    ship_to = po.party("ST")
    assert ship_to is not None and (ship_to.id_qualifier, ship_to.id, ship_to.city) == ("9", "0003947268292", "SOLON")
    first = po.lines[0]
    assert (first.line_id, first.quantity, first.unit, first.unit_price) == ("1", Decimal(120), "EA", Decimal("9.25"))
    assert (first.seller_item, first.buyer_item, first.description) == ("AB3542", "065322-117", "SMALL WIDGET")
    assert po.declared_lines == len(po.lines)


def test_the_indented_sample_reads_currency_buyer_part_numbers_and_line_dates() -> None:
    po, problems = read_850(only_set((SAMPLES / "x12parser_850_PGWGlass.txt").read_bytes()))
    assert problems == [] and po is not None
    assert (po.purpose, po.number, po.currency) == ("05", "S41000439", "USD")
    assert [(line.buyer_item, line.quantity, line.requested_date) for line in po.lines] == [
        ("0459001004", 5, dt.date(2010, 8, 20)), ("0650002027", 12, dt.date(2010, 8, 20)),
        ("0670104514", 2, dt.date(2010, 8, 20)), ("0684202074", 1, dt.date(2010, 8, 20))]
    assert po.lines[1].description == "LAMP, MAXLITE 35873, 200W,"
    assert po.party("ST") is not None and po.party("ST").id == "W_341001"  # type: ignore[union-attr]


def test_an_order_with_errors_says_where_and_what() -> None:
    body = ("ST*850*0001~BEG*00*SA***2026-12-05~PO1*1*-2*EA*abc~PO1*2*3*EA*1.5**BP*X-2~CTT*3~SE*6*0001~")
    po, problems = read_850(only_set(interchange(body)))
    assert po is not None
    assert [(p.segment, p.message.split(":")[0]) for p in problems] == [
        ("BEG", "BEG03"), ("BEG", "BEG05"), ("PO1", "PO102"), ("PO1", "PO104"), ("PO1", "PO1"),
        ("CTT", "CTT01 says '3' lines, the order has 2")]


def test_a_set_without_beg_or_lines_is_no_order() -> None:
    po, problems = read_850(only_set(interchange("ST*850*0001~REF*DP*038~SE*3*0001~")))
    assert po is None and [p.message for p in problems] == ["REF before BEG", "the 850 has no BEG segment"]
    po, problems = read_850(only_set(interchange("ST*850*0001~BEG*00*SA*PO-9**20261205~SE*3*0001~")))
    assert po is not None and [p.message for p in problems] == ["the 850 has no PO1 line"]
