"""The order's way to its ERP: preparing it (validate, price, check the price shown and the credit,
allocate) and submitting it (one ERP sales order per plant, and what happens when the ERP finds less
stock than was allocated).

**Preparation.** Each step is a rule over what the flow asked the ERP (account, assortment, contract
prices, credit, stock, plants); the flow asks between the steps so that an order stopped early costs no
further ERP calls. The result, an :class:`OrderPlan`, is exactly one of: rejected (reasons), held (a hold
request for a person), or allocated; :meth:`ordersync.domain.order.OrderRecord.apply_plan` records it.

**Submission.** :func:`erp_requests` turns the order's allocations into one ERP sales order per plant (one
ERP line per order line and plant). When the ERP answers ``stock_shortfall`` (other orders took the
stock meanwhile), :class:`Submission` backorders the difference at the same plant and sends the short
sales again, up to :data:`SHORTFALL_ROUNDS` times; a shortfall the ERP reports without a quantity the hub
can move is accepted as it stands (the ERP ships what it lacks later) rather than rejecting the order.
The flow makes the ERP calls; this module decides what each round sends.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from ordersync.canonical.erp import (
    Plant,
    SalesOrderLine,
    SalesOrderRequest,
    SubmitOutcome,
    SubmitResult,
    order_reference,
)
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

if TYPE_CHECKING:
    from ordersync.domain.order.aggregate import OrderRecord


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


# -- submission ---------------------------------------------------------------------------------------------

#: how often a submission that the ERP finds short of stock is backordered and sent again
SHORTFALL_ROUNDS = 3


def erp_requests(record: OrderRecord, allocations: Sequence[Allocation], credit_approved: bool
                 ) -> list[SalesOrderRequest]:
    """One request per plant; one ERP line per order line and plant, at the line's price."""
    by_plant: dict[str, dict[int, list[Allocation]]] = defaultdict(lambda: defaultdict(list))
    for a in allocations:
        by_plant[a.plant][a.line_no].append(a)
    prices = {line.line_no: line.unit_price for line in record.lines}
    out = []
    for plant in sorted(by_plant):
        order_lines = []
        for line_no, parts in sorted(by_plant[plant].items()):
            order_lines.append(SalesOrderLine(
                line_no=line_no, sku=parts[0].sku, quantity=sum((p.quantity for p in parts), Decimal(0)),
                unit_price=prices[line_no], promised_date=max(p.promised_date for p in parts)))
        order = record.order
        out.append(SalesOrderRequest(
            reference=order_reference(record.id, plant), order_id=record.id, account_id=order.account_id,
            plant=plant, currency=order.currency or "", lines=tuple(order_lines), ship_to_id=order.ship_to_id,
            buyer_po_number=order.buyer_po_number,
            accept_shortfall=any(p.backorder for parts in by_plant[plant].values() for p in parts),
            credit_approved=credit_approved))
    return out


def backorder_shortfalls(allocations: Sequence[Allocation], results: Sequence[SubmitResult], later: dt.date
                         ) -> list[Allocation]:
    """Turn the quantity the ERP cannot ship now into backorders at the same plant, promised by ``later``
    at the earliest."""
    missing: dict[tuple[str, str], Decimal] = {}
    for r in results:
        for s in r.shortfalls:
            key = (s.sku, s.plant)
            missing[key] = missing.get(key, Decimal(0)) + max(Decimal(0), s.requested - s.available)
    out: list[Allocation] = []
    for a in allocations:
        gap = missing.get((a.sku, a.plant), Decimal(0))
        if a.backorder or gap <= 0:
            out.append(a)
            continue
        moved = min(gap, a.quantity)
        missing[(a.sku, a.plant)] = gap - moved
        if a.quantity - moved > 0:
            out.append(a.model_copy(update={"quantity": a.quantity - moved}))
        out.append(a.model_copy(update={"quantity": moved, "backorder": True,
                                        "promised_date": max(a.promised_date, later)}))
    return out


class Submission:
    """The rounds of one submission: :meth:`requests` says what to send, :meth:`answered` takes what the
    ERP said; ``allocations`` and ``results`` are what the order records afterwards."""

    def __init__(self, record: OrderRecord, *, credit_approved: bool, backorder_by: dt.date) -> None:
        self.record = record
        self.credit_approved = credit_approved
        self.backorder_by = backorder_by
        self.allocations: list[Allocation] = list(record.allocations)
        self.results: list[SubmitResult] = []
        self.rounds = 0
        self._next: list[SalesOrderRequest] | None = erp_requests(record, self.allocations, credit_approved)

    def requests(self) -> list[SalesOrderRequest]:
        """What to send next; empty when the submission is done."""
        return self._next or []

    def answered(self, answers: Sequence[SubmitResult]) -> None:
        """The ERP's answers to :meth:`requests`; decides the next round (a shortfall to backorder)."""
        if not self.results:
            self.results = list(answers)
        else:
            again = {x.reference: x for x in answers}
            self.results = [again.get(r.reference, r) for r in self.results]
        self._next = self._shortfall_round()

    def _shortfall_round(self) -> list[SalesOrderRequest] | None:
        short = [r for r in self.results if r.outcome is SubmitOutcome.STOCK_SHORTFALL]
        if not short or self.rounds >= SHORTFALL_ROUNDS:
            return None
        self.rounds += 1
        moved = backorder_shortfalls(self.allocations, short, self.backorder_by)
        retry = {r.reference for r in short}
        requests = [q for q in erp_requests(self.record, moved, self.credit_approved) if q.reference in retry]
        if moved == self.allocations:  # short, but by nothing we can name (the figures moved again): the
            # ERP takes the order as it stands and ships what it lacks later
            requests = [q.model_copy(update={"accept_shortfall": True}) for q in requests]
        self.allocations = moved
        return requests
