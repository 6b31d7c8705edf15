"""Writing X12: segments joined with a partner's separators, and the envelopes around them (a fixed-width
ISA, GS, ST/SE with their counts). The separators must not occur in the data: :func:`clean` replaces
them (partners' guides ask for it; a separator inside a name would split the element)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ordersync.channels.edi.x12.tokens import Separators

#: what ordersync writes unless a partner's profile says otherwise
DEFAULT_SEPARATORS = Separators(element="*", component=">", segment="~", repetition="^")


@dataclass(frozen=True)
class Parties:
    """Who sends to whom in the ISA and the GS (qualifier ZZ: mutually defined; 01: DUNS; 12: phone)."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    sender_code: str  # GS02
    receiver_code: str  # GS03


def clean(value: str, separators: Separators) -> str:
    """``value`` with every separator (and line break) replaced by a space."""
    for ch in (separators.element, separators.component, separators.segment, separators.repetition or "",
               "\r", "\n"):
        if ch:
            value = value.replace(ch, " ")
    return value


def number(value: Decimal) -> str:
    """A quantity or amount as an element: no exponent, no trailing zeros on a whole number."""
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def segment(tag: str, *elements: str | Sequence[str], separators: Separators = DEFAULT_SEPARATORS) -> str:
    """One segment; a sequence element is a composite (joined with the component separator). Trailing
    empty elements are dropped, as the standard requires."""
    parts = [clean(e, separators) if isinstance(e, str) else separators.component.join(clean(c, separators) for c in e)
             for e in elements]
    while parts and parts[-1] == "":
        parts.pop()
    return separators.element.join([tag, *parts]) + separators.segment


def transaction_set(code: str, control_number: str, body: Iterable[tuple[str, ...]], *,
                    separators: Separators = DEFAULT_SEPARATORS, convention: str = "") -> list[str]:
    """ST, the body's segments (tag first in each tuple) and SE with the count of all of them."""
    out = [segment("ST", code, control_number, convention, separators=separators)]
    out += [segment(tag, *elements, separators=separators) for tag, *elements in body]
    out.append(segment("SE", str(len(out) + 1), control_number, separators=separators))
    return out


def isa(parties: Parties, control_number: int, *, version: str = "00401", ack_requested: bool = False,
        usage: str = "P", at: dt.datetime, separators: Separators = DEFAULT_SEPARATORS) -> str:
    """The fixed-width ISA (106 characters with its terminator)."""
    s = separators
    repetition = (s.repetition or "U") if version >= "00402" else "U"
    fields = ["ISA", "00", " " * 10, "00", " " * 10, parties.sender_qualifier.ljust(2)[:2],
              parties.sender_id.ljust(15)[:15], parties.receiver_qualifier.ljust(2)[:2],
              parties.receiver_id.ljust(15)[:15], at.strftime("%y%m%d"), at.strftime("%H%M"), repetition, version,
              f"{control_number:09d}", "1" if ack_requested else "0", usage, s.component]
    return s.element.join(fields) + s.segment


def iea(groups: int, control_number: int, separators: Separators = DEFAULT_SEPARATORS) -> str:
    return segment("IEA", str(groups), f"{control_number:09d}", separators=separators)


def group(functional_id: str, parties: Parties, control_number: int, version: str, sets: Sequence[list[str]], *,
          at: dt.datetime, separators: Separators = DEFAULT_SEPARATORS) -> list[str]:
    """GS, the transaction sets, GE."""
    out = [segment("GS", functional_id, parties.sender_code, parties.receiver_code, at.strftime("%Y%m%d"),
                   at.strftime("%H%M"), str(control_number), "X", version, separators=separators)]
    for ts in sets:
        out += ts
    out.append(segment("GE", str(len(sets)), str(control_number), separators=separators))
    return out
