"""Process flows. Each module ends with ``register(registry, ...)``: which handler runs on which message.

:func:`build_registry` assembles every flow's subscriptions for the composition root.
"""

from __future__ import annotations

from ordersync.flows import orders, projections
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import Registry


def build_registry(deps: FlowDeps | None = None) -> Registry:
    """Every subscription of the hub. Without ERP dependencies only the projections run."""
    registry = Registry()
    projections.register(registry)
    if deps is not None:
        orders.register(registry, deps)
    return registry
