"""The ERP exchange: what the hub and an ERP say to each other, in ERP-neutral terms.

One hub order becomes one ERP sales order per plant it ships from (a sale ships from one warehouse).
Each ERP order carries a *reference* that names the hub order and the plant (:func:`order_reference`);
creation is idempotent by that reference, so retries, duplicate deliveries and crash recovery can never
create a second ERP order for the same hub order and plant. Returns go the same way: one ERP return per
hub return request and plant (:func:`return_reference`).

These models are the vocabulary of :class:`ordersync.ports.erp.ErpPort` and of the order aggregate's
decisions about ERP orders (``ordersync.domain.order``); they live with the canonical model so that the
domain can speak them without importing a port. They are internal to the hub (not published under
``schemas/``): an ERP adapter translates them into its ERP's own terms.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from ordersync.canonical.v1 import Canonical, Invoice, Shipment, StockPosition

REFERENCE_PREFIX = "OS"


def order_reference(order_id: str, plant: str) -> str:
    """The ERP order reference of the part of hub order ``order_id`` that ships from ``plant``."""
    return f"{REFERENCE_PREFIX}-{order_id}-{plant}"


def parse_reference(reference: str) -> tuple[str, str] | None:
    """``(order_id, plant)`` of a reference made by :func:`order_reference`, else None."""
    return _split(REFERENCE_PREFIX, reference)


def _split(prefix: str, reference: str) -> tuple[str, str] | None:
    """``(id, plant)`` of ``<prefix>-<id>-<plant>``, else None."""
    if not reference.startswith(f"{prefix}-"):
        return None
    hub_id, sep, plant = reference[len(prefix) + 1 :].partition("-")
    return (hub_id, plant) if sep and hub_id and plant else None


RETURN_PREFIX = "RMA"


def return_reference(return_id: str, plant: str) -> str:
    """The ERP return reference of the part of hub return request ``return_id`` that goes back to ``plant``."""
    return f"{RETURN_PREFIX}-{return_id}-{plant}"


def parse_return_reference(reference: str) -> tuple[str, str] | None:
    """``(return_id, plant)`` of a reference made by :func:`return_reference`, else None."""
    return _split(RETURN_PREFIX, reference)


class Plant(Canonical):
    """A warehouse that ships orders; ``region`` is matched against ship-to regions."""

    code: str
    name: str = ""
    region: str = ""


class SalesOrderLine(Canonical):
    line_no: int
    sku: str
    quantity: Decimal
    unit_price: Decimal
    promised_date: dt.date | None = None


class SalesOrderRequest(Canonical):
    """One ERP sales order to create (or find) for one plant of one hub order."""

    reference: str
    order_id: str
    account_id: str
    plant: str
    currency: str
    lines: tuple[SalesOrderLine, ...]
    ship_to_id: str | None = None
    buyer_po_number: str | None = None
    accept_shortfall: bool = False
    credit_approved: bool = False


class SubmitOutcome(StrEnum):
    ACCEPTED = "accepted"  # confirmed in the ERP
    CREDIT_HOLD = "credit_hold"  # the ERP's credit check said no; the order waits as a quotation
    STOCK_SHORTFALL = "stock_shortfall"  # the ERP's stock check said no; the hub must decide
    REJECTED = "rejected"  # the ERP refused it for a reason retrying will not change


class Shortfall(Canonical):
    sku: str
    plant: str
    requested: Decimal
    available: Decimal


class SubmitResult(Canonical):
    reference: str
    outcome: SubmitOutcome
    erp_order_id: str | None = None
    erp_order_number: str | None = None
    message: str = ""
    reconciled: bool = False  # an existing ERP order was found (retry or crash recovery)
    shortfalls: tuple[Shortfall, ...] = ()


class LineChange(Canonical):
    """An amendment of one line: new quantity, new date, or cancel (quantity 0)."""

    line_no: int
    quantity: Decimal | None = None
    promised_date: dt.date | None = None
    cancel: bool = False


class AmendmentRequest(Canonical):
    reference: str
    changes: tuple[LineChange, ...]


class AmendmentResult(Canonical):
    reference: str
    applied: tuple[LineChange, ...] = ()
    refused: tuple[tuple[LineChange, str], ...] = ()
    message: str = ""


class ErpOrderState(StrEnum):
    DRAFT = "draft"
    QUOTATION = "quotation"
    CONFIRMED = "confirmed"
    PROCESSING = "processing"
    DONE = "done"
    CANCELLED = "cancelled"


class ErpOrderLine(Canonical):
    line_no: int
    sku: str
    quantity: Decimal
    unit_price: Decimal
    promised_date: dt.date | None = None


class ErpOrder(Canonical):
    """An ERP sales order as the hub sees it, with its shipments and invoices."""

    reference: str
    order_id: str
    plant: str
    erp_order_id: str
    erp_order_number: str
    state: ErpOrderState
    account_id: str
    currency: str
    lines: tuple[ErpOrderLine, ...]
    shipments: tuple[Shipment, ...] = ()
    invoices: tuple[Invoice, ...] = ()


class ReturnRequestLine(Canonical):
    """A line of the ERP order to take back: its line number there (the hub line number) and quantity."""

    line_no: int
    quantity: Decimal
    reason: str = ""


class ReturnRequest(Canonical):
    """One ERP return to create (or find) for one plant of one hub return request: the goods of ERP
    order ``order_reference`` (:func:`order_reference`) that come back."""

    reference: str
    return_id: str
    order_reference: str
    account_id: str
    plant: str
    lines: tuple[ReturnRequestLine, ...]


class ReturnOutcome(StrEnum):
    AUTHORIZED = "authorized"  # the return exists, confirmed, in the ERP: goods may be sent back
    REFUSED = "refused"  # the ERP will not take it back (more than shipped, unknown order or line ...)


class ReturnResult(Canonical):
    reference: str
    outcome: ReturnOutcome
    erp_return_id: str | None = None
    erp_return_number: str | None = None
    message: str = ""
    reconciled: bool = False  # an existing ERP return was found (retry or crash recovery)


class ErpReturnState(StrEnum):
    PENDING = "pending"  # left as a draft or quotation (an interrupted creation)
    AUTHORIZED = "authorized"  # confirmed: waiting for the goods
    RECEIVED = "received"  # every line received back into the plant
    CREDITED = "credited"  # its credit note is posted (with or before the goods)
    CANCELLED = "cancelled"


class ErpReturnLine(Canonical):
    line_no: int
    sku: str
    quantity: Decimal  # positive: what comes back


class ErpReturn(Canonical):
    """An ERP return as the hub sees it."""

    reference: str
    return_id: str
    plant: str
    erp_return_id: str
    erp_return_number: str
    state: ErpReturnState
    account_id: str
    lines: tuple[ErpReturnLine, ...] = ()


class ChangeKind(StrEnum):
    SHIPMENT = "shipment"
    INVOICE = "invoice"
    STOCK = "stock"
    PRICE_LIST = "price_list"
    ORDER = "order"
    RETURN = "return"


class Change(Canonical):
    """One change detected in the ERP. ``key`` identifies the record, ``version`` its state (for
    deduplication across overlapping polls: the same (key, version) is one change)."""

    kind: ChangeKind
    key: str
    version: str
    reference: str | None = None
    shipment: Shipment | None = None
    invoice: Invoice | None = None
    stock: tuple[StockPosition, ...] = ()
    account_ids: tuple[str, ...] = ()
    erp_return: ErpReturn | None = None


class ChangeBatch(Canonical):
    changes: tuple[Change, ...]
    watermark: dt.datetime  # pass back (minus the overlap window) on the next poll


class ErpHealth(Canonical):
    erp: str
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
