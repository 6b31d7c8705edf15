"""Builders for the order aggregate's unit tests: canonical values as the ERP would answer, and orders
brought to a state through the aggregate's own decisions (no store, no ERP)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ordersync.canonical.erp import Plant, SubmitOutcome, SubmitResult, order_reference
from ordersync.canonical.v1 import (
    Account,
    Address,
    CreditStatus,
    Order,
    OrderLine,
    OrderState,
    PriceQuote,
    Product,
    StockPosition,
)
from ordersync.domain.allocation import AllocationPolicy
from ordersync.domain.cases import CasePolicy
from ordersync.domain.order import OrderPlan, OrderRecord

AT = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
TODAY = AT.date()
CASES = CasePolicy()
POLICY = AllocationPolicy()
PLANTS = [Plant(code="PLANT-N", region="north"), Plant(code="PLANT-S", region="south")]
ACCOUNT = Account(id="C-1", name="Acme", currency="EUR",
                  ship_to=(Address(id="A-1", region="north"), Address(id="A-2", region="south")))
PRODUCTS = {
    "BRG": Product(sku="BRG", name="Bearing", category="bearings", pack_multiple=Decimal(1)),
    "FIT": Product(sku="FIT", name="Fitting", category="fittings", pack_multiple=Decimal(10)),
}
PRICES = {"BRG": Decimal("8.1600"), "FIT": Decimal("2.5000")}


def make_order(*lines: tuple[str, int] | tuple[str, int, str], order_id: str = "o1", ship_to: str = "A-1") -> Order:
    built = []
    for i, line in enumerate(lines, start=1):
        shown = Decimal(line[2]) if len(line) > 2 else None  # type: ignore[misc]
        built.append(OrderLine(line_no=i, sku=line[0], quantity=Decimal(line[1]), unit_price_shown=shown))
    return Order(id=order_id, channel="portal", external_order_number=f"PO-{order_id}", account_id="C-1",
                 ship_to_id=ship_to, currency="EUR", lines=tuple(built))


def quotes(order: Order) -> list[PriceQuote]:
    return [PriceQuote(account_id="C-1", sku=x.sku or "", quantity=x.quantity, currency="EUR",
                       contract_unit_price=PRICES[x.sku or ""], unit_price=PRICES[x.sku or ""], as_of=AT)
            for x in sorted(order.lines, key=lambda x: x.line_no)]


def credit(available: int = 100_000) -> CreditStatus:
    return CreditStatus(limit=Decimal(available) + 500, exposure=Decimal(500), currency="EUR", as_of=AT)


def stock(**atp: int) -> list[StockPosition]:
    """``stock(BRG_N=5, BRG_S=100)``: available to promise per SKU and plant (initial of the plant)."""
    out = []
    for key, qty in atp.items():
        sku, plant = key.split("_")
        out.append(StockPosition(sku=sku, plant=f"PLANT-{plant}", on_hand=Decimal(qty), reserved=Decimal(0),
                                 available_to_promise=Decimal(qty), as_of=AT))
    return out


def plan_for(order: Order, *, available: int = 100_000, atp: list[StockPosition] | None = None) -> OrderPlan:
    """Every step of preparation, as the flow runs them (stopping where a step decides)."""
    plan = OrderPlan(erp="main")
    result = plan.validate(order, ACCOUNT, PRODUCTS, TODAY, max_days_ahead=365)
    if not result.ok:
        return plan
    plan.price(order, ACCOUNT, result.skus, PRODUCTS, quotes(order), (), TODAY)
    plan.check_shown_prices(order, Decimal("0.5"))
    if plan.decided:
        return plan
    plan.check_credit(credit(available))
    if plan.decided:
        return plan
    plan.allocate(order, PRODUCTS, atp if atp is not None else stock(BRG_N=1000, FIT_N=1000), PLANTS, TODAY, POLICY)
    return plan


def received(order: Order) -> OrderRecord:
    record = OrderRecord.receive(order, AT, "received")
    record.pending_events.clear()
    record.new_transitions.clear()
    return record


def prepared(order: Order, **kwargs: object) -> OrderRecord:
    record = received(order)
    record.apply_plan(plan_for(order, **kwargs), AT, CASES)  # type: ignore[arg-type]
    return record


def accepted(order: Order, **kwargs: object) -> OrderRecord:
    """Prepared, submitted and accepted by the ERP (one ERP order per plant)."""
    record = prepared(order, **kwargs)
    assert record.state in (OrderState.ALLOCATED, OrderState.BACKORDERED), record.state
    record.start_submission(AT)
    requests = record.erp_requests(credit_approved=False)
    answers = [SubmitResult(reference=q.reference, outcome=SubmitOutcome.ACCEPTED, erp_order_id=str(i),
                            erp_order_number=f"SO{i}") for i, q in enumerate(requests)]
    record.apply_results(record.allocations, answers, AT, CASES)
    assert record.state is OrderState.ACCEPTED
    record.pending_events.clear()
    record.new_transitions.clear()
    return record


def reference(order_id: str, plant: str) -> str:
    return order_reference(order_id, plant)
