"""Process flows. Each module ends with ``register(registry, ...)``: which handler runs on which message.

:func:`build_registry` assembles every flow's subscriptions for the composition root.
"""

from __future__ import annotations

from ordersync.domain.cases import CasePolicy
from ordersync.flows import backorders, documents, fulfillment, orders, projections, readmodel, returns
from ordersync.flows import subscriptions as outbound
from ordersync.flows.deps import FlowDeps
from ordersync.flows.readmodel import ReadModel
from ordersync.messaging.registry import Registry


def build_registry(deps: FlowDeps | None = None, model: ReadModel | None = None) -> Registry:
    """Every subscription of the hub. Without ERP dependencies only the projections run."""
    registry = Registry()
    projections.register(registry)
    documents.register(registry)
    outbound.register(registry)
    fulfillment.register(registry, deps.cases if deps is not None else CasePolicy())
    if deps is not None:
        orders.register(registry, deps)
        backorders.register(registry, deps)
        returns.register(registry, deps)
    if model is not None:
        readmodel.register(registry, model)
    return registry
