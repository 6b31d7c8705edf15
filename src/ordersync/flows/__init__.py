"""Process flows. Each module ends with ``register(registry, ...)``: which handler runs on which message.

:func:`build_registry` assembles every flow's subscriptions for the composition root.
"""

from __future__ import annotations

from ordersync.flows import documents, orders, projections, readmodel
from ordersync.flows.deps import FlowDeps
from ordersync.flows.readmodel import ReadModel
from ordersync.messaging.registry import Registry


def build_registry(deps: FlowDeps | None = None, model: ReadModel | None = None) -> Registry:
    """Every subscription of the hub. Without ERP dependencies only the projections run."""
    registry = Registry()
    projections.register(registry)
    documents.register(registry)
    if deps is not None:
        orders.register(registry, deps)
    if model is not None:
        readmodel.register(registry, model)
    return registry
