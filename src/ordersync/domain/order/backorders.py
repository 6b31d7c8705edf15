"""Backordered lines after the ERP accepted them: revised dates reach the buyer, and a promise that passes
without a shipment becomes a case.

**Revised dates.** The ERP says when each line of its order will ship (``ErpOrder.lines[].promised_date``).
A revision is recorded on the order (the allocation's ``promised_date`` and a
:class:`~ordersync.domain.order.parts.BackorderRevision`) with ``order.backorder_date_revised``, the
event a buyer notification is sent from. Two things keep it honest:

- The ERP plans one date per sale (its earliest line's), so the first date seen for a backordered
  line may be *earlier* than the hub's promise without being a promise for the backordered quantity.
  The first sighting is kept as a baseline and only counts when it is later than what the buyer was
  told; after that, every change of the ERP's date is a revision.
- A line with a shipped quantity is dated by its first shipment in the ERP, which says nothing about
  the rest; such lines are not followed (the fulfillment flow reports what ships).

**Passed promises.** Backordered quantity still not shipped after its promised date opens an
``allocation_shortfall`` case for the order, or escalates the one that is open. Each (line, promised
date) is flagged once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ordersync.canonical.erp import ErpOrder
from ordersync.canonical.v1 import Allocation, CaseType, ExceptionCase, OrderState, Shipment, ShipmentState
from ordersync.domain.cases import CasePolicy, escalate_case, open_case
from ordersync.domain.events import BackorderDateRevised, CaseEscalated, CaseOpened, Event
from ordersync.domain.order.parts import BackorderRevision, watch_key

if TYPE_CHECKING:
    from ordersync.domain.order.aggregate import OrderRecord

S = OrderState
#: the ERP accepted the order and has not shipped all of it
OPEN_STATES: frozenset[OrderState] = frozenset({S.ACCEPTED, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED})
SHIPPED_STATES: frozenset[ShipmentState] = frozenset(
    {ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED})

#: quantity that left each plant per order line: ``{(plant, line_no): quantity}``
Shipped = Mapping[tuple[str, int], Decimal]


def shipped_by_plant(shipments: Iterable[Shipment]) -> dict[tuple[str, int], Decimal]:
    """What left each plant per order line, from the ERP's shipments."""
    out: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for shipment in shipments:
        if shipment.state in SHIPPED_STATES:
            for x in shipment.lines:
                out[(shipment.plant, x.line_no)] += x.quantity
    return dict(out)


def backorders(record: OrderRecord) -> list[Allocation]:
    return [a for a in record.allocations if a.backorder]


def erp_dates(erp_order: ErpOrder) -> dict[int, dt.date]:
    """The ERP's date per line still wholly to ship."""
    shipped = {x.line_no for s in erp_order.shipments if s.state in SHIPPED_STATES for x in s.lines if x.quantity > 0}
    return {x.line_no: x.promised_date for x in erp_order.lines
            if x.promised_date is not None and x.quantity > 0 and x.line_no not in shipped}


def revise_promises(record: OrderRecord, erp_orders: Sequence[ErpOrder], at: dt.datetime) -> bool:
    """Bring the backordered allocations' dates in line with the ERP's (see the module docstring); each
    revision becomes an event on the order. True if the order changed (save it)."""
    seen = dict(record.backorders.erp_promised)
    revisions = list(record.backorders.revisions)
    allocations = list(record.allocations)
    changed = False
    for erp_order in erp_orders:
        dates = erp_dates(erp_order)
        for i, a in enumerate(allocations):
            new = dates.get(a.line_no)
            if not a.backorder or a.plant != erp_order.plant or new is None:
                continue
            key = watch_key(a.plant, a.line_no)
            before, seen[key] = seen.get(key), new
            changed = changed or before != new
            promised = a.promised_date
            if new == promised or (before is None and new < promised) or before == new:
                continue
            allocations[i] = a.model_copy(update={"promised_date": new})
            revisions.append(BackorderRevision(at=at, line_no=a.line_no, plant=a.plant, previous=promised,
                                               revised=new))
            record.record_event(BackorderDateRevised(
                order_id=record.id, channel=record.order.channel, account_id=record.order.account_id,
                line_no=a.line_no, sku=a.sku, plant=a.plant, previous_date=promised, revised_date=new))
    record.allocations = tuple(allocations)
    record.backorders = record.backorders.model_copy(update={"erp_promised": seen, "revisions": tuple(revisions)})
    return changed


def outstanding(record: OrderRecord, shipped: Shipped) -> list[Allocation]:
    """Backordered allocations whose plant has not shipped all it was to ship of their line."""
    allocated: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for a in record.allocations:
        allocated[(a.plant, a.line_no)] += a.quantity
    return [a for a in backorders(record)
            if shipped.get((a.plant, a.line_no), Decimal(0)) < allocated[(a.plant, a.line_no)]]


def passed(record: OrderRecord, shipped: Shipped, today: dt.date) -> list[Allocation]:
    """Outstanding backorders whose promised date is over and that were not flagged for that date."""
    flagged = record.backorders.overdue
    return [a for a in outstanding(record, shipped)
            if a.promised_date < today and flagged.get(watch_key(a.plant, a.line_no)) != a.promised_date]


def flag_passed(record: OrderRecord, due: Sequence[Allocation], *, open_case_now: ExceptionCase | None,
                at: dt.datetime, policy: CasePolicy) -> list[Event]:
    """Open an allocation shortfall case for ``due`` (or escalate ``open_case_now``, the order's open
    one) and remember the dates as flagged."""
    mark = len(record.pending_events)
    detail = "; ".join(f"line {a.line_no} ({a.sku}, {a.quantity} from {a.plant}) was promised by "
                       f"{a.promised_date.isoformat()}" for a in due)
    summary = f"Backorder not shipped on time: {detail}"
    if open_case_now is not None:
        case = escalate_case(open_case_now, policy, now=at, actor="ordersync", reason=summary)
        record.changed_cases.append(case)
        record.record_event(CaseEscalated(case=case, from_team=open_case_now.owner_team,
                                          from_level=open_case_now.owner_level, reason=summary, actor="ordersync"))
    else:
        case = open_case(CaseType.ALLOCATION_SHORTFALL, summary=summary, now=at, policy=policy,
                         next_action="confirm a new date with production planning and tell the buyer, "
                                     "re-read the ERP's promise (reallocate), or cancel the line",
                         order_id=record.id, account_id=record.order.account_id)
        record.new_cases.append(case)
        record.record_event(CaseOpened(case=case))
    overdue = {**record.backorders.overdue, **{watch_key(a.plant, a.line_no): a.promised_date for a in due}}
    record.backorders = record.backorders.model_copy(update={"overdue": overdue})
    return record.pending_events[mark:]
