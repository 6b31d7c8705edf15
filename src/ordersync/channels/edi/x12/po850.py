"""The X12 850 purchase order as we take it: the segments our partners' implementation guides use,
nothing more. :func:`read_850` turns one transaction set into a :class:`PurchaseOrder` and the problems
that keep it from becoming an order (each with the 997/999 set code to reject it with).

Modelled: BEG (purpose, type, PO number, date), CUR (currency), REF, DTM*002 (delivery requested,
header and line), N1 (with N3/N4) per party (ST ship-to, BT bill-to, BY buyer ...), PO1 (line number,
quantity, unit, unit price, product IDs in qualifier/ID pairs), PID (description), CTT (line count).
Anything else is kept as read (``PurchaseOrder.other``) and ignored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ordersync.channels.edi.x12.envelope import TransactionSet
from ordersync.channels.edi.x12.tokens import Segment

#: 997/999 AK5/IK5 code for a set whose segments are in error
SEGMENTS_IN_ERROR = "5"

#: product ID qualifiers (PO1-06.. in pairs) naming the seller's own item number, then the buyer's
SELLER_IDS = ("VN", "VP", "SK", "MG")
BUYER_IDS = ("BP", "IN", "CB", "PI")
GTIN_IDS = ("UK", "UP", "EN", "UA")


@dataclass(frozen=True)
class Problem:
    """Why the order cannot be taken as sent: where (segment position and tag) and what."""

    segment: str
    position: int
    message: str


@dataclass
class Party:
    code: str  # N101: ST ship-to, BT bill-to, BY buyer, SF ship-from ...
    name: str = ""
    id_qualifier: str = ""  # N103: 92 assigned by the buyer, 1/9 DUNS(+4), UL GLN
    id: str = ""
    address: list[str] = field(default_factory=list)
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass
class PoLine:
    line_id: str  # PO101, the buyer's line number
    quantity: Decimal
    unit: str
    unit_price: Decimal | None
    product_ids: dict[str, str]  # qualifier -> ID
    description: str = ""
    requested_date: dt.date | None = None

    @property
    def id_elements(self) -> list[str]:
        """The product IDs as PO1 carries them from PO106 on: qualifier, ID, qualifier, ID ..."""
        return [x for pair in self.product_ids.items() for x in pair]

    @property
    def seller_item(self) -> str | None:
        return next((self.product_ids[q] for q in SELLER_IDS if q in self.product_ids), None)

    @property
    def buyer_item(self) -> str | None:
        return next((self.product_ids[q] for q in BUYER_IDS if q in self.product_ids), None)

    @property
    def gtin(self) -> str | None:
        return next((self.product_ids[q] for q in GTIN_IDS if q in self.product_ids), None)


@dataclass
class PurchaseOrder:
    purpose: str  # BEG01: 00 original, 05 replace, 01 cancellation ...
    order_type: str  # BEG02: SA stand-alone, NE new ...
    number: str  # BEG03
    date: dt.date | None
    currency: str | None = None
    requested_date: dt.date | None = None
    references: dict[str, str] = field(default_factory=dict)
    parties: dict[str, Party] = field(default_factory=dict)
    lines: list[PoLine] = field(default_factory=list)
    declared_lines: int | None = None
    other: list[Segment] = field(default_factory=list)

    def party(self, code: str) -> Party | None:
        return self.parties.get(code)


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date() if len(value) == 8 else \
            dt.datetime.strptime(value, "%y%m%d").date()
    except ValueError:
        return None


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def read_850(ts: TransactionSet) -> tuple[PurchaseOrder | None, list[Problem]]:
    """The purchase order of an 850 set, and what is wrong with it (no order without a BEG and a PO
    number)."""
    problems: list[Problem] = []

    def problem(seg: Segment, message: str) -> None:
        problems.append(Problem(seg.tag, seg.position, message))

    if ts.code != "850":
        return None, [Problem("ST", ts.st_position, f"a {ts.code} is not a purchase order")]
    po: PurchaseOrder | None = None
    party: Party | None = None
    line: PoLine | None = None
    for seg in ts.segments:
        tag = seg.tag
        if tag == "BEG":
            po = PurchaseOrder(purpose=seg[1], order_type=seg[2], number=seg[3].strip(), date=_date(seg[5]))
            if not po.number:
                problem(seg, "BEG03: the purchase order number is missing")
            if po.date is None:
                problem(seg, f"BEG05: {seg[5]!r} is not a date (CCYYMMDD)")
            continue
        if po is None:
            problem(seg, f"{tag} before BEG")
            continue
        if tag == "CUR":
            po.currency = seg[2].strip().upper() or None
        elif tag == "REF":
            po.references[seg[1]] = seg[2] or seg[3]
        elif tag == "DTM" and seg[1] == "002":
            when = _date(seg[2])
            if when is None:
                problem(seg, f"DTM02: {seg[2]!r} is not a date")
            elif line is not None:
                line.requested_date = when
            else:
                po.requested_date = when
        elif tag == "N1":
            party = Party(code=seg[1], name=seg[2], id_qualifier=seg[3], id=seg[4].strip())
            po.parties[party.code] = party
        elif tag == "N3" and party is not None:
            party.address += [part for part in (seg[1], seg[2]) if part]
        elif tag == "N4" and party is not None:
            party.city, party.region, party.postal_code, party.country = seg[1], seg[2], seg[3], seg[4]
        elif tag == "PO1":
            party = None
            quantity, price = _decimal(seg[2]), _decimal(seg[4]) if seg[4] else None
            if quantity is None or quantity <= 0:
                problem(seg, f"PO102: {seg[2]!r} is not a positive quantity")
            if seg[4] and price is None:
                problem(seg, f"PO104: {seg[4]!r} is not a price")
            ids = {seg[i]: seg[i + 1].strip() for i in range(6, len(seg.elements) - 1, 2) if seg[i] and seg[i + 1]}
            line = PoLine(line_id=seg[1] or str(len(po.lines) + 1), quantity=quantity or Decimal(0), unit=seg[3],
                          unit_price=price, product_ids=ids)
            if not ids:
                problem(seg, "PO1: the line names no item (no product ID pair from PO106 on)")
            po.lines.append(line)
        elif tag == "PID" and line is not None:
            line.description = (line.description + " " + seg[5]).strip()
        elif tag == "CTT":
            po.declared_lines = int(seg[1]) if seg[1].isdigit() else None
            if po.declared_lines != len(po.lines):
                problem(seg, f"CTT01 says {seg[1]!r} lines, the order has {len(po.lines)}")
        else:
            po.other.append(seg)
    if po is None:
        return None, [*problems, Problem("ST", ts.st_position, "the 850 has no BEG segment")]
    if not po.lines:
        problems.append(Problem("ST", ts.st_position, "the 850 has no PO1 line"))
    return po, problems
