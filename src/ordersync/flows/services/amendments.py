"""Amendments of accepted orders: the buyer asks, the ERP decides, the hub records what happened.

The order routes each line change to the ERP order(s) its line was allocated to and refuses what it
can refuse itself (:mod:`ordersync.domain.order.amendment`). The ERP call happens outside any database
transaction, synchronously for the caller, in the orders lane of the ERP's budget. If the ERP cannot be
reached before anything changed there, the caller gets :class:`~ordersync.domain.errors.Unavailable` and
nothing is recorded. Otherwise the outcome is recorded in one transaction: an ``order.amended`` event
and the order brought in line with what the ERP applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ordersync.canonical.v1 import OrderState
from ordersync.domain.errors import Conflict, IntegrationError, NotFound
from ordersync.domain.events import AmendedLine
from ordersync.domain.lifecycle import REACHED_ERP
from ordersync.domain.order import LineAmendment, OrderRecord
from ordersync.domain.order.amendment import from_change, merge
from ordersync.flows.deps import FlowDeps
from ordersync.ports.erp import AmendmentRequest, AmendmentResult, ErpPort, Lane, LineChange, UnknownItem
from ordersync.ports.store import UnitOfWork

_SAVE_ATTEMPTS = 3
LANE = Lane.ORDERS


@dataclass
class AmendmentOutcome:
    order_id: str
    state: OrderState
    applied: list[AmendedLine] = field(default_factory=list)
    refused: list[AmendedLine] = field(default_factory=list)


#: more to write in the transaction that records an amendment's outcome
AlsoRecord = Callable[[UnitOfWork, AmendmentOutcome], None]


def load_for_amendment(deps: FlowDeps, order_id: str, account_id: str | None) -> OrderRecord:
    """The order, if ``account_id`` (None: any) may see it and it can be amended."""
    with deps.store.reading() as reader:
        record = reader.orders.find(order_id)
    if record is None or (account_id is not None and record.order.account_id != account_id):
        raise NotFound(f"order {order_id} not found")
    if record.state not in REACHED_ERP:
        raise Conflict(f"order {order_id} is {record.state.value}: only orders the ERP accepted can be amended "
                       "(until then, cancel it or wait for acceptance)")
    return record


def ask_erp(erp: ErpPort, requests: dict[str, list[LineChange]]) -> tuple[list[AmendmentResult], list[AmendedLine]]:
    """Send each ERP order its changes. An unreachable ERP before anything was applied raises (nothing
    changed anywhere); after something was applied, the rest is refused with the reason, so the hub
    still records what the ERP did."""
    results: list[AmendmentResult] = []
    refused: list[AmendedLine] = []
    down: IntegrationError | None = None
    for reference, changes in sorted(requests.items()):
        if down is None:
            try:
                results.append(erp.amend_order(AmendmentRequest(reference=reference, changes=tuple(changes))))
                continue
            except UnknownItem:
                refused += [from_change(c, reference, f"the ERP has no order {reference}") for c in changes]
                continue
            except IntegrationError as exc:
                if not any(r.applied for r in results):
                    raise
                down = exc
        refused += [from_change(c, reference, f"the ERP could not be reached ({down}); this part was not "
                                              "changed: send it again") for c in changes]
    return results, refused


def record_outcome(deps: FlowDeps, order_id: str, outcome: AmendmentOutcome, actor: str,
                   also: AlsoRecord | None = None) -> None:
    """The event and the updated order in one transaction (re-read and re-applied if the order changed
    concurrently: the ERP has already applied these changes, so they must land). ``also`` writes in
    that same transaction (a workbench action records itself on its case)."""
    for attempt in range(1, _SAVE_ATTEMPTS + 1):
        try:
            with deps.store.transaction() as uow:
                record = uow.orders.get(order_id)
                record.amend(outcome.applied, outcome.refused, actor=actor, at=uow.now())
                uow.save_order(record)
                outcome.state = record.state
                if also is not None:
                    also(uow, outcome)
                return
        except Conflict:
            if attempt == _SAVE_ATTEMPTS:
                raise


def amend_order(deps: FlowDeps, order_id: str, changes: Sequence[LineAmendment], *, account_id: str | None,
                actor: str, also: AlsoRecord | None = None) -> AmendmentOutcome:
    """Validate, route, ask the ERP, record. Raises NotFound, Conflict (not amendable), ValidationFailed
    (bad lines) or IntegrationError (ERP unreachable; nothing changed, nothing recorded)."""
    record = load_for_amendment(deps, order_id, account_id)
    requests, refused = record.route_amendment(changes)
    outcome = AmendmentOutcome(order_id=order_id, state=record.state)
    if requests:
        erps = deps.erps.in_lane(LANE)
        erp = erps.erp(record.erp) if record.erp else erps.for_account(record.order.account_id)
        results, unreached = ask_erp(erp, requests)
        outcome.applied = merge([from_change(c, r.reference) for r in results for c in r.applied])
        refused += unreached + [from_change(c, r.reference, reason) for r in results for c, reason in r.refused]
    outcome.refused = merge(refused)
    if outcome.applied:
        record_outcome(deps, order_id, outcome, actor, also)
    return outcome
