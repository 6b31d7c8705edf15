"""UN/EDIFACT: the tokenizer (UNA delimiters, the release character, composites, streaming in small
chunks), interchanges checked at UNT and UNZ, the ORDERS we read, the CONTRL we answer with, and the
ORDRSP, DESADV and INVOIC we write (read back through the same reader)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from ordersync.canonical.v1 import Invoice, InvoiceLine, InvoiceState, Shipment, ShipmentLine, ShipmentState
from ordersync.channels.edi.edifact import interchange as ic
from ordersync.channels.edi.edifact import syntax
from ordersync.channels.edi.edifact.messages import body_desadv, body_invoic, body_ordrsp, read_orders
from ordersync.channels.edi.x12.ack855 import LineAnswer, LinePart, LineStatus

# an ORDERS as mock-edi 0.9.0 writes one (one segment per line), with a released apostrophe in a name
ORDERS = b"""UNA:+.? '
UNB+UNOC:3+MOCKEDI:ZZ+ORDERSYNC:ZZ+261205:0729+17++++++1'
UNH+1+ORDERS:D:96A:UN'
BGM+220+4500007001+9'
DTM+137:20261205:102'
DTM+2:20261215:102'
NAD+BY+MOCKEDI::92++Mock EDI Supply Co+500 Seaport Boulevard+Boston+MA+02210+US'
NAD+DP+MOCKEDI::92++O?'Brien?+Sons Warehouse+500 Seaport Boulevard+Boston+MA+02210+US'
CUX+2:EUR:9'
LIN+1++BRG-6204-2RS:VP'
QTY+21:10:PCE'
PRI+AAA:6.63'
LIN+2++4006381333931:EN'
PIA+1+BOLT-M8:IN'
QTY+21:20:PCE'
PRI+AAA:3.68'
UNS+S'
CNT+2:2'
UNT+17+1'
UNZ+1+17'
"""


def items(raw: bytes, chunk: int = 1 << 16) -> list[ic.Item]:
    return list(ic.read_interchanges(io.BytesIO(raw)) if chunk == 1 << 16 else _chunked(raw, chunk))


def _chunked(raw: bytes, chunk: int) -> list[ic.Item]:
    class Slow(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            return super().read(chunk)

    return list(ic.read_interchanges(Slow(raw)))


def test_an_orders_is_read_with_its_parties_lines_and_released_characters() -> None:
    message, end = items(ORDERS)
    assert isinstance(message, ic.Message) and isinstance(end, ic.InterchangeEnd)
    assert (message.type, message.reference, message.version, message.errors) == ("ORDERS", "1", "D:96A:UN", [])
    assert (end.interchange.sender_id, end.interchange.sender_qualifier, end.interchange.control_reference,
            end.interchange.test, end.errors) == ("MOCKEDI", "ZZ", "17", True, [])
    po, problems = read_orders(message)
    assert problems == [] and po is not None
    assert (po.purpose, po.number, po.date, po.requested_date, po.currency) == (
        "00", "4500007001", dt.date(2026, 12, 5), dt.date(2026, 12, 15), "EUR")
    ship_to = po.party("ST")
    assert ship_to is not None and (ship_to.id, ship_to.name) == ("MOCKEDI", "O'Brien+Sons Warehouse")
    assert [(x.line_id, x.quantity, x.unit, x.unit_price, x.product_ids) for x in po.lines] == [
        ("1", Decimal(10), "EA", Decimal("6.63"), {"VP": "BRG-6204-2RS"}),
        ("2", Decimal(20), "EA", Decimal("3.68"), {"EN": "4006381333931", "BP": "BOLT-M8"})]


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_the_tokenizer_streams_in_any_chunk_size(chunk: int) -> None:
    assert [type(i).__name__ for i in items(ORDERS, chunk)] == ["Message", "InterchangeEnd"]
    message = items(ORDERS, chunk)[0]
    assert isinstance(message, ic.Message) and len(message.segments) == 15


def test_other_delimiters_and_two_interchanges_in_one_file() -> None:
    """A second interchange, appended by a VAN, declares other delimiters in its own UNA."""
    other = syntax.Delimiters(component="|", element="*", decimal=",", release="!", segment="~")
    segments = [seg for _, seg in syntax.iter_segments(io.BytesIO(ORDERS))]
    rewritten = other.una() + "\n".join(
        syntax.segment(seg.tag, *[e if len(e) > 1 else e[0] for e in seg.elements[1:]], d=other)
        for seg in segments).replace("|0729*17*", "|0729*18*").replace("UNZ*1*17", "UNZ*1*18")
    found = [i for i in items(ORDERS + rewritten.encode()) if isinstance(i, ic.Message)]
    assert len(found) == 2 and all(m.errors == [] for m in found)
    assert "O'Brien+Sons" in rewritten  # neither character is a delimiter there: nothing to release
    po, _ = read_orders(found[1])
    assert po is not None and po.number == "4500007001" and po.lines[0].unit_price == Decimal("6.63")
    ship_to = po.party("ST")
    assert ship_to is not None and ship_to.name == "O'Brien+Sons Warehouse"


def test_counts_and_references_that_disagree_are_syntax_errors() -> None:
    broken = ORDERS.replace(b"UNT+17+1", b"UNT+18+1").replace(b"UNZ+1+17", b"UNZ+2+99")
    message, end = items(broken)
    assert isinstance(message, ic.Message) and message.errors == [ic.COUNT_MISMATCH]
    assert isinstance(end, ic.InterchangeEnd) and end.errors == [ic.REFERENCE_MISMATCH, ic.COUNT_MISMATCH]
    cut = ORDERS.split(b"UNT")[0]
    message, end = items(cut)
    assert isinstance(message, ic.Message) and ic.MISSING in message.errors
    assert isinstance(end, ic.InterchangeEnd) and ic.MISSING in end.errors
    message, end, *_ = items(cut + ORDERS)  # another interchange starts: the cut one ends, its message too
    assert isinstance(message, ic.Message) and ic.MISSING in message.errors
    assert isinstance(end, ic.InterchangeEnd) and end.messages == [("1", "ORDERS", [ic.MISSING])]
    with pytest.raises(syntax.EdifactSyntaxError):
        items(b"ISA*00*not edifact")


def test_the_contrl_answers_the_interchange_and_each_message() -> None:
    *_, end = items(ORDERS)
    assert isinstance(end, ic.InterchangeEnd) and ic.contrl_due(end)
    assert ic.contrl(end) == [("UCI", "17", ["MOCKEDI", "ZZ"], ["ORDERSYNC", "ZZ"], "7"),
                              ("UCM", "1", ["ORDERS", "D", "96A", "UN"], "7")]
    refused = ic.contrl(end, rejected={"1": ic.UNSUPPORTED})
    assert refused[1] == ("UCM", "1", ["ORDERS", "D", "96A", "UN"], "4", "14")
    assert ic.contrl(end, duplicate=True) == [("UCI", "17", ["MOCKEDI", "ZZ"], ["ORDERSYNC", "ZZ"], "4", "26")]
    only_contrl = ic.InterchangeEnd(end.interchange, [("1", "CONTRL", [])])
    assert not ic.contrl_due(only_contrl)  # never acknowledge an acknowledgment


def test_a_partners_contrl_is_read() -> None:
    raw = (b"UNB+UNOC:3+MOCKEDI:ZZ+ORDERSYNC:ZZ+261205:0800+5'UNH+1+CONTRL:D:3:UN'"
           b"UCI+12+ORDERSYNC:ZZ+MOCKEDI:ZZ+7'UCM+3+ORDRSP:D:96A:UN+4+14'UNT+4+1'UNZ+1+5'")
    message, _ = items(raw)
    assert isinstance(message, ic.Message)
    verdict = ic.read_contrl(message)
    assert (verdict.interchange, verdict.action, verdict.messages) == ("12", "7", (("3", "ORDRSP", "4"),))


def _read_back(body: list[tuple[str | list[str], ...]], kind: str) -> ic.Message:
    text = "".join([syntax.DEFAULT.una(), "UNB+UNOC:3+A:ZZ+B:ZZ+261205:0800+1'", f"UNH+1+{kind}:D:96A:UN'"]
                   + [syntax.segment(tag, *rest) for tag, *rest in body]  # type: ignore[arg-type]
                   + [f"UNT+{len(body) + 2}+1'", "UNZ+1+1'"])
    message, end = items(text.encode())
    assert isinstance(message, ic.Message) and message.errors == [] and isinstance(end, ic.InterchangeEnd)
    assert end.errors == []
    return message


def test_ordrsp_desadv_and_invoic_say_what_the_erp_decided() -> None:
    message, _ = items(ORDERS)
    assert isinstance(message, ic.Message)
    po, _ = read_orders(message)
    assert po is not None
    answers = [LineAnswer(po.lines[0], (LinePart(LineStatus.ACCEPTED, Decimal(10), dt.date(2026, 12, 14)),)),
               LineAnswer(po.lines[1], (LinePart(LineStatus.QUANTITY_CHANGED, Decimal(15), dt.date(2026, 12, 14)),
                                        LinePart(LineStatus.BACKORDERED, Decimal(5), dt.date(2027, 1, 8))))]
    ordrsp = _read_back(body_ordrsp(po, answers, number_="4500007001-R", at=dt.date(2026, 12, 5)), "ORDRSP")
    tags = [(s.tag, s.get(1), s.comp(1, 2)) for s in ordrsp.segments]
    assert ("BGM", "231", "") in tags and ("LIN", "2", "") in tags
    assert [s.get(4) for s in ordrsp.segments if s.tag == "BGM"] == ["AC"]  # accepted with changes
    assert [(s.comp(1, 1), s.comp(1, 2)) for s in ordrsp.segments if s.tag == "QTY"] == [
        ("21", "10"), ("113", "10"), ("21", "20"), ("113", "20")]
    assert [s.get(2) for s in ordrsp.segments if s.tag == "LIN"] == ["5", "3"]
    shipment = Shipment(id="sh1", order_id="o1", erp_ref="7", state=ShipmentState.SHIPPED, carrier="DHL",
                        tracking_number="JJD0001", shipped_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
                        lines=(ShipmentLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(10)),
                               ShipmentLine(line_no=2, sku="BOLT-M8", quantity=Decimal(0))))
    desadv = _read_back(body_desadv(po, shipment, at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC)), "DESADV")
    assert [(s.tag, s.comp(1, 1), s.comp(1, 2)) for s in desadv.segments if s.tag in ("QTY", "RFF")] == [
        ("RFF", "ON", "4500007001"), ("RFF", "CN", "JJD0001"), ("QTY", "12", "10"), ("RFF", "ON", "4500007001")]
    invoice = Invoice(id="inv1", order_id="o1", account_id="C-1001", number="INV/2026/0009", state=InvoiceState.POSTED,
                      currency="EUR", untaxed_amount=Decimal("66.30"), tax_amount=Decimal("12.60"),
                      total_amount=Decimal("78.90"), due_date=dt.date(2027, 1, 5),
                      posted_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
                      lines=(InvoiceLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(10),
                                         unit_price=Decimal("6.63"), amount=Decimal("66.30")),))
    invoic = _read_back(body_invoic(po, invoice), "INVOIC")
    assert [(s.comp(1, 1), s.comp(1, 2)) for s in invoic.segments if s.tag == "MOA"] == [
        ("203", "66.30"), ("79", "66.30"), ("124", "12.60"), ("139", "78.90")]
    assert [s.comp(3, 4) for s in invoic.segments if s.tag == "PAT"] == ["30"]  # net 30 days
    assert [s.comp(2, 1) for s in invoic.segments if s.tag == "BGM"] == ["INV/2026/0009"]


def test_writing_releases_delimiters_inside_the_data() -> None:
    assert syntax.segment("NAD", "DP", ["X", "", "92"], "", "O'Brien+Sons: 50% off?") == \
        "NAD+DP+X::92++O?'Brien?+Sons?: 50% off??'"
    assert syntax.segment("FTX", "AAI", "", "", "", "") == "FTX+AAI'"


def test_an_ordchg_is_read_as_the_change_an_860_would_be_and_answered_by_an_ordrsp() -> None:
    from ordersync.channels.edi.edifact.messages import body_ordrsp_change, read_ordchg
    from ordersync.channels.edi.x12.change860 import ChangeAnswer

    raw = (b"UNB+UNOC:3+MOCKEDI:ZZ+ORDERSYNC:ZZ+261205:0800+9'UNH+2+ORDCHG:D:96A:UN'BGM+230+4500007001-1+4'"
           b"DTM+137:20261205:102'RFF+ON:4500007001'LIN+1+3+BRG-6204-2RS:VP'QTY+21:5:PCE'LIN+2+2+X:VP'"
           b"QTY+21:20:PCE'UNS+S'CNT+2:2'UNT+10+2'UNZ+1+9'")
    message, _ = items(raw)
    assert isinstance(message, ic.Message)
    change, problems = read_ordchg(message)
    assert problems == [] and change is not None
    assert (change.purpose, change.po_number, change.sequence) == ("04", "4500007001", "4500007001-1")
    assert [(x.line_id, x.change, x.quantity) for x in change.lines] == [("1", "CA", Decimal(5)),
                                                                         ("2", "DI", Decimal(20))]
    orders_message, _ = items(ORDERS)
    assert isinstance(orders_message, ic.Message)
    po, _ = read_orders(orders_message)
    assert po is not None
    answers = [ChangeAnswer(po.lines[0], "CA", Decimal(5), True),
               ChangeAnswer(po.lines[1], "DI", Decimal(20), False, "the order has already shipped")]
    ordrsp = _read_back(body_ordrsp_change(change, answers, at=dt.date(2026, 12, 5)), "ORDRSP")
    assert [(s.get(1), s.get(2)) for s in ordrsp.segments if s.tag == "LIN"] == [("1", "3"), ("2", "2")]
    assert [s.comp(4, 1) for s in ordrsp.segments if s.tag == "FTX"] == ["the order has already shipped"]
    assert [s.comp(1, 2) for s in ordrsp.segments if s.tag == "RFF"] == ["4500007001", "4500007001-1"]
    cancel = raw.replace(b"BGM+230+4500007001-1+4'", b"BGM+230+4500007001-2+1'")
    message, _ = items(cancel)
    assert isinstance(message, ic.Message)
    cancelled, _ = read_ordchg(message)
    assert cancelled is not None and cancelled.cancels_order
