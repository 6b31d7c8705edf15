"""Return requests: a buyer asks to send goods of an order back (a return authorization request).

The hub checks what it can know without the ERP: the order is the buyer's, each line exists, and the
quantity is at most what can be returned. That is the shipped quantity when the ERP has reported
shipments for the order (goods that never left cannot come back), else the ordered quantity (an ERP
that reports no shipments), less what earlier requests of the same line already ask for. The request
and its ``return.requested`` event are written in one transaction; creating the return in the ERP is
a later step.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import ReturnAuthorization, ReturnLine, ReturnState, Shipment, ShipmentState
from ordersync.domain.errors import Conflict, NotFound, ValidationFailed
from ordersync.domain.events import ReturnRequested
from ordersync.domain.order import OrderRecord
from ordersync.flows.amendments import REACHED_ERP
from ordersync.store.schema import return_requests, shipments
from ordersync.store.uow import UnitOfWork

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
