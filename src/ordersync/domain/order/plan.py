"""Preparing an order for its ERP: validate, price, check the price shown and the credit, allocate.

Each step is a rule over what the flow asked the ERP (account, assortment, contract prices, credit,
stock, plants); the flow asks between the steps so that an order stopped early costs no further ERP
calls. The result, an :class:`OrderPlan`, is exactly one of: rejected (reasons), held (a hold request
for a person), or allocated; :meth:`ordersync.domain.order.OrderRecord.apply_plan` records it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.canonical.erp import Plant
from ordersync.canonical.v1 import (
    Account,
    Allocation,
    CaseType,
    CreditStatus,
    Order,
    OrderState,
    PriceQuote,
    Product,
    StockPosition,
)
from ordersync.domain.allocation import AllocationPolicy, LineDemand, PlantInfo, allocate, is_backordered
from ordersync.domain.order.parts import CreditCheck, PricedLine
from ordersync.domain.pricing import ChannelRule, apply_rules, mismatch
from ordersync.domain.validation import Reason, ValidationResult, validate_order


@dataclass(frozen=True)
class HoldRequest:
    """A hold the plan asks for: the case type, what a person reads, and what they can do."""

    type: CaseType
    summary: str
    next_action: str


@dataclass
class OrderPlan:
    """What preparing the order decided (see the module docstring). ``reached`` is the furthest state
    the plan got to; ``credit`` the ERP's credit figures when they were read."""

    erp: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    lines: list[PricedLine] = field(default_factory=list)
    hold: HoldRequest | None = None
    allocations: list[Allocation] = field(default_factory=list)
    ship_to_region: str | None = None
    credit: CreditCheck | None = None
    reached: OrderState = OrderState.RECEIVED

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def decided(self) -> bool:
        """Rejected or held: the steps after this one are not taken (and their ERP calls not made)."""
        return bool(self.reasons) or self.hold is not None

    # -- the steps --------------------------------------------------------------------------------------

    def unknown_account(self, account_id: str) -> None:
        self.reasons.append(Reason("unknown_account", f"account {account_id} is not known"))

    def validate(self, order: Order, account: Account | None, products: Mapping[str, Product], today: dt.date, *,
                 max_days_ahead: int) -> ValidationResult:
        """Account, ship-to, date and every line against the assortment; a failure rejects the order."""
        result = validate_order(order, account, dict(products), today, max_days_ahead=max_days_ahead)
        self.reasons = list(result.reasons)
        if result.ok:
            self.reached = OrderState.VALIDATED
        return result

    def price(self, order: Order, account: Account, skus: Mapping[int, str], products: Mapping[str, Product],
              quotes: Sequence[PriceQuote], rules: Sequence[ChannelRule], today: dt.date) -> None:
        """The ERP contract price of every line (``quotes``, in line order) with the channel rules on top."""
        self.ship_to_region = ship_to_region(account, order.ship_to_id)
        lines = sorted(order.lines, key=lambda x: x.line_no)
        for line, quote in zip(lines, quotes, strict=True):
            sku = skus[line.line_no]
            category = products[sku].category
            unit_price, adjustments = apply_rules(
                quote.unit_price, list(rules), channel=order.channel, campaign=order.campaign, sku=sku,
                category=category, account_id=order.account_id, on=today)
            self.lines.append(PricedLine(line_no=line.line_no, sku=sku, quantity=line.quantity,
                                         contract_unit_price=quote.unit_price, unit_price=unit_price,
                                         category=category, adjustments=adjustments))
        self.reached = OrderState.PRICED

    def check_shown_prices(self, order: Order, tolerance_percent: Decimal) -> None:
        """A price the channel showed that differs from ours by more than the tolerance holds the order
        for commerce."""
        shown = {line.line_no: line.unit_price_shown for line in order.lines}
        bad = [line for line in self.lines if mismatch(shown.get(line.line_no), line.unit_price, tolerance_percent)]
        if bad:
            detail = ", ".join(f"line {x.line_no}: shown {shown[x.line_no]}, ours {x.unit_price}" for x in bad)
            self.hold = HoldRequest(CaseType.PRICE_MISMATCH, f"Price shown by {order.channel} differs: {detail}",
                                    "accept the ERP price, honour the shown price, or cancel")

    def honor_shown_prices(self, order: Order) -> None:
        """A person decided that the prices the channel showed stand (lines without one keep ours)."""
        shown = {x.line_no: x.unit_price_shown for x in order.lines}
        honored = []
        for line in self.lines:
            price = shown.get(line.line_no) or line.unit_price
            honored.append(line if price == line.unit_price else
                           line.model_copy(update={"unit_price": price, "adjustments": ()}))
        self.lines = honored

    def check_credit(self, credit: CreditStatus) -> None:
        """An order over the account's available credit is held for finance."""
        self.credit = CreditCheck(limit=credit.limit, exposure=credit.exposure, available=credit.available,
                                  as_of=credit.as_of)
        if self.total > credit.available:
            self.hold = HoldRequest(
                CaseType.CREDIT_HOLD,
                f"Order total {self.total} {credit.currency} exceeds available credit {credit.available} "
                f"(limit {credit.limit}, exposure {credit.exposure})",
                "release the hold or cancel the order")

    def allocate(self, order: Order, products: Mapping[str, Product], positions: Sequence[StockPosition],
                 plants: Sequence[Plant], today: dt.date, policy: AllocationPolicy) -> None:
        """Which plant ships how much of each line, and when (:func:`ordersync.domain.allocation.allocate`)."""
        atp = {(p.sku, p.plant): p.available_to_promise for p in positions}
        requested = {line.line_no: line.requested_date or order.requested_date for line in order.lines}
        demands = [LineDemand(line.line_no, line.sku, line.quantity, products[line.sku].pack_multiple,
                              requested[line.line_no]) for line in self.lines]
        self.allocations = allocate(order.id, demands, atp, [PlantInfo(p.code, p.region) for p in plants],
                                    self.ship_to_region, today, policy)
        self.reached = OrderState.BACKORDERED if is_backordered(self.allocations) else OrderState.ALLOCATED


def ship_to_region(account: Account, ship_to_id: str | None) -> str | None:
    """The region of the order's ship-to address (the account's first address without one)."""
    for address in account.ship_to:
        if address.id == ship_to_id:
            return address.region or None
    return account.ship_to[0].region if account.ship_to else None
