"""From received to ready for the ERP: validate, price, check credit, allocate.

The plan is computed from ERP answers outside any database transaction (ERP calls are slow), then
applied in one transaction together with the inbox record of the message that triggered it. Nothing
is written to the ERP here, so a crash or a retry simply plans again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.adapters.erp.guard import Priority, erp_priority
from ordersync.canonical.v1 import Account, Allocation, CaseType, OrderState, Product
from ordersync.domain.allocation import LineDemand, PlantInfo, allocate, is_backordered
from ordersync.domain.order import OrderRecord
from ordersync.domain.pricing import PricedLine, apply_rules, mismatch
from ordersync.domain.validation import Reason, validate_order
from ordersync.flows.deps import FlowDeps
from ordersync.ports.erp import ErpPort, UnknownItem


@dataclass
class Plan:
    """What planning decided. Exactly one of: rejected (reasons), held (case), or allocations."""

    erp: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    lines: list[PricedLine] = field(default_factory=list)
    categories: dict[str, str] = field(default_factory=dict)
    hold: tuple[CaseType, str, str] | None = None  # type, summary, next action
    allocations: list[Allocation] = field(default_factory=list)
    ship_to_region: str | None = None
    credit: dict[str, str] | None = None
    reached: OrderState = OrderState.RECEIVED

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


def plan_from_received(record: OrderRecord, deps: FlowDeps) -> Plan:
    """Validate and price; then credit and allocation (unless a hold stops the flow)."""
    plan = Plan()
    order = record.order
    today = deps.clock.now().date()
    try:
        plan.erp = deps.router.erp_name_for(order.account_id)
    except UnknownItem:
        plan.reasons.append(Reason("unknown_account", f"account {order.account_id} is not known"))
        return plan
    erp = deps.router.erp(plan.erp)
    with erp_priority(Priority.ORDERS):
        account = _account(erp, order.account_id)
        products = _catalog(deps, erp, order.account_id) if account else {}
        result = validate_order(order, account, products, today, max_days_ahead=deps.policy.max_days_ahead)
        if not result.ok and account and deps.readmodel is not None:
            # the catalog came from the read model: before refusing, check against the ERP itself (a
            # product created or changed minutes ago must not get an order rejected)
            products = {p.sku: p for p in deps.readmodel.products(order.account_id, refresh=True)}
            result = validate_order(order, account, products, today, max_days_ahead=deps.policy.max_days_ahead)
        if not result.ok:
            plan.reasons = result.reasons
            return plan
        assert account is not None
        plan.reached = OrderState.VALIDATED
        plan.ship_to_region = _region(account, order.ship_to_id)
        plan.categories = {sku: products[sku].category for sku in result.skus.values()}
        _price(plan, record, erp, result.skus, products, today, deps)
        plan.reached = OrderState.PRICED
        shown = {line.line_no: line.unit_price_shown for line in order.lines}
        bad = [line for line in plan.lines
               if mismatch(shown.get(line.line_no), line.unit_price, deps.policy.price_tolerance_percent)]
        if bad:
            detail = ", ".join(f"line {x.line_no}: shown {shown[x.line_no]}, ours {x.unit_price}" for x in bad)
            plan.hold = (CaseType.PRICE_MISMATCH, f"Price shown by {order.channel} differs: {detail}",
                         "accept the ERP price, honour the shown price, or cancel")
            return plan
        continue_after_pricing(plan, record, erp, deps, credit_approved=False, products=products)
    return plan


def continue_after_pricing(plan: Plan, record: OrderRecord, erp: ErpPort, deps: FlowDeps, *,
                           credit_approved: bool, products: dict[str, Product] | None = None) -> None:
    """Credit check (unless approved by a person) and allocation."""
    order = record.order
    with erp_priority(Priority.ORDERS):
        if not credit_approved:
            credit = erp.credit(order.account_id)
            plan.credit = {"limit": str(credit.limit), "exposure": str(credit.exposure),
                           "available": str(credit.available), "as_of": credit.as_of.isoformat()}
            if plan.total > credit.available:
                plan.hold = (CaseType.CREDIT_HOLD,
                             f"Order total {plan.total} {credit.currency} exceeds available credit "
                             f"{credit.available} (limit {credit.limit}, exposure {credit.exposure})",
                             "release the hold or cancel the order")
                return
        if products is None:
            products = _catalog(deps, erp, order.account_id)
        skus = sorted({line.sku for line in plan.lines})
        positions = erp.availability(skus)
        plants = [PlantInfo(p.code, p.region) for p in
                  (deps.readmodel.plants(erp.name) if deps.readmodel is not None else erp.plants())]
    atp = {(p.sku, p.plant): p.available_to_promise for p in positions}
    requested = {line.line_no: line.requested_date or order.requested_date for line in order.lines}
    demands = [
        LineDemand(line.line_no, line.sku, line.quantity, products[line.sku].pack_multiple, requested[line.line_no])
        for line in plan.lines
    ]
    plan.allocations = allocate(order.id, demands, atp, plants, plan.ship_to_region, deps.clock.now().date(),
                                deps.policy.allocation)
    plan.reached = OrderState.BACKORDERED if is_backordered(plan.allocations) else OrderState.ALLOCATED


def _catalog(deps: FlowDeps, erp: ErpPort, account_id: str) -> dict[str, Product]:
    """The account's assortment: from the read model when there is one (kept fresh by refreshes; the
    ERP is asked again before a validation failure is final), else from the ERP."""
    if deps.readmodel is not None:
        return {p.sku: p for p in deps.readmodel.products(account_id)}
    return {p.sku: p for p in erp.products(account_id)}


def _account(erp: ErpPort, account_id: str) -> Account | None:
    try:
        return erp.account(account_id)
    except UnknownItem:
        return None


def _region(account: Account, ship_to_id: str | None) -> str | None:
    for address in account.ship_to:
        if address.id == ship_to_id:
            return address.region or None
    return account.ship_to[0].region if account.ship_to else None


def _price(plan: Plan, record: OrderRecord, erp: ErpPort, skus: dict[int, str], products: dict[str, Product],
           today: dt.date, deps: FlowDeps) -> None:
    order = record.order
    lines = sorted(order.lines, key=lambda x: x.line_no)
    quotes = erp.prices(order.account_id, [(skus[line.line_no], line.quantity) for line in lines], today)
    for line, quote in zip(lines, quotes, strict=True):
        sku = skus[line.line_no]
        unit_price, adjustments = apply_rules(
            quote.unit_price, list(deps.policy.rules), channel=order.channel, campaign=order.campaign, sku=sku,
            category=products[sku].category, account_id=order.account_id, on=today,
        )
        plan.lines.append(PricedLine(line.line_no, sku, line.quantity, quote.unit_price, unit_price, adjustments))
