"""The EDIFACT D.96A messages we trade, as far as our partners' guides use them.

- ORDERS in (:func:`read_orders`): BGM (220, the order number, 1225 message function: 9 original, 1
  cancel, 4 change, 5 replace), DTM 137/2, NAD (BY buyer, SU supplier, DP delivery party = ship-to, with
  its ID and code list), CUX, LIN with the item number and its type (7143: SA/VP supplier's, IN/BP
  buyer's, EN/SRV GTIN), PIA, QTY+21, PRI+AAA, DTM+2 per line, IMD. It becomes the same
  :class:`~ordersync.channels.edi.x12.po850.PurchaseOrder` an 850 does, so one mapping serves both.
- ORDRSP (answer to ORDERS), DESADV (a shipment), INVOIC (an invoice) out, written from the ERP's truth.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.canonical.v1 import Invoice, Shipment
from ordersync.channels.edi.edifact.interchange import Message
from ordersync.channels.edi.x12.ack855 import LineAnswer, LineStatus
from ordersync.channels.edi.x12.change860 import CANCEL_ORDER, CHANGE_ORDER, ChangeAnswer, ChangeLine, ChangeOrder
from ordersync.channels.edi.x12.po850 import Party, PoLine, Problem, PurchaseOrder, _date, _decimal
from ordersync.channels.edi.x12.writer import number

#: 1225 message function -> the BEG01 purpose it means
PURPOSES = {"9": "00", "1": "01", "4": "04", "5": "05"}
#: 7143 item number types -> the X12 qualifiers the order model speaks
ITEM_TYPES = {"SA": "VP", "VP": "VP", "VN": "VP", "IN": "BP", "BP": "BP", "BY": "BP", "EN": "EN", "SRV": "EN",
              "UP": "UP"}
#: UN/ECE units (6411) -> X12 units; a unit not listed is passed through
UNITS = {"PCE": "EA", "EA": "EA", "C62": "EA", "PR": "PR", "KGM": "KG", "MTR": "M", "CT": "CA", "PK": "PK"}
UNITS_BACK = {"EA": "PCE", "KG": "KGM", "M": "MTR", "CA": "CT"}
#: NAD 3035 -> the N1 entity codes of the order model (DP delivery party is the ship-to)
PARTY_CODES = {"DP": "ST", "ST": "ST", "BY": "BY", "SU": "SE", "IV": "BT"}


def _edifact_date(seg_value: str, fmt: str) -> dt.date | None:
    if fmt in ("203", "204") and len(seg_value) >= 8:
        return _date(seg_value[:8])
    return _date(seg_value)


def read_orders(message: Message) -> tuple[PurchaseOrder | None, list[Problem]]:
    problems: list[Problem] = []
    if message.type != "ORDERS":
        return None, [Problem("UNH", 0, f"an {message.type} is not a purchase order")]
    po: PurchaseOrder | None = None
    line: PoLine | None = None
    for seg in message.segments:
        tag = seg.tag
        if tag == "BGM":
            po = PurchaseOrder(purpose=PURPOSES.get(seg.get(3) or "9", seg.get(3)), order_type=seg.get(1),
                               number=seg.comp(2, 1).strip(), date=None)
            if not po.number:
                problems.append(Problem("BGM", seg.position, "BGM 1004: the order number is missing"))
            continue
        if po is None:
            continue
        if tag == "DTM":
            when = _edifact_date(seg.comp(1, 2), seg.comp(1, 3))
            if seg.comp(1, 1) == "137":
                po.date = when
            elif seg.comp(1, 1) in ("2", "64", "69"):
                if line is not None:
                    line.requested_date = when
                else:
                    po.requested_date = when
        elif tag == "NAD":
            code = PARTY_CODES.get(seg.get(1), seg.get(1))
            po.parties[code] = Party(code=code, name=seg.comp(4, 1) or seg.comp(3, 1), id_qualifier=seg.comp(2, 3),
                                     id=seg.comp(2, 1).strip(), address=[a for a in (seg.comp(5, 1),) if a],
                                     city=seg.get(6), region=seg.get(7), postal_code=seg.get(8), country=seg.get(9))
        elif tag == "CUX":
            po.currency = seg.comp(1, 2).upper() or None
        elif tag == "RFF":
            po.references[seg.comp(1, 1)] = seg.comp(1, 2)
        elif tag == "LIN":
            ids = {}
            if seg.comp(3, 1):
                ids[ITEM_TYPES.get(seg.comp(3, 2), seg.comp(3, 2) or "VP")] = seg.comp(3, 1).strip()
            line = PoLine(line_id=seg.get(1) or str(len(po.lines) + 1), quantity=Decimal(0), unit="",
                          unit_price=None, product_ids=ids)
            po.lines.append(line)
        elif tag == "PIA" and line is not None:
            for i in range(2, min(len(seg.elements), 7)):
                if seg.comp(i, 1):
                    line.product_ids.setdefault(ITEM_TYPES.get(seg.comp(i, 2), seg.comp(i, 2)), seg.comp(i, 1).strip())
        elif tag == "QTY" and line is not None and seg.comp(1, 1) == "21":
            quantity = _decimal(seg.comp(1, 2))
            if quantity is None or quantity <= 0:
                problems.append(Problem("QTY", seg.position, f"QTY 6060: {seg.comp(1, 2)!r} is not a positive "
                                                             "quantity"))
            line.quantity = quantity or Decimal(0)
            line.unit = UNITS.get(seg.comp(1, 3), seg.comp(1, 3)) if seg.comp(1, 3) else "EA"
        elif tag == "PRI" and line is not None and seg.comp(1, 1) in ("AAA", "AAB"):
            line.unit_price = _decimal(seg.comp(1, 2))
        elif tag == "IMD" and line is not None:
            line.description = (line.description + " " + seg.comp(3, 4)).strip()
        elif tag == "CNT":
            if seg.comp(1, 1) == "2":
                po.declared_lines = int(seg.comp(1, 2)) if seg.comp(1, 2).isdigit() else None
        else:
            po.other.append(seg)  # type: ignore[arg-type]
    if po is None:
        return None, [*problems, Problem("UNH", 0, "the ORDERS has no BGM segment")]
    if not po.lines:
        problems.append(Problem("UNH", 0, "the ORDERS has no LIN line"))
    for n, ln in enumerate(po.lines, 1):
        if not ln.product_ids:
            problems.append(Problem("LIN", 0, f"line {n}: names no item"))
        if ln.quantity <= 0:
            problems.append(Problem("LIN", 0, f"line {ln.line_id}: no QTY+21 ordered quantity"))
    return po, problems


def _unit(po_line: PoLine) -> str:
    return UNITS_BACK.get(po_line.unit, po_line.unit or "PCE")


def _item(po_line: PoLine) -> list[str]:
    """LIN C212: the item number and its type, ours first (SA: supplier's article number)."""
    for qualifier, kind in (("VP", "SA"), ("VN", "SA"), ("SK", "SA"), ("BP", "IN"), ("EN", "EN"), ("UP", "UP")):
        if qualifier in po_line.product_ids:
            return [po_line.product_ids[qualifier], kind]
    first = next(iter(po_line.product_ids.items()), ("", ""))
    return [first[1], "SA"]


def _ymd(day: dt.date) -> list[str]:
    return [day.strftime("%Y%m%d"), "102"]


def body_ordrsp(po: PurchaseOrder, answers: list[LineAnswer], *, number_: str, at: dt.date
                ) -> list[tuple[str | list[str], ...]]:
    """ORDRSP answering ORDERS ``po``: BGM 231, original (9), with 4343 AP (accepted), AC (accepted with
    changes) or RE (rejected); DTM 137 and 4 (the order's date), RFF+ON; per line LIN with 1229 5
    (accepted), 3 (changed) or 7 (not accepted), QTY+21 the ordered and QTY+113 the confirmed quantity, PRI,
    DTM+2 the promised date."""
    all_as_ordered = all(a.as_ordered for a in answers)
    nothing = all(p.status is LineStatus.REJECTED for a in answers for p in a.parts)
    response = "AP" if all_as_ordered else "RE" if nothing else "AC"
    body: list[tuple[str | list[str], ...]] = [
        ("BGM", ["231"], number_[:35], "9", response),
        ("DTM", ["137", *_ymd(at)]),
    ]
    if po.date:
        body.append(("DTM", ["4", *_ymd(po.date)]))
    body.append(("RFF", ["ON", po.number]))
    if po.currency:
        body.append(("CUX", ["2", po.currency, "9"]))
    for answer in answers:
        line = answer.line
        confirmed = sum((p.quantity for p in answer.parts if p.status is not LineStatus.REJECTED), Decimal(0))
        action = "5" if answer.as_ordered else "7" if confirmed == 0 else "3"
        body.append(("LIN", line.line_id, action, _item(line)))
        body.append(("QTY", ["21", number(line.quantity), _unit(line)]))
        body.append(("QTY", ["113", number(confirmed), _unit(line)]))
        promised = max((p.date for p in answer.parts if p.date), default=None)
        if promised:
            body.append(("DTM", ["2", *_ymd(promised)]))
        price = answer.unit_price if answer.unit_price is not None else line.unit_price
        if price is not None:
            body.append(("PRI", ["AAA", format(price, "f")]))
    body += [("UNS", "S"), ("CNT", ["2", str(len(answers))])]
    return body


def _po_line(po: PurchaseOrder, line_no: int) -> PoLine:
    if not 1 <= line_no <= len(po.lines):
        raise ValueError(f"line {line_no} is not a line of purchase order {po.number} ({len(po.lines)} lines)")
    return po.lines[line_no - 1]


def body_desadv(po: PurchaseOrder, shipment: Shipment, *, at: dt.datetime) -> list[tuple[str | list[str], ...]]:
    """DESADV for ``shipment``: BGM 351, DTM 137/11, RFF+ON (the order), RFF+CN (tracking), NAD+DP,
    TDT (carrier), CPS, then LIN with QTY+12 (despatched) and RFF+ON naming the order line (no CNT: the
    guides we trade leave it out of a DESADV)."""
    shipped = shipment.shipped_at or at
    body: list[tuple[str | list[str], ...]] = [
        ("BGM", ["351"], (shipment.erp_ref or shipment.id)[:35].zfill(2), "9"),
        ("DTM", ["137", *_ymd(at.date())]),
        ("DTM", ["11", *_ymd(shipped.date())]),
        ("RFF", ["ON", po.number]),
    ]
    if shipment.tracking_number:
        body.append(("RFF", ["CN", shipment.tracking_number[:35]]))
    ship_to = po.party("ST")
    if ship_to is not None and ship_to.id:
        body.append(("NAD", "DP", [ship_to.id, "", ship_to.id_qualifier or "92"]))
    if shipment.carrier:
        body.append(("TDT", "20", "", "", "", ["", "", "", shipment.carrier[:35]]))
    body.append(("CPS", "1"))
    for line in shipment.lines:
        if line.quantity <= 0:
            continue
        po_line = _po_line(po, line.line_no)
        body.append(("LIN", po_line.line_id, "", _item(po_line)))
        body.append(("QTY", ["12", number(line.quantity), _unit(po_line)]))
        body.append(("RFF", ["ON", po.number, po_line.line_id]))
    return body


def body_invoic(po: PurchaseOrder, invoice: Invoice) -> list[tuple[str | list[str], ...]]:
    """INVOIC for ``invoice``: BGM 380, DTM 137, RFF+ON, CUX, PAT (net days after the invoice date); LIN with QTY+47
    (invoiced), MOA+203 (line amount), PRI+AAA; UNS, MOA+79 (lines), MOA+124 (tax), MOA+139 (total)."""
    posted = (invoice.posted_at or dt.datetime.now(dt.UTC)).date()
    body: list[tuple[str | list[str], ...]] = [
        ("BGM", ["380"], (invoice.number or invoice.erp_ref or invoice.id)[:35], "9"),
        ("DTM", ["137", *_ymd(posted)]),
        ("RFF", ["ON", po.number]),
        ("CUX", ["2", invoice.currency, "4"]),
    ]
    if invoice.due_date and invoice.due_date >= posted:  # net, so many days after the invoice date
        body.append(("PAT", "1", "", ["5", "3", "D", str((invoice.due_date - posted).days)]))
    lines_total = Decimal(0)
    for line in invoice.lines:
        po_line = _po_line(po, line.line_no)
        body.append(("LIN", po_line.line_id, "", _item(po_line)))
        body.append(("QTY", ["47", number(line.quantity), _unit(po_line)]))
        body.append(("MOA", ["203", format(line.amount, "f")]))
        body.append(("PRI", ["AAA", format(line.unit_price, "f")]))
        lines_total += line.amount
    body += [("UNS", "S"), ("CNT", ["2", str(len(invoice.lines))]),
             ("MOA", ["79", format(lines_total, "f")]), ("MOA", ["124", format(invoice.tax_amount, "f")]),
             ("MOA", ["139", format(invoice.total_amount, "f")])]
    return body


#: 1229 action request codes of an ORDCHG line -> the 860 POC02 change types
LINE_ACTIONS = {"1": "AI", "2": "DI", "3": "CA"}


def read_ordchg(message: Message) -> tuple[ChangeOrder | None, list[Problem]]:
    """An ORDCHG (BGM 230, 1225 4 change or 1 cancel; RFF+ON the order; LIN 1229 2 deleted, 3 changed,
    1 added, with QTY+21 the quantity the line should have) as the change an 860 would be."""
    change: ChangeOrder | None = None
    line: ChangeLine | None = None
    problems: list[Problem] = []
    for seg in message.segments:
        tag = seg.tag
        if tag == "BGM":
            change = ChangeOrder(purpose=CANCEL_ORDER if seg.get(3) == "1" else CHANGE_ORDER, po_number="",
                                 sequence=seg.comp(2, 1)[:30], po_date=None, requested_on=None)
        elif change is None:
            continue
        elif tag == "RFF" and seg.comp(1, 1) == "ON":
            change.po_number = seg.comp(1, 2).strip()
        elif tag == "DTM" and seg.comp(1, 1) == "137" and line is None:
            change.requested_on = _edifact_date(seg.comp(1, 2), seg.comp(1, 3))
        elif tag == "LIN":
            ids = {ITEM_TYPES.get(seg.comp(3, 2), seg.comp(3, 2) or "VP"): seg.comp(3, 1)} if seg.comp(3, 1) else {}
            line = ChangeLine(line_id=seg.get(1), change=LINE_ACTIONS.get(seg.get(2), "CA"), quantity=None,
                              unit="", unit_price=None, product_ids=ids)
            change.lines.append(line)
        elif tag == "QTY" and line is not None and seg.comp(1, 1) == "21":
            line.quantity = _decimal(seg.comp(1, 2))
            line.unit = UNITS.get(seg.comp(1, 3), seg.comp(1, 3))
        elif tag == "DTM" and line is not None and seg.comp(1, 1) == "2":
            line.requested_date = _edifact_date(seg.comp(1, 2), seg.comp(1, 3))
    if change is None:
        return None, [Problem("UNH", 0, "the ORDCHG has no BGM segment")]
    if not change.po_number:
        problems.append(Problem("RFF", 0, "the ORDCHG names no order (RFF+ON)"))
        return None, problems
    return change, problems


def body_ordrsp_change(change: ChangeOrder, answers: list[ChangeAnswer], *, at: dt.date
                       ) -> list[tuple[str | list[str], ...]]:
    """The ORDRSP answering an ORDCHG (EDIFACT has no change acknowledgment of its own): BGM 231 with AC
    when something was applied, RE when nothing was; RFF+ON the order and RFF+CR the change; per line the
    change asked for (LIN 1229), QTY+21 and QTY+113 what the line is now, and FTX+AAO the reason of a
    refusal."""
    applied = any(a.applied for a in answers)
    body: list[tuple[str | list[str], ...]] = [
        ("BGM", ["231"], f"{change.po_number}-C{change.sequence}"[:35], "9", "AC" if applied else "RE"),
        ("DTM", ["137", *_ymd(at)]),
        ("RFF", ["ON", change.po_number]),
    ]
    if change.sequence:
        body.append(("RFF", ["CR", change.sequence]))
    back = {v: k for k, v in LINE_ACTIONS.items()}
    for a in answers:
        body.append(("LIN", a.line.line_id, back.get(a.change, "3"), _item(a.line)))
        body.append(("QTY", ["21", number(a.line.quantity), _unit(a.line)]))
        body.append(("QTY", ["113", number(a.quantity), _unit(a.line)]))  # what the line is now, kept or changed
        if not a.applied:
            body.append(("FTX", "AAO", "", "", [a.reason[:70]]))
    body += [("UNS", "S"), ("CNT", ["2", str(len(answers))])]
    return body
