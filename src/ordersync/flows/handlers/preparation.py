"""Where an order is validated, priced, credit-checked and allocated: the ERP is asked, the rules of
:class:`~ordersync.domain.order.OrderPlan` decide.

Asked in this order, each only if the order is still undecided: the account and its assortment (from the
read model; the ERP itself before a validation failure is final, so a product created minutes ago does
not get an order rejected), contract prices, the price the channel showed, the account's credit, stock
per plant and the plants. Nothing is written anywhere; the caller records the plan.
"""

from __future__ import annotations

from ordersync.canonical.v1 import Account, Product
from ordersync.domain.order import OrderPlan, OrderRecord
from ordersync.flows.deps import FlowDeps
from ordersync.ports.erp import ErpPort, UnknownItem


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
        continue_after_pricing(plan, record, deps, credit_approved=False, products=products)
    return plan


def continue_after_pricing(plan: OrderPlan, record: OrderRecord, deps: FlowDeps, *, credit_approved: bool,
                           products: dict[str, Product] | None = None) -> None:
    """Credit check (unless a person approved it) and allocation."""
    order = record.order
    assert plan.erp is not None or record.erp is not None
    erp = deps.erps.erp(plan.erp or record.erp or "")
    if not credit_approved:
        plan.check_credit(erp.credit(order.account_id))
        if plan.decided:
            return
    if products is None:
        products = _catalog(deps, erp, order.account_id)
    positions = erp.availability(sorted({line.sku for line in plan.lines}))
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
