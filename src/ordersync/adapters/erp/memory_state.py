"""The records of the in-memory ERP twin: Tryton's model reduced to what the hub can observe.

Sales with lines, stock moves grouped into customer shipments, invoices, price lists, stock on hand;
every record keeps a ``stamp`` (its write time) for change polling, as Tryton's ``write_date`` does.
Seeded from a :mod:`~ordersync.devkit.demo_data` profile, exactly as ``provision.py``
seeds Tryton. Not thread-safe by itself: :class:`~ordersync.adapters.erp.memory.MemoryErp` locks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.adapters.erp.erp_common import EPOCH, UNLIMITED_CREDIT
from ordersync.devkit import demo_data

ZERO = Decimal(0)


@dataclass
class MLine:
    id: int
    seq: int
    sku: str
    quantity: Decimal
    unit_price: Decimal


@dataclass
class MSale:
    id: int
    reference: str
    party: str
    plant: str
    currency: str
    ship_to: str
    po: str | None
    shipping_date: dt.date | None
    lines: list[MLine]
    stamp: dt.datetime
    state: str = "draft"
    number: str | None = None
    sale_date: dt.date | None = None
    origin: int | None = None  # a return: the sale whose goods come back (Tryton's ``origin``)

    @property
    def amount(self) -> Decimal:
        return sum((ln.quantity * ln.unit_price for ln in self.lines), ZERO)

    def line(self, seq: int) -> MLine | None:
        return next((ln for ln in self.lines if ln.seq == seq), None)


@dataclass
class MMove:
    id: int
    sale_id: int
    line_id: int
    sku: str
    plant: str
    quantity: Decimal
    shipment_id: int
    planned_date: dt.date
    state: str = "draft"  # draft | done | cancelled (assignment is not observable through the port)
    effective_date: dt.date | None = None
    ignored: bool = False  # cancelled and ignored by the sale (Tryton's ``moves_ignored``): not shipped again


@dataclass
class MShipment:
    id: int
    number: str
    sale_id: int
    plant: str
    planned_date: dt.date
    stamp: dt.datetime
    state: str = "waiting"
    effective_date: dt.date | None = None
    carrier: str | None = None  # the carrier party's name and its tracking number, set when it ships
    tracking: str | None = None


@dataclass
class MReturnShipment:
    """A customer return shipment (``stock.shipment.out.return``): goods of a return sale coming back;
    ``lines`` are (sale line id, sku, quantity)."""

    id: int
    number: str
    sale_id: int
    plant: str
    lines: list[tuple[int, str, Decimal]]
    stamp: dt.datetime
    state: str = "draft"  # draft | received | done | cancelled
    effective_date: dt.date | None = None


@dataclass
class MInvoiceLine:
    line_id: int
    seq: int
    sku: str
    quantity: Decimal
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(Decimal("0.01"))


@dataclass
class MInvoice:
    id: int
    sale_id: int
    party: str
    lines: list[MInvoiceLine]
    stamp: dt.datetime
    state: str = "draft"
    number: str = ""
    invoice_date: dt.date | None = None
    due_date: dt.date | None = None
    paid: Decimal = ZERO  # payments received so far (Tryton: the reconciled part of its lines to pay)

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), ZERO)

    @property
    def to_pay(self) -> Decimal | None:
        """Tryton's ``amount_to_pay``: what is still owed once posted (None before)."""
        if self.state == "cancelled":
            return ZERO
        return max(self.total - self.paid, ZERO) if self.state in ("posted", "paid") else None


@dataclass
class MPriceList:
    id: int
    name: str
    rules: list[demo_data.PriceListLine]
    stamp: dt.datetime


@dataclass
class MCustomer:
    code: str
    name: str
    active: bool
    credit_limit: Decimal | None
    payment_days: int
    price_list: int
    part_numbers: list[demo_data.PartNumber]
    addresses: list[demo_data.Address]
    payment_term: str = ""  # its name
    tax_id: str | None = None


class Signals:
    """The twin's change signals (its push): a generation bumped by every write, and waiters on it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.generation = 0

    def bump(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()


@dataclass
class ErpState:
    """Everything the twin knows, with the id counters and the clock of its stamps."""

    profile: demo_data.Profile
    clock: Callable[[], dt.datetime]
    currency: str = ""
    products: dict[str, demo_data.Product] = field(default_factory=dict)
    customers: dict[str, MCustomer] = field(default_factory=dict)
    price_lists: dict[int, MPriceList] = field(default_factory=dict)
    plants: dict[str, demo_data.Warehouse] = field(default_factory=dict)
    carriers: dict[str, demo_data.Carrier] = field(default_factory=dict)  # by party name
    on_hand: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    stock_stamps: dict[str, dt.datetime] = field(default_factory=dict)
    sales: dict[int, MSale] = field(default_factory=dict)
    moves: dict[int, MMove] = field(default_factory=dict)
    shipments: dict[int, MShipment] = field(default_factory=dict)
    invoices: dict[int, MInvoice] = field(default_factory=dict)
    return_shipments: dict[int, MReturnShipment] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    sale_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    shipment_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    invoice_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    signals: Signals = field(default_factory=Signals)
    _last_stamp: dt.datetime = EPOCH

    # -- time ------------------------------------------------------------------------------------------
    def tick(self) -> dt.datetime:
        """A write time: the clock, but strictly after the previous one (versions must differ)."""
        now = self.clock()
        self._last_stamp = max(now, self._last_stamp + dt.timedelta(microseconds=1))
        self.signals.bump()
        return self._last_stamp

    def today(self) -> dt.date:
        return self.clock().date()

    # -- seeding ---------------------------------------------------------------------------------------
    @classmethod
    def seeded(cls, profile: demo_data.Profile, clock: Callable[[], dt.datetime]) -> ErpState:
        state = cls(profile=profile, clock=clock, currency=profile["company"]["currency"])
        stamp = state.tick()
        state.plants = {w["code"]: w for w in profile["warehouses"]}
        state.carriers = {c["name"]: c for c in demo_data.CARRIERS}
        state.products = {p["sku"]: p for p in profile["products"]}
        terms = {t["name"]: t["days"] for t in profile["payment_terms"]}
        for cust in profile["customers"]:
            price_list = MPriceList(
                next(state.ids), f"Contract {cust['code']} {cust['name']}", list(cust["price_list"]), stamp
            )
            state.price_lists[price_list.id] = price_list
            state.customers[cust["code"]] = MCustomer(
                cust["code"],
                cust["name"],
                cust["active"],
                Decimal(cust["credit_limit"]),
                terms[cust["payment_term"]],
                price_list.id,
                list(cust["part_numbers"]),
                list(cust["addresses"]),
                payment_term=cust["payment_term"],
                tax_id=cust["tax_id"],
            )
        for prod in profile["products"]:
            for plant in state.plants:
                state.on_hand[(prod["sku"], plant)] = Decimal(prod["stock"].get(plant, 0))
            state.stock_stamps[prod["sku"]] = stamp
        return state

    # -- queries ---------------------------------------------------------------------------------------
    def customer(self, code: str) -> MCustomer | None:
        return self.customers.get(code)

    def price(self, code: str, sku: str, quantity: Decimal) -> Decimal | None:
        """The customer's contract price (their price list, first matching line)."""
        customer = self.customers[code]
        return demo_data.price_from_rules(self.price_lists[customer.price_list].rules, self.products[sku], quantity)

    def pending_moves(self, sku: str, plant: str) -> Decimal:
        return sum(
            (m.quantity for m in self.moves.values() if m.sku == sku and m.plant == plant and m.state == "draft"), ZERO
        )

    def forecast(self, sku: str, plant: str) -> Decimal:
        """Tryton's ``forecast_quantity`` at a warehouse: on hand minus the moves still to go out."""
        return self.on_hand.get((sku, plant), ZERO) - self.pending_moves(sku, plant)

    def available_for(self, sale: MSale) -> dict[str, Decimal]:
        """What trytond-sale-stock-quantity lets ``sale`` take per SKU: the forecast minus the lines of
        other sales in quotation or confirmed state (held quotations reserve stock too)."""
        out = {}
        for sku in {ln.sku for ln in sale.lines}:
            competing = sum(
                (
                    ln.quantity
                    for other in self.sales.values()
                    if other.id != sale.id and other.state in ("quotation", "confirmed") and other.plant == sale.plant
                    for ln in other.lines
                    if ln.sku == sku and ln.quantity > 0
                ),
                ZERO,
            )
            out[sku] = self.forecast(sku, sale.plant) - competing
        return out

    def invoiced(self, line: MLine, *, posted_only: bool) -> Decimal:
        states = ("posted", "paid") if posted_only else ("draft", "posted", "paid")
        return sum(
            (
                il.quantity
                for inv in self.invoices.values()
                if inv.state in states
                for il in inv.lines
                if il.line_id == line.id
            ),
            ZERO,
        )

    def exposure(self, code: str) -> Decimal:
        """Tryton's ``credit_amount``: posted unpaid invoices plus confirmed sales not invoiced yet."""
        receivable = sum(
            (inv.total for inv in self.invoices.values() if inv.party == code and inv.state == "posted"), ZERO
        )
        open_sales = ZERO
        for sale in self.sales.values():
            if sale.party != code or sale.state not in ("confirmed", "processing"):
                continue
            for line in sale.lines:
                left = line.quantity - self.invoiced(line, posted_only=True)
                if line.quantity > 0 and left > 0:
                    open_sales += left * line.unit_price
        return (receivable + open_sales).quantize(Decimal("0.01"))

    def credit_limit(self, code: str) -> Decimal:
        limit = self.customers[code].credit_limit
        return UNLIMITED_CREDIT if limit is None else limit

    def sales_of(self, reference: str) -> list[MSale]:
        return [s for s in self.sales.values() if s.reference == reference]

    def line_date(self, sale: MSale, line: MLine) -> dt.date | None:
        """Tryton's ``sale.line.shipping_date``: the earliest date of its moves, else the planned one."""
        dates = [
            m.effective_date or m.planned_date
            for m in self.moves.values()
            if m.line_id == line.id and m.state != "cancelled"
        ]
        if dates:
            return min(dates)
        if line.quantity <= 0:
            return None
        return max(sale.sale_date or self.today(), sale.shipping_date or self.today())

    def quantity_problem(self, sku: str, quantity: Decimal) -> str | None:
        """trytond-sale-product-quantity's check of a draft line (the message names the SKU)."""
        prod = self.products[sku]
        minimum, pack = prod.get("minimum_quantity"), prod.get("pack_multiple")
        if minimum is not None and quantity < minimum:
            return f"The quantity {quantity} of line [{sku}] is too small, you must set at least {minimum}."
        if pack is not None and quantity % pack:
            return f"The quantity {quantity} of line [{sku}] is not a multiple of {pack}."
        return None
