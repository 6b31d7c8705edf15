"""Process flows. Each module ends with ``register(registry, ...)``: which handler runs on which message.

:func:`build_registry` assembles every flow's subscriptions for the composition root.
"""

from __future__ import annotations

from ordersync.flows import projections
from ordersync.messaging.registry import Registry


def build_registry() -> Registry:
    registry = Registry()
    projections.register(registry)
    return registry
