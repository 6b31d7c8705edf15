"""UN/EDIFACT syntax as far as we trade it (ISO 9735 syntax versions 3 and 4): the service string advice
(UNA) that declares the separators, a streaming tokenizer that honours the release character, segments
with composite elements, and writing segments back with the separators released inside the data.

One segment is held at a time; :func:`iter_segments` reads the stream in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO


class EdifactSyntaxError(ValueError):
    """The bytes are not an EDIFACT interchange at all."""


@dataclass(frozen=True)
class Delimiters:
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str = "?"
    segment: str = "'"

    def una(self) -> str:
        return f"UNA{self.component}{self.element}{self.decimal}{self.release} {self.segment}"


DEFAULT = Delimiters()


class Segment:
    """A segment: ``tag`` and its elements, each a list of components (``seg.get(1)`` is the first
    element's first component, ``seg.comp(2, 1)`` the second element's first component; absent ones
    read as ``""``)."""

    __slots__ = ("elements", "position")

    def __init__(self, elements: list[list[str]], position: int) -> None:
        self.elements = elements
        self.position = position

    @property
    def tag(self) -> str:
        return self.elements[0][0] if self.elements and self.elements[0] else ""

    def comp(self, element: int, component: int) -> str:
        if element >= len(self.elements):
            return ""
        parts = self.elements[element]
        return parts[component - 1] if 0 < component <= len(parts) else ""

    def get(self, element: int) -> str:
        return self.comp(element, 1)

    def __len__(self) -> int:
        return len(self.elements) - 1

    def __repr__(self) -> str:
        return f"Segment({'+'.join(':'.join(e) for e in self.elements)!r})"


def sniff(head: bytes) -> bool:
    """Whether ``head`` (the first bytes, leading whitespace and a BOM allowed) opens an EDIFACT
    interchange."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"UNA") or text.startswith(b"UNB")


def iter_segments(stream: BinaryIO, *, chunk_size: int = 1 << 16, encoding: str = "latin-1"
                  ) -> Iterator[tuple[Delimiters, Segment]]:
    """Every segment of the interchange(s) in ``stream`` with the delimiters in force (a UNA, or the
    defaults). Line breaks between segments are ignored."""
    delimiters = DEFAULT
    buffer = ""
    position = 0
    started = False
    while True:
        chunk = stream.read(chunk_size)
        if chunk:
            buffer += chunk.decode(encoding)
        if not started:
            stripped = buffer.lstrip("\ufeff\xef\xbb\xbf \t\r\n")
            if len(stripped) < 9 and chunk:
                continue
            if stripped.startswith("UNA"):
                if len(stripped) < 9:
                    raise EdifactSyntaxError("a UNA shorter than its nine characters")
                delimiters = _una(stripped[3:9])
                stripped = stripped[9:]
            elif not stripped.startswith("UNB"):
                raise EdifactSyntaxError(f"an EDIFACT interchange starts with UNA or UNB, not {stripped[:3]!r}")
            buffer = stripped
            started = True
        start = 0
        i = 0
        n = len(buffer)
        release, terminator = delimiters.release, delimiters.segment
        while i < n:
            ch = buffer[i]
            if ch == release:
                i += 2
                continue
            if ch == terminator:
                text = buffer[start:i].strip("\r\n")
                start = i + 1
                if text:
                    position += 1
                    yield delimiters, parse_segment(text, delimiters, position)
                    if text.startswith("UNZ"):  # another interchange may follow, with its own UNA
                        rest = buffer[start:].lstrip("\r\n \t")
                        if rest.startswith("UNA") and len(rest) >= 9:
                            delimiters = _una(rest[3:9])
                            buffer = rest[9:]
                            start, i, n = 0, 0, len(buffer)
                            release, terminator = delimiters.release, delimiters.segment
                            continue
            i += 1
        buffer = buffer[start:]
        if not chunk:
            if buffer.strip("\r\n \t"):
                position += 1
                yield delimiters, parse_segment(buffer.strip("\r\n"), delimiters, position)
            return


def _una(advice: str) -> Delimiters:
    """The delimiters of a UNA's six characters (component, element, decimal, release, reserved, segment)."""
    return Delimiters(component=advice[0], element=advice[1], decimal=advice[2], release=advice[3],
                      segment=advice[5])


def _split(text: str, separator: str, release: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == release and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
            continue
        if ch == separator:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


def parse_segment(text: str, d: Delimiters, position: int) -> Segment:
    """One segment's text (without its terminator) into elements and components, releases undone."""
    if d.release not in text:  # the common case: plain splits
        return Segment([e.split(d.component) for e in text.split(d.element)], position)
    elements = _split_keep(text, d.element, d.release)
    return Segment([_split(e, d.component, d.release) for e in elements], position)


def _split_keep(text: str, separator: str, release: str) -> list[str]:
    """Split on ``separator`` outside releases, keeping the release characters for the next split."""
    out: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == release:
            i += 2
            continue
        if text[i] == separator:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def release(value: str, d: Delimiters = DEFAULT) -> str:
    """``value`` with every delimiter (and the release character itself) released."""
    out = value.replace("\r", " ").replace("\n", " ")
    for ch in (d.release, d.component, d.element, d.segment):
        out = out.replace(ch, d.release + ch)
    return out


def segment(tag: str, *elements: str | Sequence[str], d: Delimiters = DEFAULT) -> str:
    """One segment; a sequence element is a composite. Trailing empty elements and components are
    dropped, as the syntax asks."""
    parts: list[str] = []
    for e in elements:
        if isinstance(e, str):
            parts.append(release(e, d))
        else:
            comps = [release(c, d) for c in e]
            while comps and comps[-1] == "":
                comps.pop()
            parts.append(d.component.join(comps))
    while parts and parts[-1] == "":
        parts.pop()
    return d.element.join([tag, *parts]) + d.segment
