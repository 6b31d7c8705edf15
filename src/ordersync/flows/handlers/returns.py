"""Return requests in the ERP: authorized (one ERP return per plant) and followed until credited.

Handlers (registered at the bottom):

- ``flow.return_authorize`` on ``return.requested`` (io, one request of an order at a time): check the
  request again against what the ERP reported shipped, split it over the plants the goods came from
  (:func:`ordersync.domain.returns.split_by_plant`), and create one ERP return per plant (idempotent by
  its reference), in the orders lane. All created: ``approved`` (the return authorization) with the ERP
  references and numbers, ``return.authorized``; refused by the hub or the ERP: ``rejected`` with the
  reason, ``return.refused``. An ERP that refused one plant's part after creating another's leaves a
  fulfillment_discrepancy case for operations.
- ``flow.return_progress`` on ``erp.return_changed`` (the change poller's): each ERP return's state;
  the request moves on once all of them have (``received``, ``credited``).

Every move of a request also announces ``return.state_changed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ordersync.canonical.v1 import CaseType, ReturnAuthorization, ReturnState
from ordersync.domain.cases import open_case
from ordersync.domain.errors import Unavailable
from ordersync.domain.events import (
    CaseOpened,
    ErpReturnChanged,
    ErpReturnRef,
    ReturnAuthorized,
    ReturnRefused,
    ReturnRequested,
    ReturnStateChanged,
)
from ordersync.domain.returns import PROGRESS, ReturnPart, check_move, next_state, sources, split_by_plant
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import (
    Lane,
    ReturnOutcome,
    ReturnRequest,
    ReturnRequestLine,
    ReturnResult,
    order_reference,
    return_reference,
)
from ordersync.ports.store import UnitOfWork

log = logging.getLogger("ordersync.flows.returns")

AUTHORIZE = "flow.return_authorize"
PROGRESS_CONSUMER = "flow.return_progress"
LANE = Lane.ORDERS

def erp_requests(request: ReturnAuthorization, parts: list[ReturnPart]) -> list[ReturnRequest]:
    return [ReturnRequest(reference=return_reference(request.id, part.plant), return_id=request.id,
                          order_reference=order_reference(request.order_id, part.plant),
                          account_id=request.account_id, plant=part.plant,
                          lines=tuple(ReturnRequestLine(line_no=n, quantity=q, reason=why) for n, q, why in part.lines))
            for part in parts]


def move_request(uow: UnitOfWork, request: ReturnAuthorization, target: ReturnState, cause: str,
                 **changes: Any) -> ReturnAuthorization:
    """Store the request in ``target`` (with ``changes`` to its body) and announce the move."""
    check_move(request.id, request.state, target)
    moved = request.model_copy(update={"state": target, **changes})
    now = uow.now()
    uow.returns.save(moved, now)
    uow.emit(ReturnStateChanged(return_id=request.id, order_id=request.order_id, account_id=request.account_id,
                                from_state=request.state, to_state=target, cause=cause[:500], at=now),
             correlation_id=request.order_id)
    return moved


def refuse(uow: UnitOfWork, request: ReturnAuthorization, reason: str) -> None:
    move_request(uow, request, ReturnState.REJECTED, f"refused: {reason}", refusal_reason=reason)
    uow.emit(ReturnRefused(return_id=request.id, order_id=request.order_id, account_id=request.account_id,
                           reason=reason), correlation_id=request.order_id)


def apply_results(uow: UnitOfWork, request: ReturnAuthorization, erp: str, requests: list[ReturnRequest],
                  results: list[ReturnResult], deps: FlowDeps) -> None:
    plants = {r.reference: r.plant for r in requests}
    authorized = [r for r in results if r.outcome is ReturnOutcome.AUTHORIZED]
    refused = [r for r in results if r.outcome is ReturnOutcome.REFUSED]
    for result in authorized:
        uow.returns.record_part(erp, result.reference, return_id=request.id, plant=plants[result.reference],
                                erp_return_id=result.erp_return_id, number=result.erp_return_number,
                                state=ReturnState.APPROVED, at=uow.now())
    if refused:
        reason = "; ".join(r.message if len(results) == 1 else f"{r.reference}: {r.message}" for r in refused)
        refuse(uow, request, reason)
        if authorized:
            _half_authorized(uow, request, authorized, reason, deps)
        return
    references = ", ".join(r.reference for r in authorized)
    numbers = ", ".join(r.erp_return_number or "" for r in authorized)
    move_request(uow, request, ReturnState.APPROVED, f"authorized by ERP {erp} as {numbers or references}",
                 erp_ref=references, erp_number=numbers)
    uow.emit(ReturnAuthorized(return_id=request.id, order_id=request.order_id, account_id=request.account_id,
                              erp=erp, erp_returns=tuple(ErpReturnRef(plant=plants[r.reference], reference=r.reference,
                                                                      erp_number=r.erp_return_number)
                                                         for r in authorized)),
             correlation_id=request.order_id)


def _half_authorized(uow: UnitOfWork, request: ReturnAuthorization, authorized: list[ReturnResult], reason: str,
                     deps: FlowDeps) -> None:
    """The ERP created the return at some plants and refused it at others: a person decides."""
    made = ", ".join(r.reference for r in authorized)
    case = open_case(CaseType.FULFILLMENT_DISCREPANCY, now=uow.now(), policy=deps.cases, order_id=request.order_id,
                     account_id=request.account_id,
                     summary=f"return {request.id}: the ERP created {made} but refused the rest ({reason})"[:500],
                     next_action=f"cancel {made} in the ERP, or take the goods back there and tell the buyer")
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=request.order_id)


def authorize(deps: FlowDeps) -> Callable[[ReturnRequested, HandlerContext], None]:
    def handle(msg: ReturnRequested, ctx: HandlerContext) -> None:
        return_id = msg.return_request.id
        with deps.store.reading() as reader:
            request = reader.returns.get(return_id)
            if request is None or request.state is not ReturnState.REQUESTED:
                return  # a redelivery, or decided meanwhile
            record = reader.orders.get(request.order_id)
            lines = [(x.line_no, x.quantity, x.reason) for x in request.lines]
            # checked again now: shipments reported since the request may show that less left the plants
            parts, problems = split_by_plant(lines, sources(reader.documents.shipments(record.id), record.allocations),
                                             reader.returns.requested_quantities(request.order_id, before=request))
        assert record.erp is not None
        requests = erp_requests(request, parts) if not problems else []
        results = [deps.erps.erp(record.erp).create_return(r) for r in requests]
        with ctx.transaction() as uow:
            current = uow.returns.get(return_id)
            if current is None or current.state is not ReturnState.REQUESTED:
                return
            if problems:
                refuse(uow, current, "; ".join(problems))
            else:
                apply_results(uow, current, record.erp, requests, results, deps)

    return handle


def record_progress(event: ErpReturnChanged, uow: UnitOfWork) -> None:
    """Take an ERP return's new state; move the request once all its ERP returns have come that far."""
    part = uow.returns.part(event.erp, event.reference)
    if part is None:
        request = uow.returns.get(event.return_id)
        if request is not None and request.state is ReturnState.REQUESTED:
            # the poller saw the ERP return before the authorization committed: come back later
            raise Unavailable(f"return {event.return_id} is being authorized")
        log.debug("ERP return %s: no return request of this hub, ignored", event.reference)
        return
    return_id, current = part
    forward = PROGRESS.get(event.state, -1) > PROGRESS.get(current, -1)
    if not (forward or (event.state is ReturnState.REJECTED and current is not ReturnState.REJECTED)):
        return  # old news (overlapping polls, or a state the part has passed)
    uow.returns.set_part_state(event.erp, event.reference, event.state, uow.now())
    request = uow.returns.get(return_id)
    if request is None:
        return
    target = next_state(request.state, uow.returns.part_states(return_id))
    if target is None:
        return
    if target is ReturnState.REJECTED:
        refuse(uow, request, f"ERP return {event.reference} was cancelled in the ERP")
    else:
        move_request(uow, request, target, f"ERP return {event.reference} {event.erp_state}")


def register(registry: Registry, deps: FlowDeps) -> None:
    registry.add(Subscription(AUTHORIZE, frozenset({ReturnRequested.TYPE}), authorize(deps.in_lane(LANE)), "io",
                              ordered=True))
    registry.add(Subscription(PROGRESS_CONSUMER, frozenset({ErpReturnChanged.TYPE}), record_progress, "tx",
                              ordered=True))
