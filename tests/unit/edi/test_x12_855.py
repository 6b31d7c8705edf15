"""The 855 answering a partner's 850, line by line, written and read back."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from ordersync.channels.edi.x12 import TransactionSet, read_interchanges
from ordersync.channels.edi.x12.ack855 import LineAnswer, LinePart, LineStatus, ack_type, body_855
from ordersync.channels.edi.x12.po850 import read_850
from ordersync.channels.edi.x12.writer import transaction_set
from tests.unit.edi.test_x12_850 import only_set
from tests.unit.edi.test_x12_acks import write
from tests.unit.edi.test_x12_envelope import SAMPLES


def test_an_855_answers_the_sample_order_line_by_line_and_reads_back() -> None:
    po, _ = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert po is not None
    first, second = po.lines[0], po.lines[1]
    answers = [LineAnswer(first, (LinePart(LineStatus.ACCEPTED, first.quantity),)),
               LineAnswer(second, (LinePart(LineStatus.ACCEPTED, Decimal(200)),
                                   LinePart(LineStatus.BACKORDERED, Decimal(20), dt.date(2026, 12, 30))))]
    body = body_855(po.number, po.date, answers, at=dt.date(2026, 12, 5))
    (ts,) = [i for i in read_interchanges(io.BytesIO(write("PR", "004010", [transaction_set("855", "0001", body)])))
             if isinstance(i, TransactionSet)]
    assert ts.accepted
    assert [s.elements for s in ts.segments] == [
        ["BAK", "00", "AC", "08292233294", "20101127", "", "", "", "", "20261205"],
        ["PO1", "1", "120", "EA", "9.25", "", "CB", "065322-117", "PR", "RO", "VN", "AB3542"],
        ["ACK", "IA", "120", "EA"],
        ["PO1", "2", "220", "EA", "13.79", "", "CB", "066850-116", "PR", "RO", "VN", "RD5322"],
        ["ACK", "IA", "200", "EA"],
        ["ACK", "IB", "20", "EA", "068", "20261230"],
        ["CTT", "2"]]


def test_the_acknowledgment_type_says_as_ordered_changed_or_rejected() -> None:
    po, _ = read_850(only_set((SAMPLES / "nodex12_850.edi").read_bytes()))
    assert po is not None
    line = po.lines[0]
    assert ack_type([LineAnswer(line, (LinePart(LineStatus.ACCEPTED, line.quantity),))]) == "AD"
    assert ack_type([LineAnswer(line, (LinePart(LineStatus.QUANTITY_CHANGED, Decimal(100)),))]) == "AC"
    assert ack_type([LineAnswer(line, (LinePart(LineStatus.REJECTED, line.quantity),))]) == "RJ"
