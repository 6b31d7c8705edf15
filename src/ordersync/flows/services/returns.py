"""Return requests: a buyer asks to send goods of an order back (a return authorization request).

The hub checks what it can know without the ERP: the order is the buyer's, each line exists, and the
quantity is at most what can be returned. That is the shipped quantity when the ERP has reported
shipments for the order (goods that never left cannot come back), else the ordered quantity (an ERP
that reports no shipments), less what earlier requests of the same line already ask for
(:func:`ordersync.domain.returns.returnable_problems`, the rule the ERP adapters apply too). The request
and its ``return.requested`` event are written in one transaction; creating the return in the ERP is
the next step (:mod:`ordersync.flows.handlers.returns`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ordersync.canonical.v1 import ReturnAuthorization, ReturnLine, ReturnState
from ordersync.domain.errors import Conflict, NotFound, ValidationFailed
from ordersync.domain.events import ReturnRequested
from ordersync.domain.lifecycle import REACHED_ERP
from ordersync.domain.order import OrderRecord
from ordersync.domain.returns import returnable_problems, shipped_by_line
from ordersync.ports.store import UnitOfWork


@dataclass(frozen=True)
class ReturnLineRequest:
    line_no: int
    quantity: Decimal
    reason: str = ""


def check_quantities(record: OrderRecord, lines: Sequence[ReturnLineRequest], shipped: dict[int, Decimal] | None,
                     requested: dict[int, Decimal]) -> list[str]:
    ordered = record.ordered
    limit, what = (shipped, "shipped") if shipped is not None else (ordered, "ordered")
    return returnable_problems([(x.line_no, x.quantity) for x in lines], owner=f"order {record.id}",
                               lines=ordered.keys(), limit=limit, limit_word=what, before=requested,
                               before_words="is already requested for return")


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
    problems = check_quantities(record, lines, shipped_by_line(uow.documents.shipments(order_id)),
                                uow.returns.requested_quantities(order_id))
    if problems:
        raise ValidationFailed(problems)
    now = uow.now()
    request = ReturnAuthorization(
        id=uuid.uuid4().hex, order_id=order_id, account_id=record.order.account_id, state=ReturnState.REQUESTED,
        lines=tuple(ReturnLine(line_no=x.line_no, quantity=x.quantity, reason=x.reason) for x in lines),
        requested_at=now)
    uow.returns.add(request, now)
    uow.emit(ReturnRequested(return_request=request, channel=channel, actor=actor), correlation_id=order_id)
    return request
