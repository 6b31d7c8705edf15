"""Canonical model, version 1.

Money and quantities are :class:`~decimal.Decimal` (serialised as strings in JSON); timestamps are
timezone-aware UTC; identifiers are strings. Models are immutable: flows build new values instead of
mutating shared ones. Unknown fields are ignored on input so that a newer producer can talk to an older
consumer (forward compatibility); the schema export marks that with ``additionalProperties``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Qty = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
PositiveQty = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]
Amount = Annotated[Decimal, Field(max_digits=18, decimal_places=6)]
Code = Annotated[str, Field(min_length=1, max_length=120)]


class Canonical(BaseModel):
    """Base of every canonical model: frozen, ignores unknown fields, strips strings."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class Address(Canonical):
    """A postal address; ``region`` drives plant preference in allocation."""

    id: Code
    name: str = ""
    street: str = ""
    city: str = ""
    postal_code: str = ""
    region: str = ""
    country: str = ""


class AccountStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    INACTIVE = "inactive"


class CreditStatus(Canonical):
    """Credit as the ERP sees it: limit, current exposure and what is left."""

    limit: Amount
    exposure: Amount
    currency: Code
    as_of: dt.datetime

    @property
    def available(self) -> Decimal:
        return self.limit - self.exposure


class Account(Canonical):
    """A buying customer. ``erp`` names the ERP instance that is its system of record.

    ``tax_id`` is the customer's VAT / tax registration number as the ERP has it; ``payment_terms`` the
    name of its payment term in the ERP ("Net 30") and ``payment_terms_days`` the days after the invoice
    date the whole amount is due, when the term is that simple (else None)."""

    id: Code
    name: str
    erp: Code = "default"
    erp_ref: str = ""
    status: AccountStatus = AccountStatus.ACTIVE
    credit: CreditStatus | None = None
    price_list: str | None = None
    currency: Code = "USD"
    ship_to: tuple[Address, ...] = ()
    tax_exempt: bool = False
    tax_exemption_id: str | None = None
    tax_id: str | None = None
    payment_terms: str | None = None
    payment_terms_days: int | None = None


class CustomerPartNumber(Canonical):
    account_id: Code
    part_number: Code
    description: str = ""


class Product(Canonical):
    """A sellable item. Quantities ordered must be >= ``minimum_quantity`` and a multiple of
    ``pack_multiple``."""

    sku: Code
    name: str
    unit: Code = "unit"
    minimum_quantity: PositiveQty = Decimal(1)
    pack_multiple: PositiveQty = Decimal(1)
    customer_part_numbers: tuple[CustomerPartNumber, ...] = ()
    category: str = ""
    list_price: Amount | None = None
    currency: Code = "USD"
    active: bool = True


class PriceAdjustment(Canonical):
    """One channel or promotional rule applied on top of the ERP contract price."""

    rule: Code
    description: str = ""
    unit_amount: Amount


class PriceQuote(Canonical):
    """The price of ``quantity`` of ``sku`` for an account: ERP contract price plus adjustments."""

    account_id: Code
    sku: Code
    quantity: PositiveQty
    currency: Code
    contract_unit_price: Amount
    adjustments: tuple[PriceAdjustment, ...] = ()
    unit_price: Amount
    source: str = "erp_contract"
    as_of: dt.datetime
    valid_until: dt.datetime | None = None


class StockPosition(Canonical):
    """Stock of one SKU at one plant. ``available_to_promise`` is what new orders may take."""

    sku: Code
    plant: Code
    on_hand: Amount
    reserved: Amount
    available_to_promise: Amount
    as_of: dt.datetime
    replenishment_date: dt.date | None = None


class OrderState(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    PRICED = "priced"
    ON_HOLD = "on_hold"
    ALLOCATED = "allocated"
    BACKORDERED = "backordered"
    SUBMITTED_TO_ERP = "submitted_to_erp"
    ACCEPTED = "accepted"
    IN_FULFILLMENT = "in_fulfillment"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class OrderLine(Canonical):
    """A line as the channel sent it. Either ``sku`` or ``customer_part_number`` identifies the item."""

    line_no: Annotated[int, Field(ge=1)]
    sku: str | None = None
    customer_part_number: str | None = None
    quantity: PositiveQty
    unit: str | None = None
    unit_price_shown: Amount | None = None
    requested_date: dt.date | None = None


class Order(Canonical):
    """An order as received from a channel, keyed by (channel, external_order_number)."""

    id: Code
    channel: Code
    external_order_number: Code
    account_id: Code
    buyer_po_number: str | None = None
    ship_to_id: str | None = None
    requested_date: dt.date | None = None
    currency: str | None = None
    lines: Annotated[tuple[OrderLine, ...], Field(min_length=1, max_length=500)]
    placed_at: dt.datetime | None = None
    notes: str = ""
    campaign: str | None = None


class Allocation(Canonical):
    """How much of an order line a plant will ship and when; ``backorder`` marks quantity that
    waits for stock."""

    order_id: Code
    line_no: Annotated[int, Field(ge=1)]
    sku: Code
    plant: Code
    quantity: PositiveQty
    promised_date: dt.date
    backorder: bool = False


class ShipmentState(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    CANCELLED = "cancelled"


class ShipmentLine(Canonical):
    line_no: Annotated[int, Field(ge=1)]
    sku: Code
    quantity: Qty


class Shipment(Canonical):
    id: Code
    order_id: Code
    plant: str = ""
    erp_ref: str = ""
    state: ShipmentState
    carrier: str | None = None
    tracking_number: str | None = None
    lines: tuple[ShipmentLine, ...] = ()
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None


class InvoiceState(StrEnum):
    DRAFT = "draft"
    POSTED = "posted"
    PAID = "paid"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"


class InvoiceLine(Canonical):
    line_no: Annotated[int, Field(ge=1)]
    sku: Code
    quantity: Qty
    unit_price: Amount
    amount: Amount


class Invoice(Canonical):
    id: Code
    order_id: Code
    account_id: Code
    number: str = ""
    erp_ref: str = ""
    state: InvoiceState
    currency: Code
    untaxed_amount: Amount
    tax_amount: Amount
    total_amount: Amount
    due_date: dt.date | None = None
    posted_at: dt.datetime | None = None
    lines: tuple[InvoiceLine, ...] = ()
    open_amount: Amount | None = None  # still to pay (after part payments); None: the ERP did not say


class ReturnState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RECEIVED = "received"
    CREDITED = "credited"


class ReturnLine(Canonical):
    line_no: Annotated[int, Field(ge=1)]
    quantity: PositiveQty
    reason: str = ""


class ReturnAuthorization(Canonical):
    id: Code
    order_id: Code
    account_id: Code
    state: ReturnState = ReturnState.REQUESTED
    lines: Annotated[tuple[ReturnLine, ...], Field(min_length=1)]
    erp_ref: str = ""  # the ERP return reference(s), one per plant
    requested_at: dt.datetime | None = None
    erp_number: str = ""  # the ERP's own return number(s)
    refusal_reason: str = ""


class CaseType(StrEnum):
    CREDIT_HOLD = "credit_hold"
    ALLOCATION_SHORTFALL = "allocation_shortfall"
    PRICE_MISMATCH = "price_mismatch"
    FULFILLMENT_DISCREPANCY = "fulfillment_discrepancy"
    INVOICE_DISPUTE = "invoice_dispute"
    INTEGRATION_FAILURE = "integration_failure"
    ORDER_CONFLICT = "order_conflict"
    ERP_DISCREPANCY = "erp_discrepancy"  # reconciliation: the hub and the ERP (or a channel) disagree


class CaseState(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class CaseEntry(Canonical):
    at: dt.datetime
    actor: str
    action: str
    comment: str = ""


class ExceptionCase(Canonical):
    """A business exception with an owner, a next action and a due time."""

    id: Code
    type: CaseType
    state: CaseState = CaseState.OPEN
    order_id: str | None = None
    account_id: str | None = None
    owner_team: Code
    owner_level: Annotated[int, Field(ge=1)] = 1
    summary: str
    next_action: str = ""
    runbook: str = ""
    due_at: dt.datetime | None = None
    opened_at: dt.datetime
    resolved_at: dt.datetime | None = None
    dead_letter_id: str | None = None
    history: tuple[CaseEntry, ...] = ()


#: Every model whose JSON Schema is published for this version, by name.
PUBLISHED: dict[str, type[Canonical]] = {
    "Address": Address,
    "Account": Account,
    "Product": Product,
    "PriceQuote": PriceQuote,
    "StockPosition": StockPosition,
    "Order": Order,
    "OrderLine": OrderLine,
    "Allocation": Allocation,
    "Shipment": Shipment,
    "Invoice": Invoice,
    "ReturnAuthorization": ReturnAuthorization,
    "ExceptionCase": ExceptionCase,
}
