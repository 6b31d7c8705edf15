"""Domain events (past tense) and commands (imperative). Both are immutable.

Each message class names its wire ``TYPE`` and schema ``VERSION``; :data:`MESSAGE_TYPES` is the
registry the messaging layer uses to validate payloads (an unknown type or a payload that does not fit
its model is dead-lettered with the reason).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ordersync.canonical.v1 import Order, OrderState


class Message(BaseModel):
    """Base of events and commands."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Event(Message):
    """Something that happened."""


class Command(Message):
    """Something somebody asks the hub to do."""


class OrderReceived(Event):
    TYPE = "order.received"
    order: Order
    delivery_id: str | None = None


class OrderStateChanged(Event):
    TYPE = "order.state_changed"
    order_id: str
    channel: str
    account_id: str
    from_state: OrderState | None
    to_state: OrderState
    cause: str
    at: dt.datetime


class DuplicateOrderReceived(Event):
    """The same business key arrived again; it collapsed onto the existing order."""

    TYPE = "order.duplicate_received"
    order_id: str
    channel: str
    external_order_number: str
    delivery_id: str | None = None


MESSAGE_TYPES: dict[str, type[Message]] = {}


def register(*classes: type[Message]) -> None:
    """Add message classes to the registry (flows register their own messages at import)."""
    for cls in classes:
        existing = MESSAGE_TYPES.get(cls.TYPE)
        if existing is not None and existing is not cls:
            raise ValueError(f"message type {cls.TYPE!r} registered twice ({existing} and {cls})")
        MESSAGE_TYPES[cls.TYPE] = cls


register(OrderReceived, OrderStateChanged, DuplicateOrderReceived)
