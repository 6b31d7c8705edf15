"""Backordered lines after the ERP accepted them: a revised ERP date reaches the buyer.

``flow.backorder_dates`` takes ``erp.shipment_changed`` (the change poller turns a change of a shipment,
its planned date included, into one). For an order with backordered lines at the shipment's plant it
reads the ERP order and lets the order compare the dates
(:mod:`ordersync.domain.order.backorders`); a revision is saved with ``order.backorder_date_revised``,
the event a buyer notification is sent from. Its ERP calls wait in the changes lane. Passed promises are
checked on a clock (:func:`ordersync.flows.jobs.flag_passed_promises`).
"""

from __future__ import annotations

from collections.abc import Callable

from ordersync.domain.events import ErpShipmentChanged
from ordersync.domain.order.backorders import OPEN_STATES
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import Lane, parse_reference

BACKORDER_DATES = "flow.backorder_dates"
LANE = Lane.CHANGES


def on_shipment_changed(deps: FlowDeps) -> Callable[[ErpShipmentChanged, HandlerContext], None]:
    def handle(msg: ErpShipmentChanged, ctx: HandlerContext) -> None:
        parsed = parse_reference(msg.reference) if msg.reference else None
        if parsed is None or msg.reference is None:
            return
        order_id, plant = parsed
        with deps.store.reading() as reader:  # most shipments: no backorder to follow, no ERP call
            record = reader.orders.find(order_id) if reader.orders.has_backorders(order_id) else None
        if record is None or record.state not in OPEN_STATES or not any(
                a.backorder and a.plant == plant for a in record.allocations):
            return
        erp_order = deps.erps.erp(msg.erp).order(msg.reference)
        if erp_order is None:
            return
        with ctx.transaction() as uow:
            record = uow.orders.get(order_id)
            if record.state in OPEN_STATES and record.revise_promises([erp_order], uow.now()):
                uow.save_order(record)

    return handle


def register(registry: Registry, deps: FlowDeps) -> None:
    registry.add(Subscription(BACKORDER_DATES, frozenset({ErpShipmentChanged.TYPE}),
                              on_shipment_changed(deps.in_lane(LANE)), "io", ordered=True))
