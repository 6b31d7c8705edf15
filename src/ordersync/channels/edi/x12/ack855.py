"""The X12 855 purchase order acknowledgment: our answer to an 850 once the order is decided, line by
line from what the ERP decided (accepted as ordered, quantity changed, rejected, or part backordered to
a promised date). Modelled: BAK, PO1 (echoing the buyer's line and item IDs), ACK per line status, CTT.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from ordersync.channels.edi.x12.po850 import PoLine
from ordersync.channels.edi.x12.writer import number


class LineStatus(StrEnum):
    """ACK01 line item status codes we send."""

    ACCEPTED = "IA"  # accepted as ordered
    PRICE_CHANGED = "IP"  # accepted, at another price
    QUANTITY_CHANGED = "IQ"  # accepted, another quantity
    REJECTED = "IR"
    BACKORDERED = "IB"  # to come later, on the promised date


@dataclass(frozen=True)
class LinePart:
    """One part of a line's answer: ``quantity`` in ``status``, by ``date`` (ship date promised)."""

    status: LineStatus
    quantity: Decimal
    date: dt.date | None = None


@dataclass(frozen=True)
class LineAnswer:
    line: PoLine
    parts: tuple[LinePart, ...]
    unit_price: Decimal | None = None  # our price, when it is not the one the buyer sent

    @property
    def as_ordered(self) -> bool:
        return len(self.parts) == 1 and self.parts[0].status is LineStatus.ACCEPTED and \
            self.parts[0].quantity == self.line.quantity


def ack_type(answers: list[LineAnswer]) -> str:
    """BAK02: AD all lines as ordered, RJ all rejected, AC accepted with changes."""
    if all(a.as_ordered for a in answers):
        return "AD"
    if all(p.status is LineStatus.REJECTED for a in answers for p in a.parts):
        return "RJ"
    return "AC"


def body_855(po_number: str, po_date: dt.date | None, answers: list[LineAnswer], *, at: dt.date
             ) -> list[tuple[str, ...]]:
    """The segments between ST and SE of the 855 answering purchase order ``po_number``."""
    body: list[tuple[str, ...]] = [("BAK", "00", ack_type(answers), po_number,
                                    po_date.strftime("%Y%m%d") if po_date else "", "", "", "", "",
                                    at.strftime("%Y%m%d"))]
    for answer in answers:
        line = answer.line
        unit_price = line.unit_price if answer.unit_price is None else answer.unit_price
        price = "" if unit_price is None else format(unit_price, "f")
        body.append(("PO1", line.line_id, number(line.quantity), line.unit, price, "", *line.id_elements))
        for part in answer.parts:
            dated = ("068", part.date.strftime("%Y%m%d")) if part.date else ()
            body.append(("ACK", part.status.value, number(part.quantity), line.unit, *dated))
    body.append(("CTT", str(len(answers))))
    return body
