"""The typed parts of an order inside the hub: what the hub decided and learned about it, beside the
canonical order as the channel sent it.

Every part is immutable (a decision replaces a part, it never edits one in place); the order aggregate
(:mod:`ordersync.domain.order.aggregate`) holds them and its methods decide. Stored as one JSON document
per order (the ``data`` column, :data:`DATA_SHAPE`), migrated by Alembic when the shape changes.

Money and quantities are :class:`~decimal.Decimal`, times timezone-aware UTC, dates plain dates.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ordersync.canonical.erp import SubmitOutcome, parse_reference
from ordersync.canonical.v1 import Allocation, CaseType, OrderState, PriceAdjustment
from ordersync.domain.events import AmendedLine
from ordersync.domain.validation import Reason

#: the version of the stored layout of an order's parts (migration 0013 wrote version 2)
DATA_SHAPE = 2
CENTS = Decimal("0.01")


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def amount(unit_price: Decimal, quantity: Decimal) -> Decimal:
    """A line amount: unit price times quantity, to the cent (half up, like the ERP)."""
    return (unit_price * quantity).quantize(CENTS, ROUND_HALF_UP)


class PricedLine(Part):
    """An order line as the hub priced it: the SKU it resolved, the ERP contract price, the price after
    channel rules (and the rules that made it), the quantity as it stands (amendments change it; a
    cancelled line stands at 0)."""

    line_no: int
    sku: str
    quantity: Decimal
    contract_unit_price: Decimal
    unit_price: Decimal
    category: str = ""
    adjustments: tuple[PriceAdjustment, ...] = ()
    requested_date: dt.date | None = None  # a date the buyer amended
    cancelled: bool = False

    @property
    def amount(self) -> Decimal:
        return amount(self.unit_price, self.quantity)


class CreditCheck(Part):
    """The account's credit as the ERP reported it when the order was checked."""

    limit: Decimal
    exposure: Decimal
    available: Decimal
    as_of: dt.datetime


class Hold(Part):
    """What holds the order: the case a person decides, and the state the hold interrupted (a release
    resumes there)."""

    case_id: str
    type: CaseType
    reason: str
    interrupted: OrderState


class ErpSubmission(Part):
    """What the ERP answered for one of the order's ERP sales orders (one per plant)."""

    reference: str
    outcome: SubmitOutcome
    number: str | None = None
    id: str | None = None
    message: str = ""
    reconciled: bool = False  # an existing ERP order was found (a retry or crash recovery)

    @property
    def plant(self) -> str:
        parsed = parse_reference(self.reference)
        return parsed[1] if parsed else ""


class InvoiceClock(Part):
    """When one invoice was posted in the ERP and when the hub made it visible to the buyer (the
    invoice-sync SLA clock of that invoice); set once, when the invoice is first seen posted."""

    number: str | None = None
    posted_at: dt.datetime | None = None
    visible_at: dt.datetime | None = None


class FulfillmentTimes(Part):
    """The order's fulfillment and invoicing SLA timestamps, each set once and never moved (see
    :mod:`ordersync.flows.handlers.fulfillment`)."""

    in_fulfillment_at: dt.datetime | None = None
    first_shipped_at: dt.datetime | None = None
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    invoice_posted_at: dt.datetime | None = None
    invoice_visible_at: dt.datetime | None = None
    invoiced_at: dt.datetime | None = None
    invoices: dict[str, InvoiceClock] = Field(default_factory=dict)  # by "<erp>:<invoice id>"

    def times(self) -> dict[str, dt.datetime | None]:
        """The timestamps by name (without the per-invoice clocks)."""
        return {name: getattr(self, name) for name in SLA_TIMES}


#: the order-level SLA timestamps, in the order they are reached
SLA_TIMES = ("in_fulfillment_at", "first_shipped_at", "shipped_at", "delivered_at", "invoice_posted_at",
             "invoice_visible_at", "invoiced_at")


class BackorderRevision(Part):
    """The ERP moved the date of a backordered line."""

    at: dt.datetime
    line_no: int
    plant: str
    previous: dt.date
    revised: dt.date


class BackorderWatch(Part):
    """What the hub follows about backordered lines after the ERP accepted them, keyed ``plant:line``:
    the ERP's date as last seen, the revisions the buyer was told of, and the promised dates already
    flagged as passed (each once)."""

    erp_promised: dict[str, dt.date] = Field(default_factory=dict)
    revisions: tuple[BackorderRevision, ...] = ()
    overdue: dict[str, dt.date] = Field(default_factory=dict)


class AmendmentEntry(Part):
    """One amendment as recorded: who asked, what the ERP applied and what it refused."""

    at: dt.datetime
    actor: str
    applied: tuple[AmendedLine, ...] = ()
    refused: tuple[AmendedLine, ...] = ()


def watch_key(plant: str, line_no: int) -> str:
    return f"{plant}:{line_no}"


class OrderParts(BaseModel):
    """Everything the hub decided and learned about an order, beside the order itself (the aggregate,
    :class:`~ordersync.domain.order.OrderRecord`, adds the order, its state and the decisions)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    erp: str | None = None  # the ERP of record of the order's account
    ship_to_region: str | None = None
    lines: tuple[PricedLine, ...] = ()
    credit: CreditCheck | None = None
    credit_approved: bool = False  # a person released a credit hold: the ERP's credit warning is acknowledged
    hold: Hold | None = None
    allocations: tuple[Allocation, ...] = ()
    erp_orders: tuple[ErpSubmission, ...] = ()
    rejection: tuple[Reason, ...] = ()
    fulfillment: FulfillmentTimes = Field(default_factory=FulfillmentTimes)  # (a default instance would be
    backorders: BackorderWatch = Field(default_factory=BackorderWatch)  # deep-copied for every order loaded)
    amendments: tuple[AmendmentEntry, ...] = ()

    @property
    def total(self) -> Decimal | None:
        """The sum of the line amounts as they stand (None before the order is priced)."""
        return sum((line.amount for line in self.lines), Decimal(0)) if self.lines else None

    @property
    def is_backordered(self) -> bool:
        return any(a.backorder for a in self.allocations)


# -- the stored document ----------------------------------------------------------------------------------

#: the fields stored in an order's ``data`` document (the order, its state and version have columns)
PART_FIELDS: set[str] = set(OrderParts.model_fields)
_SHAPE_PREFIX = f'{{"shape":{DATA_SHAPE}'


def dump_parts(parts: OrderParts) -> str:
    """An order's parts as its stored JSON document (fields at their defaults are left out)."""
    if not parts.model_fields_set & PART_FIELDS:  # nothing decided yet: every order at intake
        return _SHAPE_PREFIX + "}"
    body = parts.model_dump_json(include=PART_FIELDS, exclude_defaults=True)
    return _SHAPE_PREFIX + ("}" if body == "{}" else "," + body[1:])


def load_parts(data: str) -> OrderParts:
    """Only the parts of a stored order (the read side shows them without the aggregate)."""
    rest = without_shape(data)
    if rest is not None:
        return OrderParts.model_validate_json("{" + rest.removeprefix(","))
    return OrderParts.model_validate(stored_parts(data, "?"))


def without_shape(data: str) -> str | None:
    """The document after its shape marker (``}`` or ``,...}``) when it is this code's shape as written by
    :func:`dump_parts` or the migration, else None (then :func:`stored_parts` says what it is)."""
    return data[len(_SHAPE_PREFIX):] if data.startswith(_SHAPE_PREFIX) and data[len(_SHAPE_PREFIX)] in ",}" \
        else None


def stored_parts(data: str, order_id: str) -> dict[str, Any]:
    """The fields of a stored document; one of another shape is refused (migrations convert)."""
    parts: dict[str, Any] = json.loads(data)
    shape = parts.pop("shape", None)
    if shape != DATA_SHAPE:
        raise ValueError(f"order {order_id}: stored parts have shape {shape!r}, this code reads shape {DATA_SHAPE} "
                         "(run `ordersync init` to migrate the store)")
    return parts
