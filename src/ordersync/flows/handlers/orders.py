"""The order submission process: received -> validated -> priced -> (on_hold) -> allocated/backordered ->
submitted_to_erp -> accepted, with rejections and holds as explicit outcomes.

Each handler loads the order, asks the ERP what the decision needs (outside any database transaction:
ERP calls are slow), lets the order decide (:class:`~ordersync.domain.order.OrderRecord`) and saves it
in one transaction with the inbox record of the message. Every ERP call waits in the orders lane of the
ERP's budget (chosen where the handlers are registered).

Handlers (registered at the bottom):

- ``flow.order_prepare`` on ``order.received``: validate, price, check the price shown and the credit,
  allocate (:func:`prepare_plan` asks the ERP and the read model, :class:`~ordersync.domain.order.OrderPlan`
  decides). Asked in this order, each only while the order is undecided: the account and its assortment
  (from the read model; the ERP itself before a validation failure is final, so a product created minutes
  ago does not get an order rejected), contract prices, the price the channel showed, the account's
  credit, stock per plant and the plants. Nothing is written to the ERP, so a crash or a retry simply
  prepares again.
- ``flow.erp_submit`` on ``order.ready_for_erp``: create the ERP sales orders, exactly once per plant.
  Ordered per order, so two submissions of one order never run at the same time; the ERP adapter finds
  orders left behind by a crash by their reference. Stock the ERP finds short is backordered and sent
  again (:mod:`~ordersync.domain.order.to_erp`).
- ``flow.order_resume`` on ``order.hold_released``: continue where the hold stopped the flow.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from ordersync.canonical.v1 import Account, CaseType, CreditStatus, OrderState, Product
from ordersync.domain.events import HoldReleased, OrderReadyForErp, OrderReceived
from ordersync.domain.order import OrderPlan, OrderRecord
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.registry import HandlerContext, Registry, Subscription
from ordersync.ports.erp import ErpPort, Lane, UnknownItem, order_reference

log = logging.getLogger("ordersync.flows.orders")

PREPARE = "flow.order_prepare"
SUBMIT = "flow.erp_submit"
RESUME = "flow.order_resume"
#: the ERP lane every call of these handlers waits in
LANE = Lane.ORDERS

S = OrderState
IoHandler = Callable[..., None]


def _load(deps: FlowDeps, order_id: str) -> OrderRecord | None:
    with deps.store.reading() as reader:
        return reader.orders.find(order_id)


def prepare(deps: FlowDeps) -> IoHandler:
    def handle(msg: OrderReceived, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order.id)
        if record is None or record.state is not S.RECEIVED:
            return  # a duplicate delivery or an order that moved on: nothing to do
        plan = prepare_plan(record, deps)
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order.id)
            if record.state is S.RECEIVED:
                record.apply_plan(plan, uow.now(), deps.cases)
                uow.save_order(record)

    return handle


def submit(deps: FlowDeps) -> IoHandler:
    def handle(msg: OrderReadyForErp, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order_id)
        if record is None or record.state not in (S.ALLOCATED, S.BACKORDERED, S.SUBMITTED_TO_ERP):
            return
        if record.state is not S.SUBMITTED_TO_ERP:
            with deps.store.transaction(causation_id=ctx.envelope.message_id) as uow:
                record = uow.orders.get(msg.order_id)
                if record.state in (S.ALLOCATED, S.BACKORDERED):
                    record.start_submission(uow.now())
                    uow.save_order(record)
                elif record.state is not S.SUBMITTED_TO_ERP:
                    return
        assert record.erp is not None
        erp = deps.erps.erp(record.erp)
        later = deps.clock.now().date() + dt.timedelta(days=deps.policy.allocation.backorder_days)
        submission = record.submission(credit_approved=msg.credit_approved, backorder_by=later)
        while requests := submission.requests():
            submission.answered(erp.submit_orders(requests))
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order_id)
            if record.state is S.SUBMITTED_TO_ERP:
                record.apply_results(submission.allocations, submission.results, uow.now(), deps.cases)
                uow.save_order(record)

    return handle


def resume(deps: FlowDeps) -> IoHandler:
    def handle(msg: HoldReleased, ctx: HandlerContext) -> None:
        record = _load(deps, msg.order_id)
        if record is None or not record.held_by(msg.case_id):
            return
        plan: OrderPlan | None = None
        if msg.decision == "cancel":
            if record.held_from is S.SUBMITTED_TO_ERP:  # the ERP keeps the held sales orders as quotations
                assert record.erp is not None
                erp = deps.erps.erp(record.erp)
                for plant in record.plants():
                    erp.cancel_order(order_reference(record.id, plant))
        elif record.held_from is not S.SUBMITTED_TO_ERP:  # prepared again from the priced lines
            plan = record.prepared_again()
            if msg.case_type is CaseType.PRICE_MISMATCH and msg.decision == "honor_shown_price":
                plan.honor_shown_prices(record.order)
            credit_ok = msg.case_type is CaseType.CREDIT_HOLD or record.credit_approved
            continue_after_pricing(plan, record, deps, credit_approved=credit_ok)
        # else: resubmitted below, with the ERP's credit warning acknowledged
        with ctx.transaction() as uow:
            record = uow.orders.get(msg.order_id)
            if record.state is not S.ON_HOLD:
                return
            record.release_hold(decision=msg.decision, case_type=msg.case_type, actor=msg.actor, at=uow.now(),
                                plan=plan, cases=deps.cases)
            uow.save_order(record)

    return handle


# -- preparation: the ERP is asked, the plan decides -------------------------------------------------------

def prepare_plan(record: OrderRecord, deps: FlowDeps) -> OrderPlan:
    """Validate and price; then credit and allocation (unless a rejection or a hold decides first)."""
    plan = OrderPlan()
    order = record.order
    today = deps.clock.now().date()
    try:
        plan.erp = deps.erps.erp_name_for(order.account_id)
    except UnknownItem:
        plan.unknown_account(order.account_id)
        return plan
    erp = deps.erps.erp(plan.erp)
    account = _account(erp, order.account_id)
    products = _catalog(deps, erp, order.account_id) if account else {}
    max_days = deps.policy.max_days_ahead
    result = plan.validate(order, account, products, today, max_days_ahead=max_days)
    if not result.ok and account and deps.catalogs is not None:
        products = {p.sku: p for p in deps.catalogs.products(order.account_id, refresh=True)}
        result = plan.validate(order, account, products, today, max_days_ahead=max_days)
    if not result.ok:
        return plan
    assert account is not None
    lines = sorted(order.lines, key=lambda x: x.line_no)
    quotes = erp.prices(order.account_id, [(result.skus[line.line_no], line.quantity) for line in lines], today)
    plan.price(order, account, result.skus, products, quotes, deps.policy.rules, today)
    plan.check_shown_prices(order, deps.policy.price_tolerance_percent)
    if not plan.decided:
        continue_after_pricing(plan, record, deps, credit_approved=False, products=products, credit=account.credit)
    return plan


def continue_after_pricing(plan: OrderPlan, record: OrderRecord, deps: FlowDeps, *, credit_approved: bool,
                           products: dict[str, Product] | None = None, credit: CreditStatus | None = None) -> None:
    """Credit check (unless a person approved it) and allocation. ``credit``: the account's credit as an
    account read of this preparation brought it (else the ERP is asked). Stock comes from the read model
    while the ERP's change capture follows it (:meth:`~ordersync.ports.catalogs.Catalogs.followed_stock`),
    else from the ERP; either way the ERP has the last word when the order is submitted (a shortfall is
    backordered)."""
    order = record.order
    assert plan.erp is not None or record.erp is not None
    erp = deps.erps.erp(plan.erp or record.erp or "")
    if not credit_approved:
        plan.check_credit(credit or erp.credit(order.account_id))
        if plan.decided:
            return
    if products is None:
        products = _catalog(deps, erp, order.account_id)
    skus = sorted({line.sku for line in plan.lines})
    positions = deps.catalogs.followed_stock(erp.name, skus) if deps.catalogs is not None else None
    if positions is None:
        positions = erp.availability(skus)
    plants = deps.catalogs.plants(erp.name) if deps.catalogs is not None else erp.plants()
    plan.allocate(order, products, positions, plants, deps.clock.now().date(), deps.policy.allocation)


def _catalog(deps: FlowDeps, erp: ErpPort, account_id: str) -> dict[str, Product]:
    """The account's assortment: from the read model when there is one (kept fresh by refreshes), else
    from the ERP."""
    if deps.catalogs is not None:
        return {p.sku: p for p in deps.catalogs.products(account_id)}
    return {p.sku: p for p in erp.products(account_id)}


def _account(erp: ErpPort, account_id: str) -> Account | None:
    try:
        return erp.account(account_id)
    except UnknownItem:
        return None


def register(registry: Registry, deps: FlowDeps) -> None:
    deps = deps.in_lane(LANE)
    registry.add(Subscription(PREPARE, frozenset({OrderReceived.TYPE}), prepare(deps), "io",
                              concurrency=deps.submit_concurrency))
    registry.add(Subscription(SUBMIT, frozenset({OrderReadyForErp.TYPE}), submit(deps), "io", ordered=True,
                              concurrency=deps.submit_wave))
    registry.add(Subscription(RESUME, frozenset({HoldReleased.TYPE}), resume(deps), "io", ordered=True))
