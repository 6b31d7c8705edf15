"""The order aggregate and its parts (see :mod:`ordersync.domain.order.aggregate`)."""

from ordersync.domain.order.aggregate import OrderRecord, Transition
from ordersync.domain.order.amendment import LineAmendment
from ordersync.domain.order.to_erp import HoldRequest, OrderPlan

__all__ = ["HoldRequest", "LineAmendment", "OrderPlan", "OrderRecord", "Transition"]
