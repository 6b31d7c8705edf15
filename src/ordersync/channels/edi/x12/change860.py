"""The X12 860 purchase order change (what the buyer asks) and the 865 change acknowledgment (what the
ERP, the authority, decided). Modelled: BCH (purpose: 01 cancel the order, 04 change; PO number, change
sequence, dates), POC per line (the buyer's line number, change type, the quantity the line should
have, unit, price, product IDs), DTM*002 (a new requested date); BCA, POC, ACK, REF*ZZ (the reason of
a refused line) and CTT in the 865.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.channels.edi.x12.envelope import TransactionSet
from ordersync.channels.edi.x12.po850 import PoLine, Problem, _date, _decimal
from ordersync.channels.edi.x12.writer import number

CANCEL_ORDER = "01"
CHANGE_ORDER = "04"
#: POC02 change types we apply: quantity or date changes, and deleting a line
QUANTITY_CHANGES = frozenset({"CA", "QD", "QI", "NC"})
DELETE_LINE = "DI"


@dataclass
class ChangeLine:
    line_id: str  # POC01, the buyer's line number in the order
    change: str  # POC02
    quantity: Decimal | None  # POC03: what the line should be
    unit: str
    unit_price: Decimal | None
    product_ids: dict[str, str]
    requested_date: dt.date | None = None


@dataclass
class ChangeOrder:
    purpose: str  # BCH01
    po_number: str  # BCH03
    sequence: str  # BCH05
    po_date: dt.date | None  # BCH06
    requested_on: dt.date | None  # BCH11: when the change was asked for
    lines: list[ChangeLine] = field(default_factory=list)

    @property
    def cancels_order(self) -> bool:
        return self.purpose == CANCEL_ORDER


def read_860(ts: TransactionSet) -> tuple[ChangeOrder | None, list[Problem]]:
    problems: list[Problem] = []
    change: ChangeOrder | None = None
    line: ChangeLine | None = None
    for seg in ts.segments:
        if seg.tag == "BCH":
            change = ChangeOrder(purpose=seg[1], po_number=seg[3].strip(), sequence=seg[5], po_date=_date(seg[6]),
                                 requested_on=_date(seg[11]))
            if not change.po_number:
                problems.append(Problem("BCH", seg.position, "BCH03: the purchase order number is missing"))
        elif change is None:
            continue
        elif seg.tag == "POC":
            quantity = _decimal(seg[3]) if seg[3] else None
            ids = {seg[i]: seg[i + 1].strip() for i in range(8, len(seg.elements) - 1, 2) if seg[i] and seg[i + 1]}
            line = ChangeLine(line_id=seg[1], change=seg[2], quantity=quantity, unit=seg[5],
                              unit_price=_decimal(seg[6]) if seg[6] else None, product_ids=ids)
            change.lines.append(line)
        elif seg.tag == "DTM" and seg[1] == "002" and line is not None:
            line.requested_date = _date(seg[2])
    if change is None:
        return None, [*problems, Problem("ST", ts.st_position, "the 860 has no BCH segment")]
    return change, problems


@dataclass(frozen=True)
class ChangeAnswer:
    """One line of the 865: the change asked for, and what became of it (``reason`` when refused)."""

    line: PoLine
    change: str
    quantity: Decimal  # the line's quantity now
    applied: bool
    reason: str = ""


def body_865(change: ChangeOrder, answers: list[ChangeAnswer], *, at: dt.date) -> list[tuple[str, ...]]:
    """BCA: AC when something was applied, RD (rejected with detail) when nothing was."""
    kind = "AC" if any(a.applied for a in answers) else "RD"
    po_date = change.po_date or at
    body: list[tuple[str, ...]] = [("BCA", change.purpose if change.purpose in ("01", "04") else "04", kind,
                                    change.po_number, "", change.sequence, po_date.strftime("%Y%m%d"), "", "", "",
                                    at.strftime("%Y%m%d"),
                                    (change.requested_on or at).strftime("%Y%m%d"))]
    for a in answers:
        price = "" if a.line.unit_price is None else format(a.line.unit_price, "f")
        body.append(("POC", a.line.line_id, a.change, number(a.quantity), "", a.line.unit, price, "",
                     *a.line.id_elements))
        if not a.applied:
            body.append(("ACK", "IR", number(a.quantity), a.line.unit))
            body.append(("REF", "ZZ", "", a.reason[:80]))
        elif a.change == DELETE_LINE or a.quantity == 0:
            body.append(("ACK", "IR", "0", a.line.unit))
            body.append(("REF", "ZZ", "", "Line deleted at the buyer's request"))
        else:
            body.append(("ACK", "IA", number(a.quantity), a.line.unit))
    body.append(("CTT", str(len(answers))))
    return body
