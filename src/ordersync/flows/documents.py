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

from sqlalchemy import Connection, select, update

from ordersync.canonical.v1 import Invoice, Shipment
from ordersync.domain.events import ErpInvoicePosted, ErpShipmentChanged, Message
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store.schema import invoices, orders, shipments
from ordersync.store.sql import insert_ignore
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.flows.documents")

DOCUMENTS = "projection.order_documents"


def _account_of(conn: Connection, order_id: str | None) -> str | None:
    if not order_id:
        return None
    account: str | None = conn.execute(select(orders.c.account_id).where(orders.c.id == order_id)).scalar_one_or_none()
    return account


def record_shipment(event: ErpShipmentChanged, uow: UnitOfWork) -> None:
    shipment: Shipment = event.shipment
    order_id = event.order_id or shipment.order_id
    account = _account_of(uow.conn, order_id)
    if account is None:
        log.debug("shipment %s of %s: no hub order, not kept", shipment.id, event.reference)
        return
    now = uow.now()
    values = {"order_id": order_id, "account_id": account, "reference": event.reference,
              "state": shipment.state.value, "body": shipment.model_dump_json(), "updated_at": now}
    key = {"erp": event.erp, "shipment_id": shipment.id}
    if not insert_ignore(uow.conn, shipments, {**key, **values, "first_seen_at": now}, ("erp", "shipment_id")):
        uow.conn.execute(update(shipments).where(shipments.c.erp == event.erp, shipments.c.shipment_id == shipment.id)
                         .values(**values))


def record_invoice(event: ErpInvoicePosted, uow: UnitOfWork) -> None:
    invoice: Invoice = event.invoice
    order_id = event.order_id or invoice.order_id
    account = _account_of(uow.conn, order_id)
    if account is None:
        log.debug("invoice %s of %s: no hub order, not kept", invoice.id, event.reference)
        return
    now = uow.now()
    values = {"order_id": order_id, "account_id": account, "reference": event.reference, "number": invoice.number,
              "state": invoice.state.value, "body": invoice.model_dump_json(), "updated_at": now}
    key = {"erp": event.erp, "invoice_id": invoice.id}
    issued = invoice.posted_at or now
    if not insert_ignore(uow.conn, invoices, {**key, **values, "issued_at": issued}, ("erp", "invoice_id")):
        if invoice.posted_at is not None:  # a draft first seen unposted takes its posting time once known
            values["issued_at"] = invoice.posted_at
        uow.conn.execute(update(invoices).where(invoices.c.erp == event.erp, invoices.c.invoice_id == invoice.id)
                         .values(**values))


def record_document(message: Message, uow: UnitOfWork) -> None:
    if isinstance(message, ErpShipmentChanged):
        record_shipment(message, uow)
    elif isinstance(message, ErpInvoicePosted):
        record_invoice(message, uow)


def register(registry: Registry) -> None:
    registry.add(Subscription(DOCUMENTS, frozenset({ErpShipmentChanged.TYPE, ErpInvoicePosted.TYPE}), record_document,
                              "tx", ordered=True))
