"""Read-side projections maintained by idempotent consumers.

``order_counters`` keeps how many orders are in each state and how many arrived per day; the dashboard
and the health of the pipeline read it. Its updates are increments, not idempotent by themselves: the
inbox is what makes them exactly-once (the crash tests rely on that).
"""

from __future__ import annotations

from collections import Counter

from ordersync.domain.events import OrderStateChanged
from ordersync.messaging.registry import Registry
from ordersync.ports.store import UnitOfWork

COUNTERS = "projection.order_counters"


def count_transitions(events: list[OrderStateChanged], uow: UnitOfWork) -> None:
    """Batched: one write per counter touched by the whole batch."""
    amounts: Counter[str] = Counter()
    for event in events:
        amounts[f"state:{event.to_state.value}"] += 1
        amounts["transitions"] += 1
        if event.from_state is not None:
            amounts[f"state:{event.from_state.value}"] -= 1
        else:
            amounts[f"received:{event.at.date().isoformat()}"] += 1
    uow.counters.add(amounts)


def register(registry: Registry) -> None:
    registry.on(COUNTERS, OrderStateChanged, batched=True)(count_transitions)
