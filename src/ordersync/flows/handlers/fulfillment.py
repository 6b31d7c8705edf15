"""Fulfillment and invoicing: an accepted order follows its shipments and invoices.

One consumer, ``flow.fulfillment`` (tx mode, ordered per order), takes what the ERP poller, the warehouse
and the carriers report:

- ``erp.shipment_changed`` and ``erp.invoice_posted`` (the ERP, polled);
- ``wms.shipment_event`` and ``carrier.tracking_event`` (the signed WMS webhook, ``services/wms.py``);
- ``order.accepted`` and ``order.amended``: the same facts weighed again (reports that came before the
  hub recorded the acceptance; quantities an amendment changed).

Each report updates the order's fulfillment record (:class:`~ordersync.domain.fulfillment.FulfillmentRecord`:
every shipment by source and id, every invoice), then the rules of :mod:`ordersync.domain.fulfillment`
say where the order stands: it moves forward (never back), each discrepancy opens one
``fulfillment_discrepancy`` case, and the SLA timestamps are stamped on the order
(:class:`~ordersync.domain.order.parts.FulfillmentTimes`). Record, moves, cases and their events commit in
one transaction with the inbox row. A report that changes nothing (a repeat, a late "picked") writes
nothing. The record lives beside the order rather than in it so that the order's row is written only
when its state or a timestamp changes: the ERP reports each sale's first (waiting) shipment while the
submission flow is recording the acceptance, and two writers of one order row would make one of them
fail its optimistic save.

Reports of ERP orders without a hub reference are not the hub's business (orders keyed in the ERP
directly) and are ignored, as the document projection ignores them. A report that names a hub order the
hub does not have, or that the WMS could not match to an order, opens a case: it is never dropped.

**SLA timestamps**, each set once, never moved: ``in_fulfillment_at`` (the hub saw the warehouse start),
``first_shipped_at`` (the first quantity left), ``shipped_at`` (the last ordered quantity left),
``delivered_at`` (the carrier's time of the last delivery, once every shipment the WMS reported is
delivered and the order is shipped), ``invoice_posted_at`` (the ERP's posting time of the first posted
invoice; Tryton keeps a posting *date*: midnight UTC of the invoice date), ``invoice_visible_at`` (when
the hub recorded that posted invoice, from which moment ``GET /v1/invoices`` shows it) and
``invoiced_at`` (the order moved to ``invoiced``). Per invoice, the number, posting time and visible time
are kept once, when the invoice is first seen posted: the invoice-sync SLA clock of each invoice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ordersync.canonical.v1 import CaseType, OrderState, ShipmentState
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.events import (
    CarrierTrackingEvent,
    CaseOpened,
    ErpInvoicePosted,
    ErpShipmentChanged,
    Message,
    OrderAccepted,
    OrderAmended,
    WmsShipmentEvent,
)
from ordersync.domain.fulfillment import (
    BILLED,
    LEFT,
    WMS_STATES,
    FulfillmentRecord,
    discrepancies,
    invoice_supersedes,
    line_quantities,
    progress,
    supersedes,
)
from ordersync.domain.order import OrderRecord
from ordersync.messaging.registry import Registry, Subscription
from ordersync.ports.store import UnitOfWork

log = logging.getLogger("ordersync.flows.fulfillment")

CONSUMER = "flow.fulfillment"
WmsReport = WmsShipmentEvent | CarrierTrackingEvent
#: orders that should not ship at all: goods leaving for them is a discrepancy
_NOT_TO_SHIP = frozenset({OrderState.CANCELLED, OrderState.REJECTED})


def _erp_order(uow: UnitOfWork, policy: CasePolicy, msg: ErpShipmentChanged | ErpInvoicePosted,
               name: str) -> tuple[OrderRecord, FulfillmentRecord] | None:
    """The hub order an ERP document belongs to, locked, with its fulfillment record; None (after opening
    an unknown-order case) when the hub has no such order."""
    assert msg.order_id is not None
    record = uow.orders.lock(msg.order_id)
    if record is None:
        _unknown_order(uow, policy, f"erp:{msg.erp}:{msg.reference}", f"{name} belongs to {msg.reference}")
        return None
    return record, uow.fulfillment.get(record.id)


def erp_shipment(msg: ErpShipmentChanged, uow: UnitOfWork, policy: CasePolicy) -> None:
    if msg.order_id is None:
        return  # an ERP order the hub did not create
    s = msg.shipment
    name = f"ERP {msg.erp} shipment {s.erp_ref or s.id}"
    found = _erp_order(uow, policy, msg, name)
    if found is None:
        return
    record, f = found
    key = f"erp:{msg.erp}:{s.id}"
    held = f.shipments.get(key)
    if held is not None and not supersedes(held.state, None, s.state, None):
        return  # a late report of an earlier state
    if f.put_shipment(key, {
            "source": "erp", "erp": msg.erp, "id": s.id, "erp_ref": s.erp_ref, "plant": s.plant,
            "reference": msg.reference, "state": s.state,
            "lines": line_quantities((x.line_no, x.quantity) for x in s.lines),
            "shipped_at": s.shipped_at or (held.shipped_at if held is not None else None)}, uow.now()):
        uow.fulfillment.save(record.id, f, uow.now())
        evaluate(uow, record, f, policy, f"{name} is {s.state.value}")


def erp_invoice(msg: ErpInvoicePosted, uow: UnitOfWork, policy: CasePolicy) -> None:
    if msg.order_id is None:
        return
    i = msg.invoice
    name = f"ERP {msg.erp} invoice {i.number or i.id}"
    found = _erp_order(uow, policy, msg, name)
    if found is None:
        return
    record, f = found
    key = f"{msg.erp}:{i.id}"
    held = f.invoices.get(key)
    if held is not None and not invoice_supersedes(held.state, i.state):
        return
    now = uow.now()
    visible = (held.visible_at if held is not None else None) or (now if i.state in BILLED else None)
    sign = -1 if i.total_amount < 0 else 1
    if not f.put_invoice(key, {
            "erp": msg.erp, "id": i.id, "number": i.number, "state": i.state, "currency": i.currency,
            "total": i.total_amount, "lines": line_quantities(((x.line_no, x.quantity) for x in i.lines), sign),
            "posted_at": i.posted_at, "visible_at": visible}, now):
        return
    uow.fulfillment.save(record.id, f, uow.now())
    stamped = i.state in BILLED and record.record_invoice_clock(key, i.number, i.posted_at or now, visible)
    evaluate(uow, record, f, policy, f"{name} is {i.state.value}", stamped)


def wms_report(msg: WmsReport, uow: UnitOfWork, policy: CasePolicy) -> None:
    name = f"{msg.source} event {msg.event_id} ({msg.kind})"
    record = uow.orders.lock(msg.order_id) if msg.order_id else None
    if record is None:
        _unknown_order(uow, policy, f"{msg.source}:{msg.order_ref}", f"{name} names order {msg.order_ref!r}")
        return
    state = WMS_STATES[msg.kind]
    f = uow.fulfillment.get(record.id)
    ref = msg.shipment_ref or "default"
    key = f"wms:{msg.source}:{ref}"
    held = f.shipments.get(key)
    at = msg.occurred_at
    attributes = {"carrier": (held.carrier if held else None) or msg.carrier,
                  "tracking_number": (held.tracking_number if held else None) or msg.tracking_number,
                  "shipped_at": (held.shipped_at if held else None) or (at if state in LEFT else None),
                  "delivered_at": (held.delivered_at if held else None)
                  or (at if state is ShipmentState.DELIVERED else None)}
    if held is None or supersedes(held.state, held.occurred_at, state, msg.occurred_at):
        changes = {**attributes, "source": "wms", "wms": msg.source, "shipment_ref": msg.shipment_ref,
                   "state": state,
                   "lines": line_quantities((x.line_no, x.quantity) for x in msg.lines) if msg.lines
                   else (held.lines if held else {}),
                   "carrier": msg.carrier or (held.carrier if held else None),
                   "tracking_number": msg.tracking_number or (held.tracking_number if held else None),
                   "detail": msg.detail, "occurred_at": at}
    else:  # a late report: what it knows that the held one lacks still counts (a tracking number)
        changes = {k: v for k, v in attributes.items() if v is not None and not getattr(held, k)}
    changed = f.put_shipment(key, changes, uow.now()) if changes else False
    if changed:
        uow.fulfillment.save(record.id, f, uow.now())
    if state is ShipmentState.EXCEPTION:
        label = msg.tracking_number or (held.tracking_number if held else None) or f"WMS shipment {ref}"
        carrier = msg.carrier or (held.carrier if held else None) or "the carrier"
        _problem(uow, policy, f"{record.id}:carrier_exception:{ref}", record,
                 f"{carrier} reports an exception for {label}" + (f": {msg.detail}" if msg.detail else ""),
                 "contact the carrier with the tracking number; arrange a new delivery or a replacement "
                 "shipment, and tell the buyer")
    if changed:
        evaluate(uow, record, f, policy, name + (f" ({msg.carrier} {msg.tracking_number})"
                                                  if msg.tracking_number else ""))


def reevaluate(msg: OrderAccepted | OrderAmended, uow: UnitOfWork, policy: CasePolicy) -> None:
    f = uow.fulfillment.get(msg.order_id)
    if f.empty:
        return  # nothing reported yet: nothing to weigh again (the usual case)
    record = uow.orders.lock(msg.order_id)
    if record is not None:
        evaluate(uow, record, f, policy, "order accepted" if isinstance(msg, OrderAccepted) else "order amended")


def evaluate(uow: UnitOfWork, record: OrderRecord, f: FulfillmentRecord, policy: CasePolicy, cause: str,
             changed: bool = False) -> None:
    """Weigh the order's fulfillment record ``f``: open cases for discrepancies, let the order move and
    stamp its SLA times; save the order if anything of it changed (``changed``: something already did)."""
    shipments, invoices = f.facts()
    p = progress(record.ordered, shipments, invoices)
    for d in discrepancies(record.ordered, record.skus, shipments):
        _problem(uow, policy, f"{record.id}:{d.key}", record, d.summary, d.next_action)
    if record.state in _NOT_TO_SHIP and p.any_shipped:
        _problem(uow, policy, f"{record.id}:shipped_while_{record.state.value}", record,
                 f"goods left the plant for order {record.id}, which is {record.state.value} ({cause})",
                 "get the goods back or re-open the sale with the buyer; correct the ERP order")
    changed = record.follow_fulfillment(p, uow.now(), cause, delivered_at=f.delivered_at()) or changed
    if changed:
        uow.save_order(record)


def _problem(uow: UnitOfWork, policy: CasePolicy, key: str, record: OrderRecord | None, summary: str,
             next_action: str) -> bool:
    """Open a fulfillment_discrepancy case for problem ``key`` unless one was opened for it before."""
    order_id = record.id if record is not None else None
    case = open_case(CaseType.FULFILLMENT_DISCREPANCY, summary=summary, next_action=next_action, now=uow.now(),
                     policy=policy, order_id=order_id,
                     account_id=record.order.account_id if record is not None else None)
    if not uow.fulfillment.claim_problem(key[:300], case.id, order_id, case.opened_at):
        return False
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=order_id)
    log.warning("fulfillment discrepancy (case %s): %s", case.id, summary, extra={"correlation_id": order_id})
    return True


def _unknown_order(uow: UnitOfWork, policy: CasePolicy, ref: str, what: str) -> None:
    _problem(uow, policy, f"unknown_order:{ref}", None,
             f"{what}, but the hub has no such order; the report is kept in this case",
             "find the order it is about (hub order id, ERP reference OS-<order>-<plant>, or the channel's order "
             "number) and have the sender report it again with that; resolve with a comment if the goods are "
             "not the hub's")


def handler(policy: CasePolicy) -> Callable[[Message, UnitOfWork], None]:
    def handle(message: Message, uow: UnitOfWork) -> None:
        if isinstance(message, ErpShipmentChanged):
            erp_shipment(message, uow, policy)
        elif isinstance(message, ErpInvoicePosted):
            erp_invoice(message, uow, policy)
        elif isinstance(message, (WmsShipmentEvent, CarrierTrackingEvent)):
            wms_report(message, uow, policy)
        elif isinstance(message, (OrderAccepted, OrderAmended)):
            reevaluate(message, uow, policy)

    return handle


def register(registry: Registry, policy: CasePolicy) -> None:
    types = (ErpShipmentChanged, ErpInvoicePosted, WmsShipmentEvent, CarrierTrackingEvent, OrderAccepted, OrderAmended)
    registry.add(Subscription(CONSUMER, frozenset(t.TYPE for t in types), handler(policy), "tx", ordered=True))
