"""Receiving an X12 interchange from a trading partner, exactly once, nothing lost.

1. The bytes are stored verbatim before anything reads them (``edi_interchanges``, state ``received``):
   :meth:`EdiInbound.keep`, which is all an AS2 request or a directory pickup waits for. Processing
   (:meth:`EdiInbound.process`, the worker's ``edi inbound`` job) claims a kept interchange with a lease,
   so one that a crash interrupted is processed again by the next worker, and nothing twice: each order
   is one order per partner and PO number in the intake, and each acknowledgment is written once (its
   business key names the interchange and group it answers).
2. The ISA says who sent it. Bytes that are not X12 are ``rejected``; a sender that is no partner of
   ours is ``unknown_partner`` (kept, with the sender named).
3. The same sender and interchange control number seen within the partner's window: ``duplicate``,
   answered with a TA1 (025) and not processed again.
4. Each 850 becomes a canonical order through the hub's intake (one order per partner and PO number,
   however often it is sent); an 850 that cannot be taken is rejected in the 997/999 with its reasons.
5. A 997/999 answers every functional group (never a group of acknowledgments), a TA1 goes back when
   asked or on an envelope error; each is stored as an outgoing interchange (``queued``) with control
   numbers taken in the same transaction.
6. The partner's own 997/999 marks what we sent it accepted or rejected; a rejection opens a case.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.canonical.v1 import OrderState
from ordersync.channels.cases import open_integration_case
from ordersync.channels.edi.documents import purchase_order
from ordersync.channels.edi.edifact import interchange as unedifact
from ordersync.channels.edi.edifact import syntax as edifact
from ordersync.channels.edi.edifact.interchange import Header as EdifactHeader
from ordersync.channels.edi.edifact.messages import body_ordrsp_change, read_ordchg, read_orders
from ordersync.channels.edi.outgoing import parties_to, queue_edifact, queue_interchange
from ordersync.channels.edi.partners import Partner, Us, find_partner, order_from_850
from ordersync.channels.edi.x12.acks import (
    FunctionalAck,
    functional_ack,
    functional_ack_due,
    read_functional_ack,
    ta1,
    ta1_due,
)
from ordersync.channels.edi.x12.change860 import (
    DELETE_LINE,
    QUANTITY_CHANGES,
    ChangeAnswer,
    ChangeOrder,
    body_865,
    read_860,
)
from ordersync.channels.edi.x12.envelope import (
    GroupClosed,
    InterchangeClosed,
    InterchangeHeader,
    TransactionSet,
    read_interchanges,
)
from ordersync.channels.edi.x12.po850 import SEGMENTS_IN_ERROR, Problem, PurchaseOrder, read_850
from ordersync.channels.edi.x12.tokens import X12SyntaxError, iter_segments
from ordersync.channels.edi.x12.writer import Parties
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.errors import ChangedResend, IntegrationError, OrdersyncError
from ordersync.domain.order import LineAmendment, OrderRecord
from ordersync.flows.deps import FlowDeps
from ordersync.flows.services.amendments import amend_order
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.store import edi as store
from ordersync.store.db import Database
from ordersync.store.uow import UnitOfWork, unit_of_work

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
    acknowledged: list[str] = field(default_factory=list)  # our documents their 997/999 answered: "855 0003: A"
    case_id: str | None = None  # the case opened for it (unknown sender, duplicate, unreadable, failed)
    document: str = ""  # the transaction sets it carried (850, 997 ...)
    changes: list[str] = field(default_factory=list)  # what became of each 860 (the 865 says it to the partner)


#: what becomes a case, and what its owner should do
NEXT_ACTIONS = {
    "unknown_partner": "set up the sender as a trading partner (or tell it it has the wrong address), then "
                       "replay the interchange",
    "duplicate": "check with the partner whether it meant to resend; the first interchange was processed",
    "rejected": "tell the sender its file is not a readable X12 interchange",
    "failed": "read the error, fix the cause, then replay the interchange",
    "orders_rejected": "tell the partner which purchase orders our 997 rejected and why (the summary says); "
                       "they send corrected ones",
    "unsupported": "the partner sent transaction sets we do not take (named in the summary; rejected in our "
                   "997 with code 1): settle them with the partner by hand",
}

#: the transaction sets we take from a partner; any other is rejected in the 997 (AK5 code 1)
TAKEN = frozenset({"850", "860", "997", "999"})
#: an order in one of these states has goods on the way: a change or a cancellation is refused
LEFT_THE_WAREHOUSE = frozenset({OrderState.PARTIALLY_SHIPPED, OrderState.SHIPPED, OrderState.INVOICED,
                                OrderState.CLOSED})
SET_NOT_SUPPORTED = "1"


def _quantity(record: OrderRecord | None, line_no: int, default: Decimal) -> Decimal:
    line = record.line(line_no) if record is not None else None
    return line.quantity if line is not None else default


def _envelope_of(raw: bytes) -> tuple[str, str, str]:
    """(sender, receiver, control number) from the ISA or the UNB, as far as it can be read ("" otherwise)."""
    if edifact.sniff(raw[:64]):
        try:
            d, unb = next(edifact.iter_segments(io.BytesIO(raw[:2000])))
        except (edifact.EdifactSyntaxError, StopIteration):
            return "", "", ""
        if unb.tag != "UNB":
            return "", "", ""
        u = EdifactHeader.from_segment(unb, d)
        return f"{u.sender_qualifier}:{u.sender_id}", f"{u.recipient_qualifier}:{u.recipient_id}", \
            u.control_reference
    try:
        separators, first = next(iter_segments(io.BytesIO(raw[:400])))
    except (X12SyntaxError, StopIteration):
        return "", "", ""
    h = InterchangeHeader.from_segment(first, separators)
    return f"{h.sender_qualifier}:{h.sender_id}", f"{h.receiver_qualifier}:{h.receiver_id}", h.control_number


class EdiInbound:
    def __init__(self, db: Database, intake: IntakeWriter, clock: Clock, partners: Sequence[Partner], *,
                 window: dt.timedelta = dt.timedelta(days=30), cases: CasePolicy | None = None,
                 us: Us | None = None, lease_seconds: float = 120.0, deps: FlowDeps | None = None) -> None:
        self.cases = cases or CasePolicy()
        self.db = db
        self.intake = intake
        self.clock = clock
        self.partners = list(partners)
        self.window = window
        self.us = us or Us()
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.deps = deps  # to amend orders in the ERP (860 changes); None: changes are refused

    def keep(self, raw: bytes, *, transport: str = "file", message_id: str = "") -> str:
        """Store ``raw`` verbatim (state ``received``) and return its id: the interchange is now ours to
        process, whatever it contains and whatever happens next."""
        interchange_id = uuid.uuid4().hex
        sender, receiver, control_number = _envelope_of(raw)
        partner = next((p.name for p in self.partners if sender == f"{p.interchange_qualifier}:{p.interchange_id}"),
                       None)
        with self.db.write() as conn:
            store.record_interchange(conn, interchange_id=interchange_id, direction="in", raw=raw, sender=sender,
                                     receiver=receiver, control_number=control_number, partner=partner,
                                     state="received", at=self.clock.now(), transport=transport,
                                     message_id=message_id[:250])
        return interchange_id

    def receive(self, raw: bytes, *, transport: str = "file") -> Inbound:
        """Keep and process at once (``ordersync edi receive``)."""
        interchange_id = self.keep(raw, transport=transport)
        result = self.process(interchange_id)
        assert result is not None  # just kept: nobody else holds it
        return result

    def process_waiting(self) -> int:
        """Process every kept interchange nobody is working on (the worker's job); how many."""
        with self.db.read() as conn:
            waiting = store.waiting_inbound(conn, self.clock.now())
        return sum(1 for interchange_id in waiting if self.process(interchange_id) is not None)

    def process(self, interchange_id: str) -> Inbound | None:
        """Process a kept interchange; None when it is not waiting (done, or another worker has it)."""
        now = self.clock.now()
        with self.db.write() as conn:
            if not store.claim(conn, interchange_id, state="received", now=now, until=now + self.lease):
                return None
            raw = store.raw_interchange(conn, interchange_id) or b""
        sender, _, control_number = _envelope_of(raw)
        try:
            result = self._process(interchange_id, raw, sender, control_number)
        except IntegrationError as exc:  # the ERP is away: the interchange waits and is processed again
            log.warning("EDI interchange %s: %s; trying again in a minute", interchange_id, exc)
            with self.db.write() as conn:
                store.update_interchange(conn, interchange_id, lease_until=now + dt.timedelta(seconds=60),
                                         last_error=str(exc)[:2000])
            return None
        except (X12SyntaxError, edifact.EdifactSyntaxError) as exc:
            result = Inbound(interchange_id, "rejected", f"not readable as X12 or EDIFACT: {exc}")
        except Exception as exc:  # kept, with the reason: an operator can look and replay
            log.exception("EDI interchange %s from %s could not be processed", interchange_id, sender)
            result = Inbound(interchange_id, "failed", f"{type(exc).__name__}: {exc}")
        with unit_of_work(self.db, self.clock) as uow:
            store.set_state(uow.conn, interchange_id, result.state, at=uow.now(), detail=result.detail[:2000],
                            partner=result.partner)
            store.update_interchange(uow.conn, interchange_id, lease_until=None, document=result.document[:8])
            if result.state in NEXT_ACTIONS:  # kept, and someone owns it
                result.case_id = self._case(uow, f"EDI interchange {control_number or '(unreadable)'} from "
                                                  f"{sender or 'an unknown sender'}: {result.state}: {result.detail}",
                                            NEXT_ACTIONS[result.state])
        return result

    def _case(self, uow: UnitOfWork, summary: str, next_action: str, order_id: str | None = None) -> str:
        return open_integration_case(uow, self.cases, summary, next_action, order_id)

    def _earlier(self, sender: str, control_number: str, interchange_id: str) -> str | None:
        """The interchange this one repeats (same sender and control number within the window), if any."""
        with self.db.read() as conn:
            return store.earlier_interchange(conn, direction="in", sender=sender, control_number=control_number,
                                             since=self.clock.now() - self.window, exclude=interchange_id)

    @staticmethod
    def _conclude(result: Inbound, documents: set[str], unsupported: list[str], not_read: list[str],
                  what: str) -> Inbound:
        """The interchange's state and detail once every set or message in it was read: ``unsupported``
        when it carried sets we do not take, ``orders_rejected`` when an order could not be taken."""
        result.document = "/".join(sorted(documents))[:8]
        if unsupported:
            result.state = "unsupported"
            result.detail = f"{what} not taken here: {', '.join(unsupported)}"
        refusals = [f"PO {o.po_number}: {p.message}" for o in result.orders for p in o.problems] + \
            [f"{s} rejected, not read" for s in not_read]
        if refusals:
            result.detail = "; ".join([result.detail, *refusals]).strip("; ")
            result.state = "orders_rejected"
        return result

    def _process(self, interchange_id: str, raw: bytes, sender: str, control_number: str) -> Inbound:
        if not sender:
            return Inbound(interchange_id, "rejected", "not an X12 or EDIFACT interchange (no readable ISA or UNB "
                                                       "segment)")
        if edifact.sniff(raw[:64]):
            return self._process_edifact(interchange_id, raw, sender, control_number)
        items = read_interchanges(io.BytesIO(raw))  # one transaction set at a time
        first = next(items, None)
        if first is None:
            return Inbound(interchange_id, "rejected", "an ISA and nothing else")
        header = first.interchange
        partner = find_partner(self.partners, header)
        if partner is None:
            return Inbound(interchange_id, "unknown_partner", f"no trading partner sends as {sender}")
        result = Inbound(interchange_id, "processed", partner=partner.name)
        earlier = self._earlier(sender, control_number, interchange_id)
        if earlier is not None:
            result.state, result.detail = "duplicate", f"interchange {control_number} was received before ({earlier})"
            self._reply(result, partner, header, "TA1", [("TA1", header.control_number, header.date, header.time,
                                                          "R", TA1_DUPLICATE)], key=f"ta1:{interchange_id}")
            return result
        rejected: dict[str, list[str]] = {}
        codes: dict[str, str] = {}
        documents: set[str] = set()
        unsupported: list[str] = []
        not_read: list[str] = []
        for item in itertools.chain([first], items):
            if isinstance(item, TransactionSet):
                documents.add(item.code)
                if item.code == "850" and item.accepted:
                    outcome = self._order(partner, item, interchange_id)
                    result.orders.append(outcome)
                    if outcome.problems:
                        rejected[item.control_number] = [SEGMENTS_IN_ERROR]
                elif item.code == "860" and item.accepted:
                    self._change(result, partner, *read_860(item), key=f"865:{interchange_id}:{item.control_number}")
                elif item.code == "850":  # its envelope is broken: rejected in the 997 with the codes
                    not_read.append(f"850 {item.control_number} (set errors {', '.join(item.errors)})")
                elif item.code in ("997", "999") and item.accepted:
                    result.acknowledged += self._acknowledged(partner, read_functional_ack(item))
                elif item.code not in TAKEN:
                    rejected[item.control_number] = [SET_NOT_SUPPORTED]
                    codes[item.control_number] = item.code
                    unsupported.append(f"{item.code} {item.control_number}")
            elif isinstance(item, GroupClosed) and functional_ack_due(item):
                code, body = functional_ack(item, rejected=rejected, codes=codes)
                self._reply(result, partner, header, code, body, group_header=item,
                            key=f"ack:{interchange_id}:{item.group.control_number}")
                rejected, codes = {}, {}
            elif isinstance(item, InterchangeClosed) and ta1_due(item):
                self._reply(result, partner, header, "TA1", [ta1(item)], key=f"ta1:{interchange_id}")
                if item.errors:
                    result.detail = f"envelope errors {item.errors}"
        return self._conclude(result, documents, unsupported, not_read, "transaction sets")

    def _order(self, partner: Partner, ts: TransactionSet, interchange_id: str) -> OrderOutcome:
        po, problems = read_850(ts)
        return self._take(partner, po, problems, ts.control_number, interchange_id)

    def _take(self, partner: Partner, po: PurchaseOrder | None, problems: list[Problem], control: str,
              interchange_id: str) -> OrderOutcome:
        """A purchase order (from an 850 or an ORDERS) into the intake, once per partner and PO number."""
        number = po.number if po else ""
        if po is None or problems:
            return OrderOutcome(number, control, None, problems=problems)
        order, problems = order_from_850(po, partner, order_id=uuid.uuid4().hex, received_at=self.clock.now())
        if order is None:
            return OrderOutcome(number, control, None, problems=problems)
        try:
            receipt = self.intake.submit(order, scope=f"edi:{partner.name}").result(timeout=60)
        except ChangedResend as exc:  # refused, with a case for the channel's owner (the intake opened it)
            return OrderOutcome(number, control, None, problems=[Problem(
                "BEG", 2, f"PO {number} was received before with other content ({'; '.join(exc.differences)}); "
                          "send changes as a change order (860 or ORDCHG)")])
        with self.db.write() as conn:  # the first interchange that brought the PO is the one we answer
            store.record_order(conn, order_id=receipt.order_id, partner=partner.name, po_number=po.number,
                               interchange_id=interchange_id, set_control=control, at=self.clock.now())
        return OrderOutcome(number, control, receipt.order_id, duplicate=receipt.duplicate)

    def _process_edifact(self, interchange_id: str, raw: bytes, sender: str, control_number: str) -> Inbound:
        """An EDIFACT interchange: ORDERS into the intake, a partner's CONTRL marks what we sent, a CONTRL
        answers every interchange that is not itself only CONTRLs. Other messages (ORDCHG ...) are
        refused in the CONTRL (0085 code 14) with a case: we do not take them yet."""
        qualifier, _, sender_id = sender.partition(":")
        partner = next((p for p in self.partners if p.is_sender(qualifier, sender_id)), None)
        if partner is None:
            return Inbound(interchange_id, "unknown_partner", f"no trading partner sends as {sender}")
        result = Inbound(interchange_id, "processed", partner=partner.name)
        earlier = self._earlier(sender, control_number, interchange_id)
        documents: set[str] = set()
        rejected: dict[str, str] = {}
        unsupported: list[str] = []
        not_read: list[str] = []
        for item in unedifact.read_interchanges(io.BytesIO(raw)):
            if earlier is not None:  # nothing behind a repeated interchange is read
                if isinstance(item, unedifact.InterchangeEnd):
                    result.state = "duplicate"
                    result.detail = f"interchange {control_number} was received before ({earlier})"
                    self._reply_edifact(result, partner, item, unedifact.contrl(item, duplicate=True),
                                        key=f"contrl:{interchange_id}")
                continue
            if isinstance(item, unedifact.Message):
                documents.add(item.type)
                if item.type == "ORDERS" and item.accepted:
                    po, problems = read_orders(item)
                    outcome = self._take(partner, po, problems, item.reference, interchange_id)
                    result.orders.append(outcome)
                    if outcome.problems:
                        rejected[item.reference] = "12"  # a value that cannot be taken
                elif item.type == "CONTRL" and item.accepted:
                    result.acknowledged += self._contrl_received(partner, unedifact.read_contrl(item))
                elif item.type == "ORDCHG" and item.accepted:
                    self._change(result, partner, *read_ordchg(item), key=f"ordrsp:{interchange_id}:{item.reference}",
                                 edifact_answer=True)
                elif item.type == "ORDERS":
                    not_read.append(f"ORDERS {item.reference} (syntax errors {', '.join(item.errors)})")
                elif item.accepted:
                    rejected[item.reference] = unedifact.UNSUPPORTED
                    unsupported.append(f"{item.type} {item.reference}")
            elif isinstance(item, unedifact.InterchangeEnd):
                if item.errors:
                    result.detail = f"interchange errors {item.errors}"
                if unedifact.contrl_due(item):
                    self._reply_edifact(result, partner, item, unedifact.contrl(item, rejected=rejected),
                                        key=f"contrl:{interchange_id}:{item.interchange.control_reference}")
        if result.state == "duplicate":
            return result
        return self._conclude(result, documents, unsupported, not_read, "messages")

    def _reply_edifact(self, result: Inbound, partner: Partner, end: unedifact.InterchangeEnd,
                       body: list[tuple[str | list[str], ...]], *, key: str) -> None:
        h = end.interchange
        with self.db.write() as conn:
            if store.has_business_key(conn, key):
                return
            written = queue_edifact(conn, partner, sender=(h.recipient_id, h.recipient_qualifier),
                                    recipient=(h.sender_id, h.sender_qualifier), message_type="CONTRL", body=body,
                                    now=self.clock.now(), test=h.test, reply_to=result.interchange_id,
                                    business_key=key, syntax=h.syntax or "UNOC:3")
        result.replies.append(written.interchange_id)

    def _contrl_received(self, partner: Partner, verdict: unedifact.Verdict) -> list[str]:
        """Their CONTRL: UCI names our interchange, each UCM one message (none: the whole interchange)."""
        verdicts: list[tuple[str | None, str, str]] = [(ref, action, "") for ref, _, action in verdict.messages] or \
            [(None, verdict.action, "")]
        return self._mark(partner, verdict.interchange, verdicts, accepted=lambda a: a in ("7", "8"))

    def _change(self, result: Inbound, partner: Partner, change: ChangeOrder | None, problems: list[Problem],
                key: str, *, edifact_answer: bool = False) -> None:
        """An 860 or ORDCHG: the ERP decides (an amendment of the order), the 865 or ORDRSP says what it
        decided. A change or a cancellation of an order that has shipped is refused, not honoured."""
        if change is None:
            result.detail = "; ".join([result.detail, *(p.message for p in problems)]).strip("; ")
            return
        with self.db.read() as conn:
            if store.has_business_key(conn, key):
                return
            source = store.order_of_po(conn, partner.name, change.po_number)
        po = None
        if source is not None:
            with self.db.read() as conn:
                po = purchase_order(conn, source["interchange_id"], source["set_control"], change.po_number)
        if source is None or po is None:
            result.changes.append(f"PO {change.po_number}: no such purchase order")
            self._answer_change(result, partner, change, [], key, None, edifact_answer=edifact_answer)
            return
        order_id = source["order_id"]
        with unit_of_work(self.db, self.clock) as uow:
            record = uow.orders.find(order_id)
        lines_by_id = {line.line_id: (n, line) for n, line in enumerate(po.lines, 1)}
        refusal = ""
        if record is None:
            refusal = "no such order"
        elif record.state in LEFT_THE_WAREHOUSE:
            refusal = f"the order has already shipped ({record.state.value}); it can no longer be changed"
        elif record.state in (OrderState.CANCELLED, OrderState.REJECTED):
            refusal = f"the order is {record.state.value}"
        elif self.deps is None:
            refusal = "changes cannot be applied here (no ERP)"
        targets = [(line.line_id, DELETE_LINE, None, None) for line in po.lines] if change.cancels_order else \
            [(c.line_id, c.change, c.quantity, c.requested_date) for c in change.lines]
        answers: list[ChangeAnswer] = []
        amendments: list[tuple[int, str, LineAmendment]] = []
        for line_id, kind, quantity, when in targets:
            found = lines_by_id.get(line_id)
            if found is None:
                continue
            n, line = found
            current = _quantity(record, n, line.quantity)
            if refusal:
                answers.append(ChangeAnswer(line, kind, current, False, refusal))
            elif kind == DELETE_LINE:
                amendments.append((n, kind, LineAmendment(line_no=n, cancel=True)))
            elif kind in QUANTITY_CHANGES and (quantity or when):
                amendments.append((n, kind, LineAmendment(line_no=n, quantity=quantity if quantity != current else None,
                                                           requested_date=when)))
            else:
                answers.append(ChangeAnswer(line, kind, current, False, f"change type {kind} is not taken here"))
        unknown = [c.line_id for c in change.lines if c.line_id not in lines_by_id]
        if amendments and self.deps is not None:
            try:
                outcome = amend_order(self.deps, order_id, [a for _, _, a in amendments],
                                      account_id=partner.account_id, actor=f"edi:{partner.name}")
                refused = {e.line_no: e.reason for e in outcome.refused}
            except IntegrationError:
                raise  # the ERP is away: try the whole interchange again later
            except OrdersyncError as exc:
                refused = {n: str(exc) for n, _, _ in amendments}
            with unit_of_work(self.db, self.clock) as uow:
                after = uow.orders.find(order_id)
            for n, kind, amendment in amendments:
                line = po.lines[n - 1]
                now_qty = Decimal(0) if amendment.cancel and n not in refused else _quantity(after, n, Decimal(0))
                answers.append(ChangeAnswer(line, kind, now_qty, n not in refused, refused.get(n, "")))
        answers.sort(key=lambda a: int(a.line.line_id) if a.line.line_id.isdigit() else 0)
        result.changes.append(f"PO {change.po_number}: " + ", ".join(
            f"line {a.line.line_id} {'applied' if a.applied else 'refused: ' + a.reason}" for a in answers)
            + (f"; unknown lines {', '.join(unknown)}" if unknown else ""))
        self._answer_change(result, partner, change, answers, key, order_id, edifact_answer=edifact_answer)

    def _answer_change(self, result: Inbound, partner: Partner, change: ChangeOrder, answers: list[ChangeAnswer],
                       key: str, order_id: str | None, *, edifact_answer: bool = False) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            if store.has_business_key(conn, key):
                return
            if edifact_answer:  # EDIFACT has no change acknowledgment of its own: an ORDRSP answers an ORDCHG
                written = queue_edifact(conn, partner, sender=(self.us.id, self.us.qualifier),
                                        recipient=(partner.interchange_id, partner.interchange_qualifier),
                                        message_type="ORDRSP", body=body_ordrsp_change(change, answers, at=now.date()),
                                        now=now, test=partner.usage == "T", reply_to=result.interchange_id,
                                        business_key=key, order_id=order_id)
            else:
                written = queue_interchange(conn, partner, parties_to(partner, self.us), document="865", now=now,
                                            body=body_865(change, answers, at=now.date()), business_key=key,
                                            order_id=order_id, reply_to=result.interchange_id)
        result.replies.append(written.interchange_id)

    def _acknowledged(self, partner: Partner, ack: FunctionalAck) -> list[str]:
        """Mark what their 997/999 answers; a rejection of one of our documents opens a case."""
        verdicts: list[tuple[str | None, str, str]] = [(v.control_number, v.status, "; ".join(v.notes))
                                                       for v in ack.sets] or [(None, ack.status, "")]
        return self._mark(partner, ack.group_control, verdicts, accepted=FunctionalAck.accepted)

    def _mark(self, partner: Partner, group_control: str, verdicts: list[tuple[str | None, str, str]], *,
              accepted: Callable[[str], bool]) -> list[str]:
        """Mark our documents in ``group_control`` (a GS06, or a UNB 0020) with the partner's verdicts
        (per set or message; None: all of them); a rejection opens a case."""
        out: list[str] = []
        is_accepted = accepted
        with unit_of_work(self.db, self.clock) as uow:
            for set_control, status, notes in verdicts:
                accepted_ = is_accepted(status)
                rows = store.acknowledge(uow.conn, partner=partner.name, group_control=group_control,
                                         set_control=set_control, state="accepted" if accepted_ else "rejected",
                                         detail=notes, at=uow.now())
                if not rows:
                    out.append(f"group {group_control} set {set_control or '*'}: {status} (nothing of ours)")
                for row in rows:
                    out.append(f"{row['document']} {row['set_control']}: {status}")
                    if not accepted_:
                        self._case(uow, f"{partner.name} rejected our {row['document']} (interchange "
                                        f"{row['control_number']}, set {row['set_control']}) in its functional "
                                        f"acknowledgment: {notes or 'no reason given'}",
                                   "read what the partner's acknowledgment says, fix the document or the mapping, "
                                   "then resend it (ordersync edi resend)", order_id=row["order_id"])
        return out

    def _reply(self, result: Inbound, partner: Partner, header: InterchangeHeader, document: str,
               body: list[tuple[str, ...]], *, key: str, group_header: GroupClosed | None = None) -> None:
        """Store an acknowledgment to the sender of ``header`` (its ISA mirrored), once per ``key``."""
        gs_sender, gs_receiver = ((group_header.group.receiver, group_header.group.sender) if group_header
                                  else ("", ""))
        parties = Parties(header.receiver_qualifier, header.receiver_id, header.sender_qualifier,
                          header.sender_id, gs_sender, gs_receiver)
        with self.db.write() as conn:
            if store.has_business_key(conn, key):  # written by an earlier attempt that did not finish
                return
            written = queue_interchange(conn, partner, parties, document=document, now=self.clock.now(), body=body,
                                        version=group_header.group.version if group_header else None,
                                        isa_version=header.version, usage=header.usage,
                                        separators=header.separators, reply_to=result.interchange_id,
                                        business_key=key)
        result.replies.append(written.interchange_id)
