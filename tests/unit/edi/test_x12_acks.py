"""Writing X12 and acknowledging what was read: a written interchange reads back sound; a 997 (004010)
or 999 (005010) answers every group but a group of acknowledgments; a TA1 when asked or on an envelope
error."""

from __future__ import annotations

import datetime as dt
import io

from ordersync.channels.edi.x12 import GroupClosed, InterchangeClosed, TransactionSet, read_interchanges
from ordersync.channels.edi.x12 import envelope as env
from ordersync.channels.edi.x12.acks import functional_ack, functional_ack_due, ta1, ta1_due
from ordersync.channels.edi.x12.writer import Parties, group, iea, isa, segment, transaction_set
from tests.unit.edi.test_x12_envelope import PO, SAMPLES, interchange

AT = dt.datetime(2026, 12, 5, 14, 30)
US = Parties("ZZ", "KESTREL", "ZZ", "BUYER", "KESTREL", "BUYER")


def write(functional_id: str, version: str, sets: list[list[str]], *, control: int = 7, isa_version: str = "00401"
          ) -> bytes:
    return "".join([isa(US, control, version=isa_version, at=AT),
                    *group(functional_id, US, control, version, sets, at=AT), iea(1, control)]).encode()


def read(data: bytes) -> list[object]:
    return list(read_interchanges(io.BytesIO(data)))


def test_what_we_write_reads_back_with_sound_envelopes_and_clean_elements() -> None:
    po = transaction_set("855", "0001", [("BAK", "00", "AC", "PO*1~x", "20261205"), ("CTT", "1")])
    items = read(write("PR", "004010", [po]))
    (ts,) = [i for i in items if isinstance(i, TransactionSet)]
    assert ts.accepted and ts.code == "855" and ts.segments[0].elements == ["BAK", "00", "AC", "PO 1 x", "20261205"]
    assert [i.errors for i in items if isinstance(i, GroupClosed | InterchangeClosed)] == [[], []]
    header = ts.interchange
    assert (header.sender_id, header.receiver_id, header.control_number) == ("KESTREL", "BUYER", "000000007")
    assert len(isa(US, 7, at=AT)) == 106
    assert segment("N1", "ST", "", "", "") == "N1*ST~" and segment("C", ("a", "b")) == "C*a>b~"


def test_a_997_accepts_the_sound_sets_and_rejects_the_broken_one_with_its_code() -> None:
    broken = PO.replace("0001", "0002").replace("SE*5", "SE*9")
    items = read(interchange(PO + broken, ge="GE*2*1~"))
    (closed,) = [i for i in items if isinstance(i, GroupClosed)]
    assert functional_ack_due(closed)
    code, body = functional_ack(closed)
    assert code == "997"
    assert body == [("AK1", "PO", "1"), ("AK2", "850", "0001"), ("AK5", "A"), ("AK2", "850", "0002"),
                    ("AK5", "R", env.SET_SEGMENT_COUNT), ("AK9", "P", "2", "2", "1")]
    ack = write("FA", "004010", [transaction_set(code, "0001", body)])
    (ts,) = [i for i in read(ack) if isinstance(i, TransactionSet)]
    assert ts.accepted and [s.tag for s in ts.segments] == ["AK1", "AK2", "AK5", "AK2", "AK5", "AK9"]


def test_an_order_that_cannot_be_taken_is_rejected_in_the_ack_and_a_005010_group_gets_a_999() -> None:
    data = interchange(PO).replace(b"*X*004010~", b"*X*005010~")
    (closed,) = [i for i in read(data) if isinstance(i, GroupClosed)]
    code, body = functional_ack(closed, rejected={"0001": ["5"]})
    assert code == "999"
    assert body == [("AK1", "PO", "1", "005010"), ("AK2", "850", "0001"), ("IK5", "R", "5"),
                    ("AK9", "R", "1", "1", "0")]


def test_acknowledgments_are_never_acknowledged() -> None:
    items = read((SAMPLES / "staedi_997_simple.edi").read_bytes())
    (closed,) = [i for i in items if isinstance(i, GroupClosed)]
    assert closed.group.functional_id == "FA" and not functional_ack_due(closed)


def test_a_ta1_when_asked_for_and_on_an_envelope_error_only() -> None:
    (asked,) = [i for i in read(interchange(PO)) if isinstance(i, InterchangeClosed)]
    assert ta1_due(asked) and ta1(asked) == ("TA1", "000000001", "261205", "1200", "A", "000")
    quiet = interchange(PO).replace(b"*000000001*1*T*", b"*000000001*0*T*")
    (not_asked,) = [i for i in read(quiet) if isinstance(i, InterchangeClosed)]
    assert not ta1_due(not_asked)
    mismatch = quiet.replace(b"IEA*1*000000001", b"IEA*1*000000002")
    (bad,) = [i for i in read(mismatch) if isinstance(i, InterchangeClosed)]
    assert ta1_due(bad) and ta1(bad)[4:] == ("R", env.TA1_CONTROL_MISMATCH)


def test_a_large_group_lists_its_first_sets_and_every_rejected_one_and_counts_them_all() -> None:
    from ordersync.channels.edi.x12.envelope import LISTED_SETS, SeenNumbers

    n = LISTED_SETS + 50
    sets = "".join(f"ST*850*{i:05d}~BEG*00*SA*PO{i}**20261205~SE*3*{i:05d}~" for i in range(1, n + 1))
    sets += "ST*850*00007~BEG*00*SA*DUP**20261205~SE*3*00007~"  # a control number used before: rejected
    raw = ("ISA*00*          *00*          *ZZ*BUYER          *ZZ*KESTREL        *261205*1200*U*00401*000000001*0*P*>~"
           f"GS*PO*BUYER*KESTREL*20261205*1200*1*X*004010~{sets}GE*{n + 1}*1~IEA*1*000000001~").encode()
    (closed,) = [i for i in read_interchanges(io.BytesIO(raw)) if isinstance(i, GroupClosed)]
    assert (closed.received, closed.accepted, closed.errors) == (n + 1, n, [])
    assert len(closed.sets) == LISTED_SETS + 1  # the first ones, and the rejected one past them
    _, body = functional_ack(closed, rejected={f"{n:05d}": ["5"]}, codes={})
    assert body[-1] == ("AK9", "P", str(n + 1), str(n + 1), str(n - 1))
    assert ("AK2", "850", "00007") in body and ("AK2", "850", f"{n:05d}") in body
    seen = SeenNumbers()
    assert [seen.add(x) for x in ("3", "1", "2", "5", "4", "2", "0004", "A1", "A1")] == \
        [True, True, True, True, True, False, False, True, False]
    assert seen.ranges == [[1, 5]]
