"""The documents we send a trading partner from the ERP's truth, written by one consumer
(``edi.documents``) in the transaction that records the event in its inbox: so each is written exactly
once (its business key: ``855:<order>``, ``856:<shipment>``, ``810:<invoice>``) with its control numbers,
and the sender (:mod:`ordersync.channels.edi.sending`) takes it from there.

- **855** when the order is decided: accepted (line by line from the ERP's allocation: accepted, less
  than ordered, backordered to the promised date, at our price where it differs) or rejected (every
  line rejected).
- **856** when an ERP shipment of the order has left (shipped, in transit, delivered).
- **810** when an ERP invoice of the order is posted.

Only orders that came by EDI (``edi_orders``) from a partner who takes documents get them; each
answers the purchase order it came in, read again from the interchange kept verbatim.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from ordersync.canonical.v1 import InvoiceState, ShipmentState
from ordersync.channels.edi.edifact import interchange as unedifact
from ordersync.channels.edi.edifact import syntax as edifact
from ordersync.channels.edi.edifact.messages import body_desadv, body_invoic, body_ordrsp, read_orders
from ordersync.channels.edi.outgoing import parties_to, queue_edifact, queue_interchange
from ordersync.channels.edi.partners import Partner, Us, partner_named
from ordersync.channels.edi.x12.ack855 import LineAnswer, LinePart, LineStatus, body_855
from ordersync.channels.edi.x12.envelope import TransactionSet, read_interchanges
from ordersync.channels.edi.x12.outbound import body_810, body_856
from ordersync.channels.edi.x12.po850 import PurchaseOrder, read_850
from ordersync.domain.events import ErpInvoicePosted, ErpShipmentChanged, Message, OrderAccepted, OrderRejected
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store import edi as store
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.edi")

CONSUMER = "edi.documents"
#: the EDIFACT message that says what each X12 document says
EDIFACT_NAMES = {"855": "ORDRSP", "856": "DESADV", "810": "INVOIC"}
LEFT = frozenset({ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED})
BILLED = frozenset({InvoiceState.POSTED, InvoiceState.PAID})


def purchase_order(conn: Connection, interchange_id: str, set_control: str, po_number: str) -> PurchaseOrder | None:
    """The purchase order ``po_number`` in set ``set_control`` (or EDIFACT message) of the kept interchange."""
    raw = store.raw_interchange(conn, interchange_id)
    if raw is None:
        return None
    if edifact.sniff(raw[:64]):
        for message in unedifact.read_interchanges(io.BytesIO(raw)):
            if isinstance(message, unedifact.Message) and message.type == "ORDERS" and \
                    message.reference == set_control:
                found, _ = read_orders(message)
                if found is not None and found.number == po_number:
                    return found
        return None
    for item in read_interchanges(io.BytesIO(raw)):
        if isinstance(item, TransactionSet) and item.code == "850" and item.control_number == set_control:
            po, _ = read_850(item)
            if po is not None and po.number == po_number:
                return po
    return None


def line_answers(po: PurchaseOrder, event: OrderAccepted, prices: dict[int, Decimal]) -> list[LineAnswer]:
    """The 855's lines: what the ERP allocated per PO line, now and backordered, at our price."""
    now: dict[int, Decimal] = defaultdict(Decimal)
    later: dict[int, Decimal] = defaultdict(Decimal)
    dates: dict[tuple[int, bool], dt.date] = {}
    for a in event.allocations:
        (later if a.backorder else now)[a.line_no] += a.quantity
        key = (a.line_no, a.backorder)
        dates[key] = max(dates.get(key, a.promised_date), a.promised_date)
    answers = []
    for n, line in enumerate(po.lines, 1):
        price = prices.get(n)
        differs = price is not None and line.unit_price is not None and price != line.unit_price
        first = LineStatus.PRICE_CHANGED if differs else LineStatus.ACCEPTED
        parts: list[LinePart] = []
        allocated = now[n] + later[n]
        if allocated <= 0:
            parts.append(LinePart(LineStatus.REJECTED, Decimal(0)))
        else:
            if now[n] > 0:
                status = first if allocated >= line.quantity else LineStatus.QUANTITY_CHANGED
                parts.append(LinePart(status, now[n], dates.get((n, False))))
            if later[n] > 0:
                parts.append(LinePart(LineStatus.BACKORDERED, later[n], dates.get((n, True))))
        answers.append(LineAnswer(line, tuple(parts), unit_price=price if differs else None))
    return answers


class EdiDocuments:
    def __init__(self, partners: Sequence[Partner], us: Us) -> None:
        self.partners = list(partners)
        self.us = us

    def handle(self, message: Message, uow: UnitOfWork) -> None:
        order_id = getattr(message, "order_id", None)
        if not order_id:
            return
        conn = uow.conn
        source = store.order_source(conn, order_id)
        if source is None:
            return  # not an EDI order
        partner = partner_named(self.partners, source["partner"])
        if partner is None or not partner.send_documents:
            return
        built = self._document(message, uow, order_id)
        if built is None:
            return
        document, key, build = built
        if store.has_business_key(conn, key):
            return
        po = purchase_order(conn, source["interchange_id"], source["set_control"], source["po_number"])
        if po is None:
            log.error("EDI order %s: purchase order %s is no longer in interchange %s; no %s sent", order_id,
                      source["po_number"], source["interchange_id"], document)
            return
        now = uow.now()
        if partner.dialect == "EDIFACT":
            queue_edifact(conn, partner, sender=(self.us.id, self.us.qualifier),
                          recipient=(partner.interchange_id, partner.interchange_qualifier),
                          message_type=EDIFACT_NAMES[document], body=build(po, now, True), now=now,
                          test=partner.usage == "T", business_key=key, order_id=order_id)
        else:
            queue_interchange(conn, partner, parties_to(partner, self.us), document=document, now=now,
                              body=build(po, now, False), business_key=key, order_id=order_id)

    def _document(self, message: Message, uow: UnitOfWork, order_id: str):  # type: ignore[no-untyped-def]
        """(document, business key, body builder) for ``message``, or None when it calls for nothing. The
        builder takes the purchase order, the time and whether to write EDIFACT."""
        if isinstance(message, (OrderAccepted, OrderRejected)):
            if isinstance(message, OrderAccepted):
                record = uow.orders.get(order_id)
                prices = {line.line_no: line.unit_price for line in record.lines}

                def answers(po: PurchaseOrder) -> list[LineAnswer]:
                    return line_answers(po, message, prices)
            else:
                def answers(po: PurchaseOrder) -> list[LineAnswer]:
                    return [LineAnswer(line, (LinePart(LineStatus.REJECTED, Decimal(0)),)) for line in po.lines]

            def build_855(po: PurchaseOrder, now: dt.datetime, un: bool) -> Any:
                if un:
                    return body_ordrsp(po, answers(po), number_=f"{po.number}-R", at=now.date())
                return body_855(po.number, po.date, answers(po), at=now.date())
            return "855", f"855:{order_id}", build_855
        if isinstance(message, ErpShipmentChanged):
            shipment = message.shipment
            if shipment.state not in LEFT or not any(line.quantity > 0 for line in shipment.lines):
                return None
            return "856", f"856:{shipment.id}", lambda po, now, un: (
                body_desadv(po, shipment, at=now) if un else body_856(po, shipment, at=now))
        if isinstance(message, ErpInvoicePosted):
            invoice = message.invoice
            if invoice.state not in BILLED:
                return None
            return "810", f"810:{invoice.id}", lambda po, now, un: (
                body_invoic(po, invoice) if un else body_810(po, invoice))
        return None


def register(registry: Registry, partners: Sequence[Partner], us: Us) -> None:
    documents = EdiDocuments(partners, us)
    registry.add(Subscription(CONSUMER, frozenset({OrderAccepted.TYPE, OrderRejected.TYPE, ErpShipmentChanged.TYPE,
                                                   ErpInvoicePosted.TYPE}), documents.handle, ordered=True))
