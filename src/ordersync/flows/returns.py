"""Return requests: a buyer asks to send goods of an order back (a return authorization request).

The hub checks what it can know without the ERP: the order is the buyer's, each line exists, and the
quantity is at most what can be returned. That is the shipped quantity when the ERP has reported
shipments for the order (goods that never left cannot come back), else the ordered quantity (an ERP
that reports no shipments), less what earlier requests of the same line already ask for. The request
and its ``return.requested`` event are written in one transaction; creating the return in the ERP is
a later step.

Handlers (registered at the bottom):
- ``flow.return_authorize`` on ``return.requested`` (io, one request of an order at a time): check the
  request again against what the ERP reported shipped, split it over the plants the goods came from, and
  create one ERP return per plant (idempotent by its reference). All created: ``approved`` (the return
  authorization) with the ERP references and numbers, ``return.authorized``; refused by the hub or the
  ERP: ``rejected`` with the reason, ``return.refused``. An ERP that refused one plant's part after
  creating another's leaves a fulfillment_discrepancy case for operations.
- ``flow.return_progress`` on ``erp.return_changed`` (the change poller's): each ERP return's state;
  the request moves on once all of them have (``received``, ``credited``).
Every move of a request also announces ``return.state_changed``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from ordersync.adapters.erp.guard import Priority, erp_priority
from ordersync.canonical.v1 import (
    Allocation,
    CaseType,
    ReturnAuthorization,
    ReturnLine,
    ReturnState,
    Shipment,
    ShipmentState,
)
from ordersync.domain.cases import open_case
from ordersync.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from ordersync.domain.events import (
    CaseOpened,
    ErpReturnChanged,
    ErpReturnRef,
    ReturnAuthorized,
    ReturnRefused,
    ReturnRequested,
    ReturnStateChanged,
)
from ordersync.domain.order import OrderRecord
from ordersync.domain.returns import PROGRESS, ReturnPart, check_move, next_state, split_by_plant
from ordersync.flows.amendments import REACHED_ERP
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import (
    ErpReturnState,
    ReturnOutcome,
    ReturnRequest,
    ReturnRequestLine,
    ReturnResult,
    order_reference,
    return_reference,
)
from ordersync.store.orders import OrderRepository
from ordersync.store.schema import erp_returns, return_requests, shipments
from ordersync.store.sql import upsert_row
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.flows.returns")

AUTHORIZE = "flow.return_authorize"
PROGRESS_CONSUMER = "flow.return_progress"

#: what an ERP return's state means for the hub's request (a pending one means nothing yet)
RETURN_STATES: dict[ErpReturnState, ReturnState] = {
    ErpReturnState.AUTHORIZED: ReturnState.APPROVED,
    ErpReturnState.RECEIVED: ReturnState.RECEIVED,
    ErpReturnState.CREDITED: ReturnState.CREDITED,
    ErpReturnState.CANCELLED: ReturnState.REJECTED,
}

#: shipment states in which the goods have left the plant
LEFT_THE_PLANT = frozenset({ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED,
                            ShipmentState.EXCEPTION})


@dataclass(frozen=True)
class ReturnLineRequest:
    line_no: int
    quantity: Decimal
    reason: str = ""


def ordered_quantities(record: OrderRecord) -> dict[int, Decimal]:
    """Quantity per line as it stands (amended quantities, cancelled lines at 0)."""
    priced = record.data.get("lines", {})
    out = {}
    for line in record.order.lines:
        p = priced.get(str(line.line_no))
        out[line.line_no] = Decimal(p["quantity"]) if p else line.quantity
    return out


def shipped_quantities(conn: Connection, order_id: str) -> dict[int, Decimal] | None:
    """Shipped quantity per line, or None when the ERP has reported no shipment for the order."""
    bodies = list(conn.execute(select(shipments.c.body).where(shipments.c.order_id == order_id)).scalars())
    if not bodies:
        return None
    out: dict[int, Decimal] = {}
    for body in bodies:
        shipment = Shipment.model_validate_json(body)
        if shipment.state in LEFT_THE_PLANT:
            for line in shipment.lines:
                out[line.line_no] = out.get(line.line_no, Decimal(0)) + line.quantity
    return out


def requested_quantities(conn: Connection, order_id: str) -> dict[int, Decimal]:
    """What earlier return requests of the order ask for per line (refused requests excepted)."""
    out: dict[int, Decimal] = {}
    rows = conn.execute(select(return_requests.c.body).where(
        return_requests.c.order_id == order_id, return_requests.c.state != ReturnState.REJECTED.value))
    for body in rows.scalars():
        for line in json.loads(body)["lines"]:
            out[line["line_no"]] = out.get(line["line_no"], Decimal(0)) + Decimal(line["quantity"])
    return out


def check_quantities(record: OrderRecord, lines: Sequence[ReturnLineRequest], shipped: dict[int, Decimal] | None,
                     requested: dict[int, Decimal]) -> list[str]:
    ordered = ordered_quantities(record)
    problems = []
    seen: set[int] = set()
    for line in lines:
        n = line.line_no
        if n in seen:
            problems.append(f"line {n}: named twice; one entry per line")
        seen.add(n)
        if n not in ordered:
            problems.append(f"line {n}: order {record.id} has no such line")
            continue
        if line.quantity <= 0:
            problems.append(f"line {n}: the quantity must be more than 0")
            continue
        limit, what = (shipped.get(n, Decimal(0)), "shipped") if shipped is not None else (ordered[n], "ordered")
        before = requested.get(n, Decimal(0))
        if line.quantity > limit - before:
            already = f", of which {before} is already requested for return" if before else ""
            problems.append(f"line {n}: {line.quantity} is more than the {what} quantity {limit}{already}")
    return problems


def request_return(uow: UnitOfWork, order_id: str, lines: Sequence[ReturnLineRequest], *, account_id: str | None,
                   channel: str, actor: str) -> ReturnAuthorization:
    """Check and store a return request with its event, or raise NotFound / ValidationFailed (nothing
    stored). The checks read inside the same write transaction, so two concurrent requests of one line
    cannot both take the last returnable quantity."""
    record = uow.orders.find(order_id)
    if record is None or (account_id is not None and record.order.account_id != account_id):
        raise NotFound(f"order {order_id} not found")
    if record.state not in REACHED_ERP:
        raise Conflict(f"order {order_id} is {record.state.value}: only orders the ERP accepted can have returns")
    problems = check_quantities(record, lines, shipped_quantities(uow.conn, order_id),
                                requested_quantities(uow.conn, order_id))
    if problems:
        raise ValidationFailed(problems)
    now = uow.now()
    request = ReturnAuthorization(
        id=uuid.uuid4().hex, order_id=order_id, account_id=record.order.account_id, state=ReturnState.REQUESTED,
        lines=tuple(ReturnLine(line_no=x.line_no, quantity=x.quantity, reason=x.reason) for x in lines),
        requested_at=now)
    uow.conn.execute(return_requests.insert().values(
        id=request.id, order_id=order_id, account_id=request.account_id, state=request.state.value,
        body=request.model_dump_json(), requested_at=now, updated_at=now))
    uow.emit(ReturnRequested(return_request=request, channel=channel, actor=actor), correlation_id=order_id)
    return request


# -- authorizing in the ERP ---------------------------------------------------------------------------

def load_request(conn: Connection, return_id: str) -> ReturnAuthorization | None:
    body = conn.execute(select(return_requests.c.body).where(return_requests.c.id == return_id)).scalar_one_or_none()
    return ReturnAuthorization.model_validate_json(body) if body is not None else None


def sources(conn: Connection, record: OrderRecord) -> dict[int, list[tuple[str, Decimal]]]:
    """Per line, the plants its goods left from and how many (the shipments the ERP reported), else its
    allocations (an ERP that reports no shipments: its own check decides)."""
    by_line: dict[int, dict[str, Decimal]] = {}
    rows = list(conn.execute(select(shipments.c.body).where(shipments.c.order_id == record.id)).scalars())
    for body in rows:
        shipment = Shipment.model_validate_json(body)
        if shipment.state in LEFT_THE_PLANT:
            for line in shipment.lines:
                plants = by_line.setdefault(line.line_no, {})
                plants[shipment.plant] = plants.get(shipment.plant, Decimal(0)) + line.quantity
    if not rows:
        for a in (Allocation.model_validate(x) for x in record.data.get("allocations", [])):
            plants = by_line.setdefault(a.line_no, {})
            plants[a.plant] = plants.get(a.plant, Decimal(0)) + a.quantity
    return {n: sorted(plants.items()) for n, plants in by_line.items()}


def earlier_quantities(conn: Connection, request: ReturnAuthorization) -> dict[int, Decimal]:
    """What the order's requests before this one ask for per line (refused ones excepted): they are
    authorized first (one request of an order at a time, in order) and take from the same plants first."""
    rows = conn.execute(select(return_requests.c.id, return_requests.c.requested_at, return_requests.c.body).where(
        return_requests.c.order_id == request.order_id, return_requests.c.state != ReturnState.REJECTED.value))
    mine = (request.requested_at, request.id)
    out: dict[int, Decimal] = {}
    for return_id, requested_at, body in rows:
        if (requested_at, return_id) < mine:
            for line in json.loads(body)["lines"]:
                out[line["line_no"]] = out.get(line["line_no"], Decimal(0)) + Decimal(line["quantity"])
    return out


def plan_parts(conn: Connection, record: OrderRecord, request: ReturnAuthorization
               ) -> tuple[list[ReturnPart], list[str]]:
    """The request split by plant, or the problems that refuse it (checked again now: shipments reported
    since the request may show that less left the plants than it assumed)."""
    lines = [(x.line_no, x.quantity, x.reason) for x in request.lines]
    return split_by_plant(lines, sources(conn, record), earlier_quantities(conn, request))


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
    uow.conn.execute(update(return_requests).where(return_requests.c.id == request.id).values(
        state=target.value, body=moved.model_dump_json(), updated_at=now))
    uow.emit(ReturnStateChanged(return_id=request.id, order_id=request.order_id, account_id=request.account_id,
                                from_state=request.state, to_state=target, cause=cause[:500], at=now),
             correlation_id=request.order_id)
    return moved


def refuse(uow: UnitOfWork, request: ReturnAuthorization, reason: str) -> None:
    move_request(uow, request, ReturnState.REJECTED, f"refused: {reason}", refusal_reason=reason)
    uow.emit(ReturnRefused(return_id=request.id, order_id=request.order_id, account_id=request.account_id,
                           reason=reason), correlation_id=request.order_id)


def _record_part(uow: UnitOfWork, erp: str, request: ReturnAuthorization, result: ReturnResult, plant: str) -> None:
    upsert_row(uow.conn, erp_returns, {"erp": erp, "reference": result.reference},
               {"return_id": request.id, "plant": plant, "erp_return_id": result.erp_return_id,
                "number": result.erp_return_number, "state": ReturnState.APPROVED.value, "updated_at": uow.now()})


def apply_results(uow: UnitOfWork, request: ReturnAuthorization, erp: str, requests: list[ReturnRequest],
                  results: list[ReturnResult], deps: FlowDeps) -> None:
    plants = {r.reference: r.plant for r in requests}
    authorized = [r for r in results if r.outcome is ReturnOutcome.AUTHORIZED]
    refused = [r for r in results if r.outcome is ReturnOutcome.REFUSED]
    for result in authorized:
        _record_part(uow, erp, request, result, plants[result.reference])
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


def authorize(deps: FlowDeps) -> Any:
    def handle(msg: ReturnRequested, ctx: HandlerContext) -> None:
        return_id = msg.return_request.id
        with deps.db.read() as conn:
            request = load_request(conn, return_id)
            if request is None or request.state is not ReturnState.REQUESTED:
                return  # a redelivery, or decided meanwhile
            record = OrderRepository(conn).get(request.order_id)
            parts, problems = plan_parts(conn, record, request)
        erp = record.data["erp"]
        requests = erp_requests(request, parts) if not problems else []
        results = []
        if requests:
            with erp_priority(Priority.ORDERS):
                results = [deps.router.erp(erp).create_return(r) for r in requests]
        with ctx.transaction() as uow:
            current = load_request(uow.conn, return_id)
            if current is None or current.state is not ReturnState.REQUESTED:
                return
            if problems:
                refuse(uow, current, "; ".join(problems))
            else:
                apply_results(uow, current, erp, requests, results, deps)

    return handle


# -- progress reported by the ERP ---------------------------------------------------------------------

def record_progress(event: ErpReturnChanged, uow: UnitOfWork) -> None:
    """Take an ERP return's new state; move the request once all its ERP returns have come that far."""
    key = (erp_returns.c.erp == event.erp) & (erp_returns.c.reference == event.reference)
    row = uow.conn.execute(select(erp_returns.c.return_id, erp_returns.c.state).where(key)).first()
    if row is None:
        request = load_request(uow.conn, event.return_id)
        if request is not None and request.state is ReturnState.REQUESTED:
            # the poller saw the ERP return before the authorization committed: come back later
            raise Unavailable(f"return {event.return_id} is being authorized")
        log.debug("ERP return %s: no return request of this hub, ignored", event.reference)
        return
    current = ReturnState(row.state)
    forward = PROGRESS.get(event.state, -1) > PROGRESS.get(current, -1)
    if not (forward or (event.state is ReturnState.REJECTED and current is not ReturnState.REJECTED)):
        return  # old news (overlapping polls, or a state the part has passed)
    uow.conn.execute(update(erp_returns).where(key).values(state=event.state.value, updated_at=uow.now()))
    states = [ReturnState(s) for s in uow.conn.execute(
        select(erp_returns.c.state).where(erp_returns.c.return_id == row.return_id)).scalars()]
    request = load_request(uow.conn, row.return_id)
    if request is None:
        return
    target = next_state(request.state, states)
    if target is None:
        return
    cause = f"ERP return {event.reference} {event.erp_state}"
    if target is ReturnState.REJECTED:
        refuse(uow, request, f"ERP return {event.reference} was cancelled in the ERP")
    else:
        move_request(uow, request, target, cause)


# -- registry ---------------------------------------------------------------------------------------

def register(registry: Registry, deps: FlowDeps) -> None:
    registry.add(Subscription(AUTHORIZE, frozenset({ReturnRequested.TYPE}), authorize(deps), "io", ordered=True))
    registry.add(Subscription(PROGRESS_CONSUMER, frozenset({ErpReturnChanged.TYPE}), record_progress, "tx",
                              ordered=True))
