"""EDIFACT interchanges and messages, checked as they close, and the CONTRL that answers them.

:func:`read_interchanges` yields each :class:`Message` at its UNT (its segments between UNH and UNT and
its errors) and an :class:`InterchangeEnd` at each UNZ (the interchange's errors and its messages'
verdicts: what a CONTRL reports). One message is held at a time. Functional groups (UNG/UNE) are
passed through: their messages are read like any other.

Error codes are the syntax error codes (data element 0085) a CONTRL carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ordersync.channels.edi.edifact.syntax import Delimiters, Segment, iter_segments

# 0085 syntax error codes we report
UNSUPPORTED = "14"  # a message type we do not take (in the UCM)
MISSING = "13"  # a required segment (UNT, UNZ) missing
REFERENCE_MISMATCH = "28"  # UNT/UNZ names another reference than its header
COUNT_MISMATCH = "29"  # UNT/UNZ counts wrong
DUPLICATE = "26"  # an interchange seen before

#: the message directory we trade (D.96A, UN), and the CONTRL's own (the syntax's: D:3:UN)
DIRECTORY = ("D", "96A", "UN")
SERVICE = ("D", "3", "UN")

ACCEPTED = "7"  # 0083 action: this level acknowledged and accepted
REJECTED = "4"  # this level rejected


@dataclass(frozen=True)
class Header:
    """The UNB: syntax, who sends to whom (ID and qualifier), when, the control reference (0020), an
    acknowledgment request (0031) and the test indicator (0035)."""

    syntax: str
    sender_id: str
    sender_qualifier: str
    recipient_id: str
    recipient_qualifier: str
    date: str
    time: str
    control_reference: str
    ack_requested: bool
    test: bool
    delimiters: Delimiters

    @classmethod
    def from_segment(cls, unb: Segment, d: Delimiters) -> Header:
        return cls(syntax=":".join(unb.elements[1]) if len(unb.elements) > 1 else "", sender_id=unb.comp(2, 1),
                   sender_qualifier=unb.comp(2, 2), recipient_id=unb.comp(3, 1), recipient_qualifier=unb.comp(3, 2),
                   date=unb.comp(4, 1), time=unb.comp(4, 2), control_reference=unb.get(5),
                   ack_requested=unb.get(9) == "1", test=unb.get(11) == "1", delimiters=d)


@dataclass
class Message:
    interchange: Header
    reference: str  # UNH 0062
    type: str  # ORDERS, ORDCHG, CONTRL ...
    version: str  # D:96A:UN
    segments: list[Segment]
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.errors


@dataclass
class InterchangeEnd:
    interchange: Header
    messages: list[tuple[str, str, list[str]]]  # (reference, type, errors) per message
    errors: list[str] = field(default_factory=list)


Item = Message | InterchangeEnd


def read_interchanges(stream: BinaryIO) -> Iterator[Item]:
    header: Header | None = None
    message: Message | None = None
    messages: list[tuple[str, str, list[str]]] = []
    i_errors: list[str] = []
    count = 0

    def closed(done: Message, *errors: str) -> Message:
        """``done`` as it ends (at its UNT, or cut short with ``errors``), recorded for the CONTRL."""
        done.errors.extend(errors)
        messages.append((done.reference, done.type, done.errors))
        return done

    for d, seg in iter_segments(stream):
        tag = seg.tag
        if tag == "UNB":
            if header is not None:  # the previous interchange never ended: its open message is reported too
                if message is not None:
                    yield closed(message, MISSING)
                yield InterchangeEnd(header, messages, [*i_errors, MISSING])
            header, messages, i_errors, count, message = Header.from_segment(seg, d), [], [], 0, None
        elif header is None:
            continue
        elif tag == "UNH":
            if message is not None:
                yield closed(message, MISSING)
            count += 1
            message = Message(header, seg.get(1), seg.comp(2, 1), ":".join(seg.elements[2][1:4])
                              if len(seg.elements) > 2 else "", [])
        elif tag == "UNT":
            if message is None:
                i_errors.append(MISSING)
                continue
            if seg.get(2) != message.reference:
                message.errors.append(REFERENCE_MISMATCH)
            if not seg.get(1).isdigit() or int(seg.get(1)) != len(message.segments) + 2:
                message.errors.append(COUNT_MISMATCH)
            yield closed(message)
            message = None
        elif tag in ("UNG", "UNE"):
            continue
        elif tag == "UNZ":
            if message is not None:
                yield closed(message, MISSING)
                message = None
            if seg.get(2) != header.control_reference:
                i_errors.append(REFERENCE_MISMATCH)
            if not seg.get(1).isdigit() or int(seg.get(1)) != count:
                i_errors.append(COUNT_MISMATCH)
            yield InterchangeEnd(header, messages, i_errors)
            header = None
        elif message is not None:
            message.segments.append(seg)
    if header is not None:
        if message is not None:
            yield closed(message, MISSING)
        yield InterchangeEnd(header, messages, [*i_errors, MISSING])


def contrl_due(end: InterchangeEnd) -> bool:
    """A CONTRL answers every interchange, except one that carries only CONTRLs (never acknowledge an
    acknowledgment)."""
    return not end.messages or any(kind != "CONTRL" for _, kind, _ in end.messages)


def contrl(end: InterchangeEnd, *, rejected: dict[str, str] | None = None, duplicate: bool = False
           ) -> list[tuple[str | list[str], ...]]:
    """The body of the CONTRL answering ``end`` (UCI, then a UCM per message). ``rejected``: message
    reference -> 0085 code of a message refused past the syntax (one we do not take)."""
    h = end.interchange
    rejected = rejected or {}
    sender, recipient = [h.sender_id, h.sender_qualifier], [h.recipient_id, h.recipient_qualifier]
    if duplicate:
        return [("UCI", h.control_reference, sender, recipient, REJECTED, DUPLICATE)]
    verdicts = []
    for reference, kind, errors in end.messages:
        code = errors[0] if errors else rejected.get(reference)
        verdicts.append(("UCM", reference, [kind, *DIRECTORY], REJECTED if code else ACCEPTED,
                         *((code,) if code else ())))
    if end.errors:
        return [("UCI", h.control_reference, sender, recipient, REJECTED, end.errors[0])]
    # the interchange itself is sound (7) even when a message in it is refused (4 on that UCM)
    return [("UCI", h.control_reference, sender, recipient, ACCEPTED), *verdicts]


@dataclass(frozen=True)
class Verdict:
    interchange: str  # UCI 0020: the interchange of ours it answers
    action: str
    messages: tuple[tuple[str, str, str], ...]  # (message reference, type, action) per UCM


def read_contrl(message: Message) -> Verdict:
    """A partner's CONTRL for one of our interchanges."""
    uci = next((s for s in message.segments if s.tag == "UCI"), None)
    ucms = tuple((s.get(1), s.comp(2, 1), s.get(3)) for s in message.segments if s.tag == "UCM")
    return Verdict(uci.get(1) if uci else "", uci.get(4) if uci else "", ucms)
