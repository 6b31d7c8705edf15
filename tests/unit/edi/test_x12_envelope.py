"""The X12 tokenizer and envelope reader on real third-party documents (../shared/samples/x12, each with
its quirks: a byte-order mark, line breaks as terminators, indentation) and on broken envelopes."""

from __future__ import annotations

import io

import pytest

from ordersync.channels.edi.x12 import (
    GroupClosed,
    InterchangeClosed,
    TransactionSet,
    X12SyntaxError,
    iter_segments,
    read_interchanges,
)
from ordersync.channels.edi.x12 import envelope as env
from tests.support.samples import samples_dir

SAMPLES = samples_dir() / "x12"

# file -> (transaction set codes, functional identifier, segment terminator, component separator)
EXPECTED = {
    "nodex12_850.edi": (["850"], "PO", "~", ">"),
    "nodex12_856.edi": (["856"], "SH", "~", ">"),
    "staedi_997_simple.edi": (["997"], "FA", "~", ":"),
    "x12parser_810_Walmart.txt": (["810"], "IN", "\r", ">"),
    "x12parser_850_PGWGlass.txt": (["850"], "PO", "|", "~"),
    "x12parser_855_Adobe.txt": (["855"], "PR", "\r", ">"),
    "x12parser_856_Gregarican_VICS.txt": (["856"], "SH", "~", ">"),
}


def read(data: bytes, chunk_size: int = 1 << 16) -> list[object]:
    return list(read_interchanges(io.BytesIO(data), chunk_size=chunk_size))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_shared_sample_reads_with_sound_envelopes(name: str) -> None:
    codes, functional_id, terminator, component = EXPECTED[name]
    data = (SAMPLES / name).read_bytes()
    items = read(data)
    sets = [i for i in items if isinstance(i, TransactionSet)]
    groups = [i for i in items if isinstance(i, GroupClosed)]
    (interchange,) = [i for i in items if isinstance(i, InterchangeClosed)]
    assert [s.code for s in sets] == codes
    assert all(s.accepted for s in sets), [(s.code, s.errors) for s in sets]
    assert [(g.group.functional_id, g.errors, g.received, g.accepted) for g in groups] == [
        (functional_id, [], len(codes), len(codes))]
    assert interchange.errors == [] and interchange.groups == 1
    separators = interchange.interchange.separators
    assert (separators.segment, separators.component) == (terminator, component)
    assert sets[0].segments[0].tag not in ("ST", "SE") and sets[0].segments[-1].tag != "SE"
    # read three bytes at a time, the result is the same: segments cut across reads are put together
    small = read(data, chunk_size=3)
    assert [(s.code, [x.elements for x in s.segments]) for s in small if isinstance(s, TransactionSet)] == \
        [(s.code, [x.elements for x in s.segments]) for s in sets]


def test_a_purchase_order_reads_element_by_element() -> None:
    data = (SAMPLES / "nodex12_850.edi").read_bytes()
    (po,) = [i for i in read(data) if isinstance(i, TransactionSet)]
    assert po.interchange.sender_id == "4405197800" and po.interchange.receiver_id == "999999999"
    assert po.interchange.control_number == "000003438" and po.group.version == "004010VICS"
    beg = next(s for s in po.segments if s.tag == "BEG")
    assert (beg[1], beg[2], beg[3], beg[5]) == ("00", "SA", "08292233294", "20101127")
    lines = [s for s in po.segments if s.tag == "PO1"]
    assert [(s[1], s[2], s[3], s[4]) for s in lines[:2]] == [("1", "120", "EA", "9.25"), ("2", "220", "EA", "13.79")]
    assert beg[40] == ""  # elements beyond the last read as empty


def test_the_indented_sample_keeps_its_padded_isa_fields_and_drops_the_byte_order_mark() -> None:
    data = (SAMPLES / "x12parser_850_PGWGlass.txt").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    segments = [seg for _, seg in iter_segments(io.BytesIO(data))]
    assert segments[0].tag == "ISA" and segments[0][6] == "828513080      "
    assert [s.tag for s in segments[1:4]] == ["GS", "ST", "BEG"]  # indentation is not part of the tag


def interchange(body: str, *, iea: str = "IEA*1*000000001~", ge: str = "GE*1*1~") -> bytes:
    isa = "ISA*00*          *00*          *ZZ*BUYER          *ZZ*SELLER         *261205*1200*U*00401*000000001*1*T*>~"
    return (isa + "GS*PO*BUYER*SELLER*20261205*1200*1*X*004010~" + body + ge + iea).encode()


PO = "ST*850*0001~BEG*00*SA*PO-1**20261205~PO1*1*2*EA*9.5**BP*X-1~CTT*1~SE*5*0001~"


def test_a_sound_interchange_asks_for_its_ta1() -> None:
    items = read(interchange(PO))
    assert isinstance(items[0], TransactionSet) and items[0].accepted
    assert items[0].interchange.ack_requested and items[0].interchange.usage == "T"
    assert isinstance(items[-1], InterchangeClosed) and items[-1].errors == []


def test_a_wrong_segment_count_and_a_trailer_that_names_another_set_are_set_errors() -> None:
    body = PO.replace("SE*5*0001", "SE*4*0002")
    (ts,) = [i for i in read(interchange(body)) if isinstance(i, TransactionSet)]
    assert ts.errors == [env.SET_CONTROL_MISMATCH, env.SET_SEGMENT_COUNT]


def test_group_and_interchange_trailers_are_checked() -> None:
    items = read(interchange(PO + PO.replace("0001", "0002"), ge="GE*1*9~", iea="IEA*2*000000007~"))
    (group,) = [i for i in items if isinstance(i, GroupClosed)]
    assert group.errors == [env.GROUP_CONTROL_MISMATCH, env.GROUP_SET_COUNT] and group.received == 2
    assert items[-1].errors == [env.TA1_CONTROL_MISMATCH, env.TA1_GROUP_COUNT]  # type: ignore[union-attr]


def test_a_repeated_set_control_number_in_one_group_is_an_error() -> None:
    items = read(interchange(PO + PO, ge="GE*2*1~"))
    assert [i.errors for i in items if isinstance(i, TransactionSet)] == [[], [env.SET_CONTROL_NOT_UNIQUE]]


def test_a_file_cut_off_inside_a_set_closes_everything_with_the_right_codes() -> None:
    data = interchange(PO)[: -len(b"SE*5*0001~GE*1*1~IEA*1*000000001~")]
    items = read(data)
    assert [type(i).__name__ for i in items] == ["TransactionSet", "GroupClosed", "InterchangeClosed"]
    assert items[0].errors == [env.SET_TRAILER_MISSING]  # type: ignore[union-attr]
    assert items[1].errors == [env.GROUP_TRAILER_MISSING]  # type: ignore[union-attr]
    assert items[2].errors == [env.TA1_PREMATURE_END]  # type: ignore[union-attr]


def test_two_interchanges_back_to_back_each_with_its_own_separators() -> None:
    first = interchange(PO)
    second = first.decode().replace("*", "|").replace("~", "\n").replace(">", "^").encode()
    items = read(first + b"\n" + second)
    closed = [i for i in items if isinstance(i, InterchangeClosed)]
    assert [c.errors for c in closed] == [[], []]
    assert [c.interchange.separators.element for c in closed] == ["*", "|"]
    assert [i.segments[0][3] for i in items if isinstance(i, TransactionSet)] == ["PO-1", "PO-1"]


@pytest.mark.parametrize("data", [b"", b"   \n", b"hello world, not EDI", b"ISA*00*short~"])
def test_what_is_not_x12_says_so(data: bytes) -> None:
    if not data.strip():
        assert read(data) == []
        return
    with pytest.raises(X12SyntaxError):
        read(data)
