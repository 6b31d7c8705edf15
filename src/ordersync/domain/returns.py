"""The return request lifecycle, and how a request's lines split over the plants they shipped from.

requested -> approved (the ERP created the return: a return authorization) | rejected (the hub or the
ERP refused it, with the reason); approved -> received (every plant got the goods back) -> credited (every
credit note posted); a credit note may come before the goods (approved -> credited), and a return
cancelled in the ERP ends the request (approved -> rejected). Anything else raises
:class:`IllegalTransition`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ordersync.canonical.erp import ErpReturnState
from ordersync.canonical.v1 import Allocation, Shipment, ShipmentState
from ordersync.canonical.v1 import ReturnState as R
from ordersync.domain.errors import IllegalTransition

TRANSITIONS: dict[R, frozenset[R]] = {
    R.REQUESTED: frozenset({R.APPROVED, R.REJECTED}),
    R.APPROVED: frozenset({R.RECEIVED, R.CREDITED, R.REJECTED}),
    R.RECEIVED: frozenset({R.CREDITED}),
    R.CREDITED: frozenset(),
    R.REJECTED: frozenset(),
}

#: shipment states in which the goods have left the plant
LEFT_THE_PLANT = frozenset({ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED,
                            ShipmentState.EXCEPTION})

#: what an ERP return's state means for the hub's request (a pending one means nothing yet)
RETURN_STATES: dict[ErpReturnState, R] = {
    ErpReturnState.AUTHORIZED: R.APPROVED,
    ErpReturnState.RECEIVED: R.RECEIVED,
    ErpReturnState.CREDITED: R.CREDITED,
    ErpReturnState.CANCELLED: R.REJECTED,
}

#: how far an authorized return has come
PROGRESS: dict[R, int] = {R.APPROVED: 0, R.RECEIVED: 1, R.CREDITED: 2}


def check_move(return_id: str, current: R, target: R) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is a legal move."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(return_id, current.value, target.value)


def reached(parts: Iterable[R]) -> R | None:
    """The state a request reaches from the states of its ERP returns (one per plant): rejected if any
    was cancelled, else as far as the slowest of them has come (None without parts)."""
    states = list(parts)
    if not states:
        return None
    if R.REJECTED in states:
        return R.REJECTED
    return min(states, key=lambda s: PROGRESS.get(s, -1))


def next_state(current: R, parts: Iterable[R]) -> R | None:
    """Where a request in ``current`` moves given its parts' states, or None (no move, or not forward)."""
    target = reached(parts)
    if target is None or target is current or target not in TRANSITIONS[current]:
        return None
    if target in PROGRESS and current in PROGRESS and PROGRESS[target] <= PROGRESS[current]:
        return None
    return target


@dataclass(frozen=True)
class ReturnPart:
    """What goes back to one plant: ``(line_no, quantity, reason)`` per line."""

    plant: str
    lines: tuple[tuple[int, Decimal, str], ...]


def split_by_plant(lines: Sequence[tuple[int, Decimal, str]], sources: Mapping[int, Sequence[tuple[str, Decimal]]],
                   before: Mapping[int, Decimal]) -> tuple[list[ReturnPart], list[str]]:
    """Split the request's lines over the plants they came from. ``sources`` lists, per line, the plants
    and quantities it shipped from (in a stable order); ``before`` is what earlier requests of the line
    take back, taken from the same sources first, so that every request of an order splits the same way.
    Returns the parts, one per plant, and the problems (a line asking for more than is left)."""
    by_plant: dict[str, list[tuple[int, Decimal, str]]] = {}
    problems = []
    for line_no, quantity, reason in lines:
        taken = before.get(line_no, Decimal(0))
        wanted = quantity
        for plant, available in sources.get(line_no, ()):
            skip = min(taken, available)
            taken -= skip
            part = min(wanted, available - skip)
            if part > 0:
                by_plant.setdefault(plant, []).append((line_no, part, reason))
                wanted -= part
        if wanted > 0:
            left = quantity - wanted
            problems.append(f"line {line_no}: {quantity} is more than the {left} left to return")
    return [ReturnPart(plant, tuple(parts)) for plant, parts in sorted(by_plant.items())], problems


def returnable_problems(requested: Sequence[tuple[int, Decimal]], *, owner: str, lines: Collection[int],
                        limit: Mapping[int, Decimal], limit_word: str, before: Mapping[int, Decimal],
                        before_words: str) -> list[str]:
    """Why a return of ``requested`` ``(line_no, quantity)`` cannot be taken, in words a buyer reads (empty:
    it can): a line named twice or that ``owner`` does not have, a quantity of 0 or less, or more than
    the line's ``limit`` (what left the plant, ``limit_word`` says which) less what ``before`` already
    takes back (``before_words`` says how). The hub checks a request with it and the ERP adapters check
    a return with it, so that both refuse in the same words."""
    problems = []
    seen: set[int] = set()
    for n, quantity in requested:
        if n in seen:
            problems.append(f"line {n}: named twice; one entry per line")
        seen.add(n)
        if n not in lines:
            problems.append(f"line {n}: {owner} has no such line")
            continue
        if quantity <= 0:
            problems.append(f"line {n}: the quantity must be more than 0")
            continue
        have, taken = limit.get(n, Decimal(0)), before.get(n, Decimal(0))
        if quantity > have - taken:
            already = f", of which {plain(taken)} {before_words}" if taken else ""
            problems.append(f"line {n}: {plain(quantity)} is more than the {plain(have)} {limit_word}{already}")
    return problems


def plain(quantity: Decimal) -> str:
    """A quantity as people write it: ``6``, not ``6.0`` or ``6.000``; ``2.5`` stays."""
    if quantity == quantity.to_integral_value():
        return str(quantity.quantize(Decimal(1)))
    return str(quantity.normalize())


def shipped_by_line(shipments: Iterable[Shipment]) -> dict[int, Decimal] | None:
    """Quantity per line that left the plants, or None when the ERP has reported no shipment at all (an
    ERP that reports none: the ordered quantity is the limit then)."""
    shipments = list(shipments)
    if not shipments:
        return None
    out: dict[int, Decimal] = {}
    for shipment in shipments:
        if shipment.state in LEFT_THE_PLANT:
            for line in shipment.lines:
                out[line.line_no] = out.get(line.line_no, Decimal(0)) + line.quantity
    return out


def sources(shipments: Iterable[Shipment], allocations: Iterable[Allocation]) -> dict[int, list[tuple[str, Decimal]]]:
    """Per line, the plants its goods left from and how many (the shipments the ERP reported), else its
    allocations (an ERP that reports no shipments: its own check decides)."""
    shipments = list(shipments)
    by_line: dict[int, dict[str, Decimal]] = {}
    for shipment in shipments:
        if shipment.state in LEFT_THE_PLANT:
            for line in shipment.lines:
                plants = by_line.setdefault(line.line_no, {})
                plants[shipment.plant] = plants.get(shipment.plant, Decimal(0)) + line.quantity
    if not shipments:
        for a in allocations:
            plants = by_line.setdefault(a.line_no, {})
            plants[a.plant] = plants.get(a.plant, Decimal(0)) + a.quantity
    return {n: sorted(plants.items()) for n, plants in by_line.items()}
