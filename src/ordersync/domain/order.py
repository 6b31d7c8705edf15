"""The order aggregate: the canonical order plus its lifecycle state and transition history.

The aggregate records the events its changes cause (``pending_events``); the unit of work writes them
to the outbox in the same transaction as the state (transactional outbox).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ordersync.canonical.v1 import Order, OrderState
from ordersync.domain.errors import IllegalTransition
from ordersync.domain.events import Event, OrderStateChanged
from ordersync.domain.lifecycle import TERMINAL, can_move


@dataclass(frozen=True)
class Transition:
    """One recorded move; SLA clocks are computed from these."""

    order_id: str
    from_state: OrderState | None
    to_state: OrderState
    at: dt.datetime
    cause: str


@dataclass
class OrderRecord:
    """An order inside the hub. ``version`` is the optimistic-concurrency counter of its row."""

    order: Order
    state: OrderState = OrderState.RECEIVED
    held_from: OrderState | None = None
    version: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    new_transitions: list[Transition] = field(default_factory=list)
    pending_events: list[Event] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.order.id

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def receive(cls, order: Order, at: dt.datetime, cause: str) -> OrderRecord:
        record = cls(order=order)
        record._record(None, OrderState.RECEIVED, at, cause)
        return record

    def move_to(self, target: OrderState, at: dt.datetime, cause: str) -> None:
        """Move to ``target`` or raise :class:`IllegalTransition` without changing anything."""
        if not can_move(self.state, target):
            raise IllegalTransition(self.id, self.state.value, target.value)
        previous = self.state
        if target is OrderState.ON_HOLD:
            self.held_from = previous
        elif previous is OrderState.ON_HOLD:
            self.held_from = None
        self.state = target
        self._record(previous, target, at, cause)

    def hold(self, at: dt.datetime, cause: str) -> None:
        self.move_to(OrderState.ON_HOLD, at, cause)

    def resume_state(self) -> OrderState:
        """The state a released hold returns to (where the flow stopped)."""
        if self.state is not OrderState.ON_HOLD or self.held_from is None:
            raise IllegalTransition(self.id, self.state.value, "released")
        return self.held_from

    def record_event(self, event: Event) -> None:
        self.pending_events.append(event)

    def _record(self, previous: OrderState | None, target: OrderState, at: dt.datetime, cause: str) -> None:
        self.new_transitions.append(Transition(self.id, previous, target, at, cause))
        self.pending_events.append(
            OrderStateChanged(
                order_id=self.id,
                channel=self.order.channel,
                account_id=self.order.account_id,
                from_state=previous,
                to_state=target,
                cause=cause,
                at=at,
            )
        )
