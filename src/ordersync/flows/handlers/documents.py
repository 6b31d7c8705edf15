"""Shipments and invoices of hub orders, kept as the ERP last reported them.

The ERP is the system of record for both; the hub only keeps a copy so that buyers can see them with
their order (``GET /v1/orders/{id}``, ``GET /v1/invoices``) without an ERP call per page view. The
change poller turns each ERP change into ``erp.shipment_changed`` / ``erp.invoice_posted`` exactly once;
the consumer here upserts by (ERP, document id), so a replayed message writes the same row again. The
subscription is ordered per order: two changes of one shipment are applied in the order they were seen,
so an older state never overwrites a newer one.

A document is filed under the hub order's account (not the account the ERP names): that is the account
the API isolates by. Documents of ERP orders the hub did not create are not the buyer's business here.
"""

from __future__ import annotations

import logging

from ordersync.domain.events import ErpInvoicePosted, ErpShipmentChanged, Message
from ordersync.messaging.registry import Registry, Subscription
from ordersync.ports.store import UnitOfWork

log = logging.getLogger("ordersync.flows.documents")

DOCUMENTS = "projection.order_documents"


def record_shipment(event: ErpShipmentChanged, uow: UnitOfWork) -> None:
    shipment = event.shipment
    if not uow.documents.keep_shipment(event.erp, event.reference, event.order_id or shipment.order_id, shipment,
                                       uow.now()):
        log.debug("shipment %s of %s: no hub order, not kept", shipment.id, event.reference)


def record_invoice(event: ErpInvoicePosted, uow: UnitOfWork) -> None:
    invoice = event.invoice
    if not uow.documents.keep_invoice(event.erp, event.reference, event.order_id or invoice.order_id, invoice,
                                      uow.now()):
        log.debug("invoice %s of %s: no hub order, not kept", invoice.id, event.reference)


def record_document(message: Message, uow: UnitOfWork) -> None:
    if isinstance(message, ErpShipmentChanged):
        record_shipment(message, uow)
    elif isinstance(message, ErpInvoicePosted):
        record_invoice(message, uow)


def register(registry: Registry) -> None:
    registry.add(Subscription(DOCUMENTS, frozenset({ErpShipmentChanged.TYPE, ErpInvoicePosted.TYPE}), record_document,
                              "tx", ordered=True))
