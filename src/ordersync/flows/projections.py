"""Read-side projections maintained by idempotent consumers.

``order_counters`` keeps how many orders are in each state and how many arrived per day; the dashboard
and the health of the pipeline read it. Its updates are increments, not idempotent by themselves: the
inbox is what makes them exactly-once (the crash tests rely on that).
"""

from __future__ import annotations

from ordersync.domain.events import OrderStateChanged
from ordersync.messaging.registry import Registry
from ordersync.store.schema import order_counters
from ordersync.store.sql import upsert_add_many
from ordersync.store.uow import UnitOfWork

COUNTERS = "projection.order_counters"


def count_transition(event: OrderStateChanged, uow: UnitOfWork) -> None:
    amounts = {f"state:{event.to_state.value}": 1, "transitions": 1}
    if event.from_state is not None:
        amounts[f"state:{event.from_state.value}"] = -1
    else:
        amounts[f"received:{event.at.date().isoformat()}"] = 1
    upsert_add_many(uow.conn, order_counters, "name", "value", amounts)


def register(registry: Registry) -> None:
    registry.on(COUNTERS, OrderStateChanged)(count_transition)
