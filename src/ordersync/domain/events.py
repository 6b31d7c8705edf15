"""Domain events (past tense) and commands (imperative). Both are immutable. Every message type of the
hub is declared here, the one catalogue of what travels on the bus (about 400 lines of declarations).

Each message class names its wire ``TYPE`` and schema ``VERSION``; :data:`MESSAGE_TYPES` is the
registry the messaging layer uses to validate payloads (an unknown type or a payload that does not fit
its model is dead-lettered with the reason).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ordersync.canonical.v1 import (
    Allocation,
    CaseType,
    ExceptionCase,
    Invoice,
    Order,
    OrderState,
    ReturnAuthorization,
    ReturnState,
    Shipment,
    StockPosition,
)


class Message(BaseModel):
    """Base of events and commands."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Event(Message):
    """Something that happened."""


class Command(Message):
    """Something somebody asks the hub to do."""


class OrderReceived(Event):
    TYPE = "order.received"
    order: Order
    delivery_id: str | None = None


class OrderStateChanged(Event):
    TYPE = "order.state_changed"
    order_id: str
    channel: str
    account_id: str
    from_state: OrderState | None
    to_state: OrderState
    cause: str
    at: dt.datetime


class DuplicateOrderReceived(Event):
    """The same business key arrived again; it collapsed onto the existing order."""

    TYPE = "order.duplicate_received"
    order_id: str
    channel: str
    external_order_number: str
    delivery_id: str | None = None


class ErpShipmentChanged(Event):
    """A shipment of an ERP order changed state (detected by polling the ERP)."""

    TYPE = "erp.shipment_changed"
    erp: str
    reference: str | None
    order_id: str | None
    shipment: Shipment


class ErpInvoicePosted(Event):
    """An invoice for an ERP order was posted (or paid) in the ERP."""

    TYPE = "erp.invoice_posted"
    erp: str
    reference: str | None
    order_id: str | None
    invoice: Invoice


class StockChanged(Event):
    """Available-to-promise changed for some SKUs in an ERP."""

    TYPE = "erp.stock_changed"
    erp: str
    positions: tuple[StockPosition, ...]


class PriceListChanged(Event):
    """A contract price list changed in an ERP; prices of these accounts are stale."""

    TYPE = "erp.price_list_changed"
    erp: str
    account_ids: tuple[str, ...]


class OrderReadyForErp(Event):
    """An order is validated, priced, credit-checked and allocated: submit it to its ERP."""

    TYPE = "order.ready_for_erp"
    order_id: str
    credit_approved: bool = False


class ErpOrderRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    plant: str
    reference: str
    erp_order_number: str | None


class OrderAccepted(Event):
    """The ERP accepted the order: sales orders per plant, allocation and promised dates per line."""

    TYPE = "order.accepted"
    order_id: str
    channel: str
    external_order_number: str
    account_id: str
    erp: str
    erp_orders: tuple[ErpOrderRef, ...]
    allocations: tuple[Allocation, ...]
    partial: bool
    total: str
    currency: str


class OrderRejected(Event):
    TYPE = "order.rejected"
    order_id: str
    channel: str
    account_id: str
    reasons: tuple[dict[str, object], ...]


class OrderHeld(Event):
    TYPE = "order.held"
    order_id: str
    case_id: str
    case_type: CaseType
    reason: str


class HoldReleased(Event):
    """A person released a hold; ``decision`` says how the flow continues."""

    TYPE = "order.hold_released"
    order_id: str
    case_id: str
    case_type: CaseType
    decision: str
    actor: str


class CaseOpened(Event):
    TYPE = "case.opened"
    case: ExceptionCase


class CaseResolved(Event):
    TYPE = "case.resolved"
    case: ExceptionCase
    action: str


class AmendedLine(BaseModel):
    """One line change of an amendment as the ERP answered it; ``references`` are the ERP orders it
    went to, ``reason`` says why the ERP (or the hub) refused it."""

    model_config = ConfigDict(frozen=True)
    line_no: int
    quantity: Decimal | None = None
    requested_date: dt.date | None = None
    cancel: bool = False
    references: tuple[str, ...] = ()
    reason: str = ""


class OrderAmended(Event):
    """A buyer amended an order the ERP had accepted; ``applied`` changed the ERP orders (and the
    hub's copy), ``refused`` did not."""

    TYPE = "order.amended"
    order_id: str
    channel: str
    account_id: str
    erp: str
    actor: str
    applied: tuple[AmendedLine, ...]
    refused: tuple[AmendedLine, ...]


class ReturnRequested(Event):
    """A buyer asked to return goods of an order (a return authorization, not yet in the ERP)."""

    TYPE = "return.requested"
    return_request: ReturnAuthorization
    channel: str
    actor: str


MESSAGE_TYPES: dict[str, type[Message]] = {}


def register(*classes: type[Message]) -> None:
    """Add message classes to the registry (flows register their own messages at import)."""
    for cls in classes:
        existing = MESSAGE_TYPES.get(cls.TYPE)
        if existing is not None and existing is not cls:
            raise ValueError(f"message type {cls.TYPE!r} registered twice ({existing} and {cls})")
        MESSAGE_TYPES[cls.TYPE] = cls


register(
    OrderReceived,
    OrderStateChanged,
    DuplicateOrderReceived,
    ErpShipmentChanged,
    ErpInvoicePosted,
    StockChanged,
    PriceListChanged,
    OrderReadyForErp,
    OrderAccepted,
    OrderRejected,
    OrderHeld,
    HoldReleased,
    CaseOpened,
    CaseResolved,
    OrderAmended,
    ReturnRequested,
)


# -- exception workbench, escalation and backorder promises (issue 6) ---------------------------------

class CaseEscalated(Event):
    """An open case passed its due time, or a person escalated it: the next owner level has it now."""

    TYPE = "case.escalated"
    case: ExceptionCase
    from_team: str
    from_level: int
    reason: str
    actor: str


class CaseUpdated(Event):
    """A person acted on a case without closing it (assigned it, re-read the ERP's promise, cancelled a
    line); ``action`` is the workbench action."""

    TYPE = "case.updated"
    case: ExceptionCase
    action: str
    actor: str


class BackorderDateRevised(Event):
    """The ERP revised when a backordered line will ship: the buyer is to be told the new date."""

    TYPE = "order.backorder_date_revised"
    order_id: str
    channel: str
    account_id: str
    line_no: int
    sku: str
    plant: str
    previous_date: dt.date
    revised_date: dt.date


register(CaseEscalated, CaseUpdated, BackorderDateRevised)


# -- fulfillment and invoicing (issue 6) ---------------------------------------------------------------

class ReportedLine(BaseModel):
    """A quantity of an order line as a warehouse or carrier reported it."""

    model_config = ConfigDict(frozen=True)
    line_no: int
    quantity: Decimal


class _ShipmentReport(Event):
    """What the warehouse reports of a shipment through the signed WMS webhook (the fields of the two
    report events below)."""

    source: str
    event_id: str
    kind: str
    order_id: str | None
    order_ref: str
    shipment_ref: str | None = None
    lines: tuple[ReportedLine, ...] = ()
    carrier: str | None = None
    tracking_number: str | None = None
    detail: str = ""
    occurred_at: dt.datetime


class WmsShipmentEvent(_ShipmentReport):
    """A warehouse reported progress of a shipment (``kind``: pick, pack or ship) through the signed
    WMS webhook. ``order_id`` is the hub order the webhook matched (None: no such order; the fulfillment
    flow opens a case instead of dropping the event); ``order_ref`` is what the warehouse named.
    ``lines`` are the shipment's quantities as of the event, not increments."""

    TYPE = "wms.shipment_event"


class CarrierTrackingEvent(_ShipmentReport):
    """A carrier status of a shipment that left (``kind``: in_transit, delivered or exception), relayed
    by the warehouse through the signed WMS webhook; fields as in :class:`WmsShipmentEvent`."""

    TYPE = "carrier.tracking_event"


class InvoiceDisputed(Event):
    """A buyer disputed an invoice; finance owns the ``invoice_dispute`` case ``case_id``."""

    TYPE = "invoice.disputed"
    dispute_id: str
    erp: str
    invoice_id: str
    invoice_number: str
    order_id: str
    account_id: str
    case_id: str
    reason: str
    comment: str = ""
    amount: Decimal | None = None
    lines: tuple[ReportedLine, ...] = ()
    actor: str


register(WmsShipmentEvent, CarrierTrackingEvent, InvoiceDisputed)


# -- returns created in the ERP (issue 6, part D) -----------------------------------------------------

class ErpReturnRef(BaseModel):
    """One ERP return of a return request: one per plant the goods go back to."""

    model_config = ConfigDict(frozen=True)
    plant: str
    reference: str
    erp_number: str | None


class ReturnAuthorized(Event):
    """The ERP created the return (one per plant): the buyer may send the goods back."""

    TYPE = "return.authorized"
    return_id: str
    order_id: str
    account_id: str
    erp: str
    erp_returns: tuple[ErpReturnRef, ...]


class ReturnRefused(Event):
    """The hub or the ERP refused a return request; ``reason`` says why, line by line."""

    TYPE = "return.refused"
    return_id: str
    order_id: str
    account_id: str
    reason: str


class ReturnStateChanged(Event):
    """A return request moved (authorized, refused, received, credited): one stream for subscribers."""

    TYPE = "return.state_changed"
    return_id: str
    order_id: str
    account_id: str
    from_state: ReturnState
    to_state: ReturnState
    cause: str
    at: dt.datetime


class ErpReturnChanged(Event):
    """An ERP return changed (detected by polling the ERP); ``state`` is what it means for the request."""

    TYPE = "erp.return_changed"
    erp: str
    reference: str
    return_id: str
    state: ReturnState
    erp_state: str


register(ReturnAuthorized, ReturnRefused, ReturnStateChanged, ErpReturnChanged)
