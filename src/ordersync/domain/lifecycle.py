"""The order lifecycle as a transition table.

Every legal move is listed here; anything else raises :class:`IllegalTransition` and changes nothing.
Terminal states have no outgoing moves. ``on_hold`` remembers the state it interrupted so that a
release resumes the flow where it stopped (see :class:`ordersync.domain.order.OrderRecord`).
"""

from __future__ import annotations

from ordersync.canonical.v1 import OrderState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.REJECTED, S.CANCELLED, S.ON_HOLD}),
    S.VALIDATED: frozenset({S.PRICED, S.ON_HOLD, S.REJECTED, S.CANCELLED}),
    S.PRICED: frozenset({S.ALLOCATED, S.BACKORDERED, S.ON_HOLD, S.REJECTED, S.CANCELLED}),
    S.ON_HOLD: frozenset(
        {S.VALIDATED, S.PRICED, S.ALLOCATED, S.BACKORDERED, S.SUBMITTED_TO_ERP, S.REJECTED, S.CANCELLED}
    ),
    S.ALLOCATED: frozenset({S.SUBMITTED_TO_ERP, S.ON_HOLD, S.CANCELLED}),
    S.BACKORDERED: frozenset({S.SUBMITTED_TO_ERP, S.ALLOCATED, S.ON_HOLD, S.CANCELLED}),
    S.SUBMITTED_TO_ERP: frozenset({S.ACCEPTED, S.ON_HOLD, S.REJECTED}),
    S.ACCEPTED: frozenset({S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED, S.SHIPPED, S.INVOICED, S.CANCELLED}),
    S.IN_FULFILLMENT: frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED, S.INVOICED, S.CANCELLED}),
    S.PARTIALLY_SHIPPED: frozenset({S.SHIPPED, S.INVOICED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.INVOICED, S.CLOSED}),
    S.INVOICED: frozenset({S.CLOSED, S.SHIPPED, S.PARTIALLY_SHIPPED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}

TERMINAL: frozenset[S] = frozenset(state for state, targets in TRANSITIONS.items() if not targets)

#: States in which an order waits for a person (counted as "settled" by the demo and the chaos check).
WAITING_FOR_PEOPLE: frozenset[S] = frozenset({S.ON_HOLD})


def can_move(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]

#: the order reached the ERP (accepted or later): its ERP orders exist and the ERP can amend them or take
#: goods back
REACHED_ERP: frozenset[S] = frozenset({S.ACCEPTED, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED, S.SHIPPED, S.INVOICED,
                                       S.CLOSED})
