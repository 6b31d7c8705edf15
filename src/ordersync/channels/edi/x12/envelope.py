"""Interchanges, functional groups and transaction sets, checked as they close.

:func:`read_interchanges` walks the segments of :func:`~ordersync.channels.edi.x12.tokens.iter_segments`
and yields, in order: each :class:`TransactionSet` when its SE arrives (its segments between ST and SE,
its header's errors), a :class:`GroupClosed` at each GE (with the group's errors and the sets' results,
what a 997/999 reports) and an :class:`InterchangeClosed` at each IEA (what a TA1 reports). Only the
current transaction set is held in memory.

Error codes are those the acknowledgments carry: TA1 interchange note codes (I18), 997/999 AK9
functional group codes (716) and AK5/IK5 transaction set codes (718), as far as envelopes go; segment
and element checks belong to each document's model.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ordersync.channels.edi.x12.tokens import Segment, Separators, X12SyntaxError, iter_segments

# TA1 interchange note codes (I18) this reader reports
TA1_CONTROL_MISMATCH = "001"  # ISA13 and IEA02 differ
TA1_GROUP_COUNT = "021"  # IEA01 is not the number of groups
TA1_CONTROL_STRUCTURE = "022"  # segments out of place, nesting broken
TA1_PREMATURE_END = "023"  # the file ended inside the interchange
TA1_INVALID_CONTENT = "024"  # e.g. an invalid GS segment

# 997/999 functional group codes (AK9-05.., 716)
GROUP_TRAILER_MISSING = "3"
GROUP_CONTROL_MISMATCH = "4"
GROUP_SET_COUNT = "5"

# 997/999 transaction set codes (AK5-02.., 718)
SET_TRAILER_MISSING = "2"
SET_CONTROL_MISMATCH = "3"
SET_SEGMENT_COUNT = "4"
SET_CONTROL_NOT_UNIQUE = "23"


@dataclass(frozen=True)
class InterchangeHeader:
    """The ISA: who sends to whom, its control number, version and whether a TA1 is asked for."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    control_number: str
    version: str
    ack_requested: bool
    usage: str  # P production, T test
    separators: Separators

    @classmethod
    def from_segment(cls, isa: Segment, separators: Separators) -> InterchangeHeader:
        return cls(sender_qualifier=isa[5].strip(), sender_id=isa[6].strip(), receiver_qualifier=isa[7].strip(),
                   receiver_id=isa[8].strip(), date=isa[9], time=isa[10], control_number=isa[13].strip(),
                   version=isa[12], ack_requested=isa[14].strip() == "1", usage=isa[15].strip(),
                   separators=separators)


@dataclass(frozen=True)
class GroupHeader:
    """The GS: the functional identifier (PO, PR, SH, IN, FA ...), application IDs, control number and the
    version/release/industry identifier (004010, 005010X..., 004010VICS)."""

    functional_id: str
    sender: str
    receiver: str
    date: str
    time: str
    control_number: str
    agency: str
    version: str

    @classmethod
    def from_segment(cls, gs: Segment) -> GroupHeader:
        return cls(functional_id=gs[1], sender=gs[2].strip(), receiver=gs[3].strip(), date=gs[4], time=gs[5],
                   control_number=gs[6].strip(), agency=gs[7], version=gs[8])


@dataclass
class TransactionSet:
    """One transaction set (ST..SE): its code (850 ...), control number, the segments between ST and
    SE, and envelope errors (718 codes); ``accepted`` when it has none."""

    interchange: InterchangeHeader
    group: GroupHeader
    code: str
    control_number: str
    segments: list[Segment]
    errors: list[str] = field(default_factory=list)
    st_position: int = 0

    @property
    def accepted(self) -> bool:
        return not self.errors


#: a group's first sets are listed one by one in what :class:`GroupClosed` reports (the 997's AK2 loops);
#: past this many only sets in error are, so memory stays flat however large the group
LISTED_SETS = 10_000


@dataclass
class GroupClosed:
    """A functional group has ended (at its GE, or cut short): what its 997/999 reports. ``sets`` lists
    its first :data:`LISTED_SETS` sets and every set in error; ``count`` and ``failed`` count them all."""

    interchange: InterchangeHeader
    group: GroupHeader
    sets: list[tuple[str, str, list[str]]]  # (code, control number, errors) per listed transaction set
    declared: int | None
    errors: list[str] = field(default_factory=list)
    count: int = -1  # every set received (-1: as listed)
    failed: int = -1  # sets with envelope errors (-1: as listed)

    def __post_init__(self) -> None:
        if self.count < 0:
            self.count = len(self.sets)
        if self.failed < 0:
            self.failed = sum(1 for _, _, errors in self.sets if errors)

    @property
    def received(self) -> int:
        return self.count

    @property
    def accepted(self) -> int:
        return self.count - self.failed


class SeenNumbers:
    """Control numbers seen in a group, in little memory when they run in sequence (as senders number
    them): digits are kept as ranges, anything else as itself."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # sorted, disjoint [first, last]
        self.other: set[str] = set()

    def add(self, number: str) -> bool:
        """Remember ``number``; False when it was seen before."""
        if not number.isdigit():
            if number in self.other:
                return False
            self.other.add(number)
            return True
        n = int(number)
        r = self.ranges
        if r and r[-1][1] + 1 == n:  # the common case: the next in sequence
            r[-1][1] = n
            return True
        i = bisect.bisect_right(r, n, key=lambda x: x[0])
        prev = i - 1
        if prev >= 0 and r[prev][1] >= n:
            return False
        join_prev = prev >= 0 and r[prev][1] + 1 == n
        join_next = i < len(r) and r[i][0] - 1 == n
        if join_prev and join_next:
            r[prev][1] = r[i][1]
            del r[i]
        elif join_prev:
            r[prev][1] = n
        elif join_next:
            r[i][0] = n
        else:
            r.insert(i, [n, n])
        return True


@dataclass
class InterchangeClosed:
    """An interchange has ended (at its IEA, or cut short): what its TA1 reports (``errors``: I18 codes)."""

    interchange: InterchangeHeader
    groups: int
    errors: list[str] = field(default_factory=list)


Item = TransactionSet | GroupClosed | InterchangeClosed


def read_interchanges(stream: BinaryIO, *, chunk_size: int = 1 << 16) -> Iterator[Item]:
    """Every transaction set, group end and interchange end in ``stream`` (see the module docstring).
    Raises :class:`X12SyntaxError` only when the bytes are not X12 at all (no ISA)."""
    isa: InterchangeHeader | None = None
    gs: GroupHeader | None = None
    ts: TransactionSet | None = None
    i_errors: list[str] = []
    g_sets: list[tuple[str, str, list[str]]] = []
    g_errors: list[str] = []
    g_count = g_failed = 0
    groups = 0
    set_numbers = SeenNumbers()

    def close_set(se: Segment | None) -> TransactionSet:
        assert ts is not None
        if se is None:
            ts.errors.append(SET_TRAILER_MISSING)
        else:
            if se[2].strip() != ts.control_number:
                ts.errors.append(SET_CONTROL_MISMATCH)
            counted = len(ts.segments) + 2  # ST and SE count themselves
            if not se[1].strip().isdigit() or int(se[1]) != counted:
                ts.errors.append(SET_SEGMENT_COUNT)
        nonlocal g_count, g_failed
        g_count += 1
        if ts.errors:
            g_failed += 1
        if ts.errors or g_count <= LISTED_SETS:
            g_sets.append((ts.code, ts.control_number, list(ts.errors)))
        return ts

    def close_group(ge: Segment | None) -> GroupClosed:
        assert isa is not None and gs is not None
        declared = int(ge[1]) if ge is not None and ge[1].strip().isdigit() else None
        errors = list(g_errors)
        if ge is None:
            errors.append(GROUP_TRAILER_MISSING)
        else:
            if ge[2].strip() != gs.control_number:
                errors.append(GROUP_CONTROL_MISMATCH)
            if declared != g_count:
                errors.append(GROUP_SET_COUNT)
        return GroupClosed(isa, gs, list(g_sets), declared, errors, g_count, g_failed)

    for separators, seg in iter_segments(stream, chunk_size=chunk_size):
        tag = seg.tag
        if ts is not None and tag not in ("SE", "ST", "GE", "GS", "IEA", "ISA"):
            ts.segments.append(seg)  # the common case first
            continue
        if tag == "ISA":
            if isa is not None:  # the previous interchange never ended
                yield from _cut_short(ts, gs, close_set, close_group)
                yield InterchangeClosed(isa, groups, [*i_errors, TA1_PREMATURE_END])
            isa, gs, ts = InterchangeHeader.from_segment(seg, separators), None, None
            i_errors, groups = [], 0
        elif isa is None:
            raise X12SyntaxError(f"segment {tag} before any ISA")
        elif tag == "GS":
            if ts is not None or gs is not None:  # a group inside a group: close what is open
                i_errors.append(TA1_CONTROL_STRUCTURE)
                yield from _cut_short(ts, gs, close_set, close_group)
                ts = None
            gs = GroupHeader.from_segment(seg)
            g_sets, g_errors, set_numbers, g_count, g_failed = [], [], SeenNumbers(), 0, 0
            groups += 1
            if not gs.control_number.isdigit():
                i_errors.append(TA1_INVALID_CONTENT)
        elif tag == "ST":
            if gs is None:
                i_errors.append(TA1_CONTROL_STRUCTURE)
                continue
            if ts is not None:  # the previous set never ended
                yield close_set(None)
            ts = TransactionSet(isa, gs, seg[1], seg[2].strip(), [], st_position=seg.position)
            if not set_numbers.add(ts.control_number):
                ts.errors.append(SET_CONTROL_NOT_UNIQUE)
        elif tag == "SE":
            if ts is None:  # a trailer without its header
                i_errors.append(TA1_CONTROL_STRUCTURE)
                continue
            yield close_set(seg)
            ts = None
        elif tag == "GE":
            if gs is None:
                i_errors.append(TA1_CONTROL_STRUCTURE)
                continue
            if ts is not None:
                yield close_set(None)
                ts = None
            yield close_group(seg)
            gs = None
        elif tag == "IEA":
            yield from _cut_short(ts, gs, close_set, close_group)
            ts = gs = None
            errors = list(i_errors)
            if seg[2].strip() != isa.control_number:
                errors.append(TA1_CONTROL_MISMATCH)
            if not seg[1].strip().isdigit() or int(seg[1]) != groups:
                errors.append(TA1_GROUP_COUNT)
            yield InterchangeClosed(isa, groups, errors)
            isa = None
    if isa is not None:  # the file ended inside an interchange
        yield from _cut_short(ts, gs, close_set, close_group)
        yield InterchangeClosed(isa, groups, [*i_errors, TA1_PREMATURE_END])


def _cut_short(ts: TransactionSet | None, gs: GroupHeader | None,
               close_set: Callable[[Segment | None], TransactionSet],
               close_group: Callable[[Segment | None], GroupClosed]) -> Iterator[Item]:
    """Close what is still open when a trailer never came."""
    if ts is not None:
        yield close_set(None)
    if gs is not None:
        yield close_group(None)
