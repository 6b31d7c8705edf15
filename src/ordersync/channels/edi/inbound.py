"""Receiving an X12 interchange from a trading partner, exactly once, nothing lost.

1. The bytes are stored verbatim before anything reads them (``edi_interchanges``, state ``received``).
2. The ISA says who sent it. Bytes that are not X12 are ``rejected``; a sender that is no partner of
   ours is ``unknown_partner`` (kept, with the sender named).
3. The same sender and interchange control number seen within the partner's window: ``duplicate``,
   answered with a TA1 (025) and not processed again.
4. Each 850 becomes a canonical order through the hub's intake (one order per partner and PO number,
   however often it is sent); an 850 that cannot be taken is rejected in the 997/999 with its reasons.
5. A 997/999 answers every functional group (never a group of acknowledgments), a TA1 goes back when
   asked or on an envelope error; each is stored as an outgoing interchange (``queued``) with control
   numbers taken in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ordersync.canonical.v1 import CaseType
from ordersync.channels.edi.partners import Partner, find_partner, order_from_850
from ordersync.channels.edi.x12.acks import functional_ack, functional_ack_due, ta1, ta1_due
from ordersync.channels.edi.x12.envelope import (
    GroupClosed,
    InterchangeClosed,
    InterchangeHeader,
    TransactionSet,
    read_interchanges,
)
from ordersync.channels.edi.x12.po850 import SEGMENTS_IN_ERROR, Problem, read_850
from ordersync.channels.edi.x12.tokens import X12SyntaxError, iter_segments
from ordersync.channels.edi.x12.writer import Parties, group, iea, isa, segment, transaction_set
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.clock import Clock
from ordersync.domain.events import CaseOpened
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.store import edi as store
from ordersync.store.db import Database
from ordersync.store.uow import unit_of_work

log = logging.getLogger("ordersync.edi")

TA1_DUPLICATE = "025"


@dataclass
class OrderOutcome:
    po_number: str
    set_control_number: str
    order_id: str | None
    duplicate: bool = False
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Inbound:
    """What became of one interchange."""

    interchange_id: str
    state: str
    detail: str = ""
    partner: str | None = None
    orders: list[OrderOutcome] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # ids of the outgoing interchanges (TA1, 997/999)
    case_id: str | None = None  # the case opened for it (unknown sender, duplicate, unreadable, failed)


#: what becomes a case, and what its owner should do
NEXT_ACTIONS = {
    "unknown_partner": "set up the sender as a trading partner (or tell it it has the wrong address), then "
                       "replay the interchange",
    "duplicate": "check with the partner whether it meant to resend; the first interchange was processed",
    "rejected": "tell the sender its file is not a readable X12 interchange",
    "failed": "read the error, fix the cause, then replay the interchange",
}


def _envelope_of(raw: bytes) -> tuple[str, str, str]:
    """(sender, receiver, control number) from the ISA, as far as it can be read ("" otherwise)."""
    try:
        separators, first = next(iter_segments(io.BytesIO(raw[:400])))
    except (X12SyntaxError, StopIteration):
        return "", "", ""
    h = InterchangeHeader.from_segment(first, separators)
    return f"{h.sender_qualifier}:{h.sender_id}", f"{h.receiver_qualifier}:{h.receiver_id}", h.control_number


class EdiInbound:
    def __init__(self, db: Database, intake: IntakeWriter, clock: Clock, partners: Sequence[Partner], *,
                 window: dt.timedelta = dt.timedelta(days=30), cases: CasePolicy | None = None) -> None:
        self.cases = cases or CasePolicy()
        self.db = db
        self.intake = intake
        self.clock = clock
        self.partners = list(partners)
        self.window = window

    def receive(self, raw: bytes) -> Inbound:
        interchange_id = uuid.uuid4().hex
        sender, receiver, control_number = _envelope_of(raw)
        with self.db.write() as conn:  # first of all: keep it
            store.record_interchange(conn, interchange_id=interchange_id, direction="in", raw=raw, sender=sender,
                                     receiver=receiver, control_number=control_number, partner=None,
                                     state="received", at=self.clock.now())
        try:
            result = self._process(interchange_id, raw, sender, control_number)
        except X12SyntaxError as exc:
            result = Inbound(interchange_id, "rejected", f"not readable as X12: {exc}")
        except Exception as exc:  # kept, with the reason: an operator can look and replay
            log.exception("EDI interchange %s from %s could not be processed", interchange_id, sender)
            result = Inbound(interchange_id, "failed", f"{type(exc).__name__}: {exc}")
        with unit_of_work(self.db, self.clock) as uow:
            store.set_state(uow.conn, interchange_id, result.state, at=uow.now(), detail=result.detail[:2000],
                            partner=result.partner)
            if result.state in NEXT_ACTIONS:  # kept, and someone owns it
                case = open_case(CaseType.INTEGRATION_FAILURE, now=uow.now(), policy=self.cases,
                                 summary=(f"EDI interchange {control_number or '(unreadable)'} from "
                                          f"{sender or 'an unknown sender'}: {result.state}: {result.detail}")[:1000],
                                 next_action=NEXT_ACTIONS[result.state])
                uow.cases.add(case)
                uow.emit(CaseOpened(case=case), correlation_id=None)
                result.case_id = case.id
        return result

    def _process(self, interchange_id: str, raw: bytes, sender: str, control_number: str) -> Inbound:
        if not sender:
            return Inbound(interchange_id, "rejected", "not an X12 interchange (no readable ISA segment)")
        items = read_interchanges(io.BytesIO(raw))  # one transaction set at a time
        first = next(items, None)
        if first is None:
            return Inbound(interchange_id, "rejected", "an ISA and nothing else")
        header = first.interchange
        partner = find_partner(self.partners, header)
        if partner is None:
            return Inbound(interchange_id, "unknown_partner", f"no trading partner sends as {sender}")
        result = Inbound(interchange_id, "processed", partner=partner.name)
        with self.db.read() as conn:
            earlier = store.earlier_interchange(conn, direction="in", sender=sender, control_number=control_number,
                                                since=self.clock.now() - self.window, exclude=interchange_id)
        if earlier is not None:
            result.state, result.detail = "duplicate", f"interchange {control_number} was received before ({earlier})"
            result.replies.append(self._reply(partner, header, [("TA1", header.control_number, header.date,
                                                                 header.time, "R", TA1_DUPLICATE)]))
            return result
        rejected: dict[str, list[str]] = {}
        for item in itertools.chain([first], items):
            if isinstance(item, TransactionSet) and item.code == "850" and item.accepted:
                outcome = self._order(partner, item)
                result.orders.append(outcome)
                if outcome.problems:
                    rejected[item.control_number] = [SEGMENTS_IN_ERROR]
            elif isinstance(item, GroupClosed) and functional_ack_due(item):
                code, body = functional_ack(item, rejected=rejected)
                result.replies.append(self._reply(partner, header, None, ack=(item, code, body)))
                rejected = {}
            elif isinstance(item, InterchangeClosed) and ta1_due(item):
                result.replies.append(self._reply(partner, header, [ta1(item)]))
                if item.errors:
                    result.detail = f"envelope errors {item.errors}"
        problems = [f"PO {o.po_number}: {p.message}" for o in result.orders for p in o.problems]
        if problems:
            result.detail = "; ".join([result.detail, *problems]).strip("; ")
        return result

    def _order(self, partner: Partner, ts: TransactionSet) -> OrderOutcome:
        po, problems = read_850(ts)
        number = po.number if po else ""
        if po is None or problems:
            return OrderOutcome(number, ts.control_number, None, problems=problems)
        order, problems = order_from_850(po, partner, order_id=uuid.uuid4().hex, received_at=self.clock.now())
        if order is None:
            return OrderOutcome(number, ts.control_number, None, problems=problems)
        receipt = self.intake.submit(order, scope=f"edi:{partner.name}").result(timeout=60)
        return OrderOutcome(number, ts.control_number, receipt.order_id, duplicate=receipt.duplicate)

    def _reply(self, partner: Partner, header: InterchangeHeader, segments: list[tuple[str, ...]] | None, *,
               ack: tuple[GroupClosed, str, list[tuple[str, ...]]] | None = None) -> str:
        """Store an outgoing interchange to the sender of ``header`` (its ISA mirrored): a TA1 (segments
        right inside the ISA) or a functional acknowledgment in its own group."""
        now = self.clock.now()
        seps = header.separators
        interchange_id = uuid.uuid4().hex
        with self.db.write() as conn:
            isa_number = store.next_control_number(conn, partner.name, "isa")
            gs_sender, gs_receiver = (ack[0].group.receiver, ack[0].group.sender) if ack else ("", "")
            parties = Parties(header.receiver_qualifier, header.receiver_id, header.sender_qualifier,
                              header.sender_id, gs_sender, gs_receiver)
            parts = [isa(parties, isa_number, version=header.version, at=now, usage=header.usage, separators=seps)]
            if ack is not None:
                closed, code, body = ack
                gs_number = store.next_control_number(conn, partner.name, "gs")
                st_number = f"{store.next_control_number(conn, partner.name, 'st'):04d}"
                version = closed.group.version
                parts += group("FA", parties, gs_number, version,
                               [transaction_set(code, st_number, body, separators=seps)], at=now, separators=seps)
            else:
                parts += [segment(tag, *elements, separators=seps) for tag, *elements in segments or []]
            parts.append(iea(1 if ack else 0, isa_number, seps))
            raw = "".join(parts).encode()
            store.record_interchange(conn, interchange_id=interchange_id, direction="out", raw=raw,
                                     sender=f"{parties.sender_qualifier}:{parties.sender_id}",
                                     receiver=f"{parties.receiver_qualifier}:{parties.receiver_id}",
                                     control_number=f"{isa_number:09d}", partner=partner.name, state="queued", at=now)
        return interchange_id
