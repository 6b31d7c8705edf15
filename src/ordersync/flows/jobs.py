"""What the worker runs on a clock, besides consuming messages: backorder promises that passed without
a shipment become cases, and cases past their due time escalate. Each job reads first and writes only
for what needs it (most runs find nothing), and returns how many it changed."""

from __future__ import annotations

import logging

from ordersync.canonical.v1 import CaseType
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.order.backorders import OPEN_STATES, shipped_by_plant
from ordersync.flows.services.workbench import escalate
from ordersync.ports.store import Store

log = logging.getLogger("ordersync.flows.jobs")
SYSTEM = "ordersync"


def flag_passed_promises(store: Store, clock: Clock, policy: CasePolicy, *, limit: int = 1000) -> int:
    """Orders with a passed, unshipped backorder promise get an ``allocation_shortfall`` case (or their
    open one escalates); each (line, promised date) once. Returns how many orders were flagged."""
    today = clock.now().date()
    with store.reading() as reader:
        ids = reader.orders.backordered(OPEN_STATES, limit)
    flagged = 0
    for order_id in ids:
        with store.reading() as reader:
            record = reader.orders.find(order_id)
            due = record.passed_promises(shipped_by_plant(reader.documents.shipments(order_id)), today) \
                if record else []
        if not due:
            continue
        with store.transaction() as uow:
            record = uow.orders.get(order_id)
            due = record.passed_promises(shipped_by_plant(uow.documents.shipments(order_id)), today)
            if due and record.state in OPEN_STATES:
                open_cases = uow.cases.open_for_order(record.id, CaseType.ALLOCATION_SHORTFALL)
                record.flag_passed_promises(due, open_case_now=open_cases[0] if open_cases else None, at=uow.now(),
                                            policy=policy)
                uow.save_order(record)
                flagged += 1
    if flagged:
        log.info("%d order(s) with a passed backorder promise flagged", flagged)
    return flagged


def escalate_overdue(store: Store, clock: Clock, policy: CasePolicy, *, limit: int = 200) -> int:
    """Every open case past its due time goes one owner level up, with a new due time (so it escalates
    again only if nobody acts for that long). Returns how many escalated."""
    now = clock.now()
    with store.reading() as reader:  # most checks find nothing: no write transaction for them
        if not reader.cases.overdue(now, 1):
            return 0
    with store.transaction() as uow:
        due = uow.cases.overdue(now, limit)
        for case in due:
            assert case.due_at is not None
            escalate(uow, case, policy, actor=SYSTEM, reason=f"not resolved by its due time {case.due_at.isoformat()}")
    if due:
        log.info("%d overdue case(s) escalated", len(due))
    return len(due)
