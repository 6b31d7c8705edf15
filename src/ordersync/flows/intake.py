"""Intake: an order arrives from a channel and is stored once, whatever happens on the way.

The business key (channel, external order number) is unique in the store: webhook retries, EDI resends,
API retries and reconciliation polls all collapse onto one order, race-safe.
"""

from __future__ import annotations

from ordersync.canonical.v1 import Order, OrderState
from ordersync.domain.events import DuplicateOrderReceived, OrderReceived
from ordersync.domain.order import OrderRecord
from ordersync.store.uow import UnitOfWork


def receive_order(uow: UnitOfWork, order: Order, delivery_id: str | None = None) -> tuple[OrderRecord, bool]:
    """Store ``order`` (state ``received``) with its events, or find the order it duplicates.

    Returns the stored record and whether it is new. A duplicate is recorded as an event on the existing
    order (so the timeline shows it) and changes nothing else.
    """
    record = OrderRecord.receive(order, at=uow.now(), cause=f"received from channel {order.channel}")
    record.record_event(OrderReceived(order=order, delivery_id=delivery_id))
    stored, created = uow.add_order(record)
    if not created:
        uow.emit(
            DuplicateOrderReceived(
                order_id=stored.id,
                channel=order.channel,
                external_order_number=order.external_order_number,
                delivery_id=delivery_id,
            ),
            correlation_id=stored.id,
        )
    return stored, created


def move_order(uow: UnitOfWork, order_id: str, target: OrderState, cause: str) -> OrderRecord:
    """Load, transition and save an order in this unit of work (IllegalTransition changes nothing)."""
    record = uow.orders.get(order_id)
    record.move_to(target, uow.now(), cause)
    uow.save_order(record)
    return record
