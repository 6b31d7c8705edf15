"""The return request lifecycle, and how a request's lines split over the plants they shipped from.

requested -> approved (the ERP created the return: a return authorization) | rejected (the hub or the
ERP refused it, with the reason); approved -> received (every plant got the goods back) -> credited (every
credit note posted); a credit note may come before the goods (approved -> credited), and a return
cancelled in the ERP ends the request (approved -> rejected). Anything else raises
:class:`IllegalTransition`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ordersync.canonical.v1 import ReturnState as R
from ordersync.domain.errors import IllegalTransition

TRANSITIONS: dict[R, frozenset[R]] = {
    R.REQUESTED: frozenset({R.APPROVED, R.REJECTED}),
    R.APPROVED: frozenset({R.RECEIVED, R.CREDITED, R.REJECTED}),
    R.RECEIVED: frozenset({R.CREDITED}),
    R.CREDITED: frozenset(),
    R.REJECTED: frozenset(),
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
