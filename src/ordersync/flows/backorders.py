"""Backordered lines after the ERP accepted them: revised dates reach the buyer, and a promise that
passes without a shipment becomes a case.

**Revised dates.** The ERP says when each line of its order will ship (``ErpOrder.lines[].promised_date``:
Tryton's ``sale.line.shipping_date``, the planned date of the line's moves). The change poller turns a
change of a shipment, its planned date included, into ``erp.shipment_changed``; for an order with
backordered lines, ``flow.backorder_dates`` then reads the ERP order and compares. A revision is recorded
on the order (the allocation's ``promised_date``, and ``backorder_revisions``) together with
``order.backorder_date_revised``, the event a buyer notification is sent from. Two things keep it honest:

- The ERP plans one date per sale (its earliest line's), so the first date seen for a backordered
  line may be *earlier* than the hub's promise without being a promise for the backordered quantity.
  The first sighting is kept as a baseline and only counts when it is later than what the buyer was
  told; after that, every change of the ERP's date is a revision.
- A line with a shipped quantity is dated by its first shipment in the ERP, which says nothing about
  the rest; such lines are not followed (the fulfillment flow reports what ships).

**Passed promises.** A periodic check finds backordered quantity still not shipped (per the hub's copy
of the ERP's shipments) after its promised date, and opens an ``allocation_shortfall`` case for the
order, or escalates the one that is open. Each (line, promised date) is flagged once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ordersync.adapters.erp.guard import Priority, erp_priority
from ordersync.canonical.v1 import CaseType, OrderState, Shipment, ShipmentState
from ordersync.domain.cases import CasePolicy, escalate_case, open_case
from ordersync.domain.clock import Clock
from ordersync.domain.events import BackorderDateRevised, CaseEscalated, CaseOpened, ErpShipmentChanged
from ordersync.domain.order import OrderRecord
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import ErpOrder, parse_reference
from ordersync.store.db import Database
from ordersync.store.orders import OrderRepository
from ordersync.store.schema import orders, shipments
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.flows.backorders")

BACKORDER_DATES = "flow.backorder_dates"
S = OrderState
#: the ERP accepted the order and has not shipped all of it
OPEN_STATES: frozenset[OrderState] = frozenset({S.ACCEPTED, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED})
SHIPPED_STATES: frozenset[ShipmentState] = frozenset(
    {ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED})


def _key(plant: str, line_no: int) -> str:
    return f"{plant}:{line_no}"


def backorders(record: OrderRecord) -> list[dict[str, Any]]:
    """The order's backordered allocations (dicts of its data, changed in place by the callers)."""
    return [a for a in record.data.get("allocations", []) if a.get("backorder")]


# -- revised dates ------------------------------------------------------------------------------------

def erp_dates(erp_order: ErpOrder) -> dict[int, dt.date]:
    """The ERP's date per line still wholly to ship."""
    shipped = {x.line_no for s in erp_order.shipments if s.state in SHIPPED_STATES for x in s.lines if x.quantity > 0}
    return {x.line_no: x.promised_date for x in erp_order.lines
            if x.promised_date is not None and x.quantity > 0 and x.line_no not in shipped}


def revise_promises(record: OrderRecord, erp_orders: Sequence[ErpOrder], at: dt.datetime) -> bool:
    """Bring the backordered allocations' dates in line with the ERP's (see the module docstring);
    each revision becomes an event on ``record``. True if the order's data changed (save it)."""
    seen: dict[str, str] = record.data.setdefault("erp_promised", {})
    changed = False
    for erp_order in erp_orders:
        dates = erp_dates(erp_order)
        for a in backorders(record):
            new = dates.get(a["line_no"])
            if a["plant"] != erp_order.plant or new is None:
                continue
            key = _key(a["plant"], a["line_no"])
            before, seen[key] = seen.get(key), new.isoformat()
            changed = changed or before != seen[key]
            promised = dt.date.fromisoformat(a["promised_date"])
            if new == promised or (before is None and new < promised) or before == seen[key]:
                continue
            a["promised_date"] = new.isoformat()
            record.data.setdefault("backorder_revisions", []).append(
                {"at": at.isoformat(), "line_no": a["line_no"], "plant": a["plant"], "from": promised.isoformat(),
                 "to": new.isoformat()})
            record.record_event(BackorderDateRevised(
                order_id=record.id, channel=record.order.channel, account_id=record.order.account_id,
                line_no=a["line_no"], sku=a["sku"], plant=a["plant"], previous_date=promised, revised_date=new))
    return changed


def _load(db: Database, order_id: str) -> OrderRecord | None:
    with db.read() as conn:
        return OrderRepository(conn).find(order_id)


def on_shipment_changed(deps: FlowDeps) -> Callable[[ErpShipmentChanged, HandlerContext], None]:
    def handle(msg: ErpShipmentChanged, ctx: HandlerContext) -> None:
        parsed = parse_reference(msg.reference) if msg.reference else None
        if parsed is None or msg.reference is None:
            return
        order_id, plant = parsed
        record = _load(deps.db, order_id)
        if record is None or record.state not in OPEN_STATES or not any(a["plant"] == plant
                                                                        for a in backorders(record)):
            return  # most shipments: no backorder to follow, no ERP call
        with erp_priority(Priority.CHANGES):
            erp_order = deps.router.erp(msg.erp).order(msg.reference)
        if erp_order is None:
            return
        with ctx.transaction() as uow:
            record = uow.orders.get(order_id)
            if record.state in OPEN_STATES and revise_promises(record, [erp_order], uow.now()):
                uow.save_order(record)

    return handle


# -- passed promises ------------------------------------------------------------------------------------

def shipped_quantities(conn: Connection, order_id: str) -> dict[tuple[str, int], Decimal]:
    """What left each plant per order line, from the hub's copy of the ERP's shipments."""
    out: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for body in conn.execute(select(shipments.c.body).where(shipments.c.order_id == order_id)).scalars():
        shipment = Shipment.model_validate_json(body)
        if shipment.state in SHIPPED_STATES:
            for x in shipment.lines:
                out[(shipment.plant, x.line_no)] += x.quantity
    return out


def outstanding(record: OrderRecord, shipped: dict[tuple[str, int], Decimal]) -> list[dict[str, Any]]:
    """Backordered allocations whose plant has not shipped all it was to ship of their line."""
    allocated: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for a in record.data.get("allocations", []):
        allocated[(a["plant"], a["line_no"])] += Decimal(a["quantity"])
    return [a for a in backorders(record)
            if shipped.get((a["plant"], a["line_no"]), Decimal(0)) < allocated[(a["plant"], a["line_no"])]]


def passed(record: OrderRecord, shipped: dict[tuple[str, int], Decimal], today: dt.date) -> list[dict[str, Any]]:
    """Outstanding backorders whose promised date is over and that were not flagged for that date."""
    flagged = record.data.get("backorder_overdue", {})
    return [a for a in outstanding(record, shipped)
            if dt.date.fromisoformat(a["promised_date"]) < today
            and flagged.get(_key(a["plant"], a["line_no"])) != a["promised_date"]]


def flag_passed(uow: UnitOfWork, record: OrderRecord, due: list[dict[str, Any]], policy: CasePolicy) -> None:
    """Open an allocation shortfall case for ``due`` (or escalate the open one) and remember the dates."""
    now = uow.now()
    detail = "; ".join(f"line {a['line_no']} ({a['sku']}, {a['quantity']} from {a['plant']}) was promised by "
                       f"{a['promised_date']}" for a in due)
    summary = f"Backorder not shipped on time: {detail}"
    open_cases = uow.cases.open_for_order(record.id, CaseType.ALLOCATION_SHORTFALL)
    if open_cases:
        before = open_cases[0]
        case = escalate_case(before, policy, now=now, actor="ordersync", reason=summary)
        uow.cases.save(case)
        record.record_event(CaseEscalated(case=case, from_team=before.owner_team, from_level=before.owner_level,
                                          reason=summary, actor="ordersync"))
    else:
        case = open_case(CaseType.ALLOCATION_SHORTFALL, summary=summary, now=now, policy=policy,
                         next_action="confirm a new date with production planning and tell the buyer, "
                                     "re-read the ERP's promise (reallocate), or cancel the line",
                         order_id=record.id, account_id=record.order.account_id)
        uow.cases.add(case)
        record.record_event(CaseOpened(case=case))
    flagged = record.data.setdefault("backorder_overdue", {})
    for a in due:
        flagged[_key(a["plant"], a["line_no"])] = a["promised_date"]
    uow.save_order(record)


def flag_passed_promises(db: Database, clock: Clock, policy: CasePolicy, *, limit: int = 1000) -> int:
    """The periodic check: orders with a passed, unshipped backorder promise get a case. Returns how
    many orders were flagged. Reads first; writes only for orders that need it."""
    today = clock.now().date()
    with db.read() as conn:
        ids = list(conn.execute(
            select(orders.c.id).where(orders.c.state.in_([s.value for s in OPEN_STATES]),
                                      orders.c.data.contains('"backorder": true'))
            .order_by(orders.c.updated_at).limit(limit)).scalars())
    flagged = 0
    for order_id in ids:
        with db.read() as conn:
            record = OrderRepository(conn).find(order_id)
            due = passed(record, shipped_quantities(conn, order_id), today) if record else []
        if not due:
            continue
        with unit_of_work(db, clock) as uow:
            record = uow.orders.get(order_id)
            due = passed(record, shipped_quantities(uow.conn, order_id), today)
            if due and record.state in OPEN_STATES:
                flag_passed(uow, record, due, policy)
                flagged += 1
    if flagged:
        log.info("%d order(s) with a passed backorder promise flagged", flagged)
    return flagged


def register(registry: Registry, deps: FlowDeps) -> None:
    registry.add(Subscription(BACKORDER_DATES, frozenset({ErpShipmentChanged.TYPE}), on_shipment_changed(deps), "io",
                              ordered=True))
