"""Segments from a byte stream, with the separators the ISA declares.

An X12 interchange declares its own separators in its first segment, the fixed-length ISA: the
element separator is the character after ``ISA``, the component separator is ISA16 and the segment
terminator is the character right after it; from version 00402 on, ISA11 is the repetition separator.
Real files add what the standard does not: a byte-order mark, a line break after each terminator (or a
line break *as* the terminator), indentation. :func:`iter_segments` reads in chunks, so memory stays
bounded whatever the file's size, and yields one :class:`Segment` at a time.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 16
ISA_LENGTH = 106  # the ISA is fixed length: 3 + 16 separators + the fields' fixed widths


class X12SyntaxError(ValueError):
    """The bytes cannot be read as X12 at all (no ISA, separators that make no sense, a cut-off ISA).
    ``code`` is the TA1 interchange note code to answer with when one is due."""

    def __init__(self, message: str, code: str = "022") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Separators:
    element: str
    component: str
    segment: str
    repetition: str | None = None

    def line_terminated(self) -> bool:
        """The segment terminator is a line break (CR or LF): either ends a segment."""
        return self.segment in "\r\n"


class Segment:
    """One segment: ``tag`` and its elements numbered as in the standard (``seg[1]`` is the first
    element, ``seg[0]`` the tag); a missing trailing element reads as ``""``."""

    __slots__ = ("elements", "position")

    def __init__(self, elements: list[str], position: int) -> None:
        self.elements = elements
        self.position = position  # 1-based ordinal of the segment in the interchange stream

    @property
    def tag(self) -> str:
        return self.elements[0]

    def __getitem__(self, index: int) -> str:
        return self.elements[index] if index < len(self.elements) else ""

    def __len__(self) -> int:
        return len(self.elements) - 1

    def __repr__(self) -> str:
        return f"Segment({'*'.join(self.elements)!r})"


def read_separators(isa: str) -> Separators:
    """The separators an ISA declares (``isa`` starts with ``ISA`` and holds at least the whole ISA)."""
    if not isa.startswith("ISA") or len(isa) < 4:
        raise X12SyntaxError("the interchange does not start with an ISA segment")
    element = isa[3]
    if element.isalnum() or element.isspace():
        raise X12SyntaxError(f"ISA declares {element!r} as its element separator")
    fields = isa.split(element, 16)
    if len(fields) < 17 or len(fields[16]) < 2:
        raise X12SyntaxError("the ISA segment is cut short", code="023")
    component, segment = fields[16][0], fields[16][1]
    if len({element, component, segment}) < 3:
        raise X12SyntaxError(f"the ISA declares clashing separators {element!r}, {component!r}, {segment!r}")
    repetition = fields[11][:1] if len(fields[11]) == 1 else None
    if repetition is not None and (repetition.isalnum() or repetition in (element, component, segment)):
        repetition = None  # 004010 and earlier: ISA11 is the standards identifier ("U"), not a separator
    return Separators(element, component, segment, repetition)


def iter_segments(stream: BinaryIO, *, chunk_size: int = CHUNK, encoding: str = "utf-8"
                  ) -> Iterator[tuple[Separators, Segment]]:
    """Every segment of every interchange in ``stream``, with the separators in force. Several
    interchanges may follow each other; each ISA sets the separators anew."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    buffer = ""
    position = 0
    separators: Separators | None = None
    eof = False
    while True:
        if separators is None:  # look for the next ISA and read its separators
            buffer = buffer.lstrip("\ufeff \t\r\n")
            while len(buffer) < ISA_LENGTH + 2 and not eof:
                data = stream.read(chunk_size)
                eof = not data
                buffer = (buffer + decoder.decode(data, final=eof)).lstrip("\ufeff \t\r\n")
            if not buffer:
                return
            separators = read_separators(buffer[:ISA_LENGTH + 2])
            terminator = separators.segment
            element = separators.element
            split_lines = separators.line_terminated()
        if split_lines:
            pieces = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        else:
            pieces = buffer.split(terminator)
        buffer = pieces.pop()  # the last piece may be incomplete: wait for more
        ended_at = None
        for index, piece in enumerate(pieces):
            piece = piece.lstrip()
            if not piece:
                continue
            position += 1
            elements = piece.split(element)
            if split_lines:
                elements[-1] = elements[-1].rstrip()
            yield separators, Segment(elements, position)
            if elements[0] == "IEA":  # the interchange ends: the next may declare other separators
                ended_at = index
                break
        if ended_at is not None:  # what followed the IEA goes back in front of the buffer, unsplit
            rest = pieces[ended_at + 1:]
            if rest:
                buffer = ("\n" if split_lines else terminator).join([*rest, buffer])
            separators = None
            continue
        if eof:
            last = buffer.strip()
            if last:  # a last segment without its terminator
                position += 1
                yield separators, Segment(last.split(element), position)
            return
        data = stream.read(chunk_size)
        eof = not data
        buffer += decoder.decode(data, final=eof)
