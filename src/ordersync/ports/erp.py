"""The ERP port: what the hub needs from the system of record for accounts, credit, contract prices,
stock, sales orders, shipments, invoices and returns, in its own terms (the vocabulary is
:mod:`ordersync.canonical.erp`).

Two protocols:

- :class:`ErpPort` is one ERP instance, as an adapter implements it (Tryton, the in-memory twin).
- :class:`Erps` is every ERP instance of the hub *behind its access policy*: one concurrency budget per
  ERP shared by every flow, priority lanes, bounded retries, a circuit breaker, and routing of each
  account to its ERP of record. The composition root wires it (``ordersync.adapters.erp``); flows only
  ever see this protocol. A caller picks its :class:`Lane` once, where it is built or registered
  (``erps.in_lane(Lane.ORDERS)``), and every ERP call it makes through that view waits in that lane.

ERP warnings are business outcomes, not errors: a credit limit warning is a ``credit_hold`` result, a
stock warning is a ``stock_shortfall`` result (the hub decides: split, backorder, or hold), unless the
request says the hub already decided (``credit_approved``, ``accept_shortfall``). A return the ERP will
not take is a ``refused`` result with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Literal, Protocol, runtime_checkable

from ordersync.canonical.erp import (
    REFERENCE_PREFIX,
    RETURN_PREFIX,
    AmendmentRequest,
    AmendmentResult,
    Change,
    ChangeBatch,
    ChangeKind,
    ErpHealth,
    ErpOrder,
    ErpOrderLine,
    ErpOrderState,
    ErpReturn,
    ErpReturnLine,
    ErpReturnState,
    LineChange,
    Plant,
    ReturnOutcome,
    ReturnRequest,
    ReturnRequestLine,
    ReturnResult,
    SalesOrderLine,
    SalesOrderRequest,
    Shortfall,
    SubmitOutcome,
    SubmitResult,
    order_reference,
    parse_reference,
    parse_return_reference,
    return_reference,
)
from ordersync.canonical.v1 import Account, CreditStatus, PriceQuote, Product, StockPosition
from ordersync.domain.errors import DomainError

__all__ = [  # the port's vocabulary, re-exported so that an adapter imports one module
    "REFERENCE_PREFIX",
    "RETURN_PREFIX",
    "AmendmentRequest",
    "AmendmentResult",
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "CircuitState",
    "ErpHealth",
    "ErpOrder",
    "ErpOrderLine",
    "ErpOrderState",
    "ErpPort",
    "ErpReturn",
    "ErpReturnLine",
    "ErpReturnState",
    "ErpStatus",
    "Erps",
    "Known",
    "Lane",
    "LineChange",
    "Plant",
    "ReturnOutcome",
    "ReturnRequest",
    "ReturnRequestLine",
    "ReturnResult",
    "SalesOrderLine",
    "SalesOrderRequest",
    "Shortfall",
    "SubmitOutcome",
    "SubmitResult",
    "UnknownItem",
    "order_reference",
    "parse_reference",
    "parse_return_reference",
    "return_reference",
]


class UnknownItem(DomainError):
    """The ERP does not know an account, SKU, plant or address the hub asked about."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"unknown {kind} {key!r}")
        self.kind = kind
        self.key = key


class Lane(IntEnum):
    """The priority lanes of an ERP's concurrency budget; lower is served first."""

    ORDERS = 0  # submission, amendments, credit and stock for an order in flight, returns
    CHANGES = 1  # change detection (shipments, invoices) and what follows from it
    READS = 2  # prices, availability, catalog for the read model
    BACKGROUND = 3  # full refreshes, route discovery, reconciliation sweeps


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BudgetScope = Literal["process", "global"]


@dataclass
class ErpStatus:
    """How an ERP instance's access policy stands (``/ready``, ``/metrics``, the dashboard)."""

    erp: str
    circuit: CircuitState
    consecutive_failures: int
    last_error: str | None
    in_flight: int
    waiting: dict[str, int] = field(default_factory=dict)
    max_concurrency: int = 1
    calls: int = 0
    failures: int = 0
    scope: BudgetScope = "process"  # "global": max_concurrency holds across every process sharing the store
    #: port calls per priority lane, and the requests they made on the wire per lane (Tryton: JSON-RPC)
    lane_calls: dict[str, int] = field(default_factory=dict)
    wire_calls: dict[str, int] = field(default_factory=dict)


Known = Callable[[str, str], bool]


@dataclass(frozen=True)
class ChangeNotice:
    """The ERP says something changed. ``probe_sees``: the change is of a kind :meth:`ErpPort.change_probe`
    covers (asking it first is enough); otherwise read in full (Tryton: a price list)."""

    probe_sees: bool = True


class ChangeFeed(Protocol):
    """One subscription to an ERP's change signals. Not thread-safe: one listener thread uses it."""

    def wait(self) -> ChangeNotice | None:
        """Block until the ERP signals a change committed since the last call (a notice), or until the
        subscription's own timeout passes with none (None; call again). Raises
        :class:`~ordersync.domain.errors.Unavailable` when the subscription is broken: the caller polls
        meanwhile and subscribes anew."""
        ...

    def close(self) -> None:
        """End the subscription; a :meth:`wait` in progress returns or raises soon after."""
        ...


@runtime_checkable
class ErpPort(Protocol):
    """What the hub needs from an ERP. Every method may raise
    :class:`~ordersync.domain.errors.Unavailable` (down, slow, circuit open) or
    :class:`~ordersync.domain.errors.ProtocolError` (garbage answer); business refusals are results or
    :class:`UnknownItem`, never stack traces."""

    name: str

    def health(self) -> ErpHealth: ...

    def plants(self) -> list[Plant]: ...

    def accounts(self) -> list[Account]:
        """Every active customer account with credit status and ship-to addresses."""
        ...

    def account(self, account_id: str) -> Account:
        """One account (inactive ones too) or :class:`UnknownItem`."""
        ...

    def credit(self, account_id: str) -> CreditStatus: ...

    def set_credit_limit(self, account_id: str, limit: Decimal) -> CreditStatus:
        """Set the account's credit limit (finance raised it on the workbench); the credit as it then
        stands. Idempotent: setting the same limit again changes nothing. Unknown account ->
        :class:`UnknownItem`."""
        ...

    def products(self, account_id: str | None = None) -> list[Product]:
        """The sellable assortment; with ``account_id``, customer part numbers of that account only."""
        ...

    def prices(self, account_id: str, items: Sequence[tuple[str, Decimal]], on: dt.date | None = None
               ) -> list[PriceQuote]:
        """Contract prices for (sku, quantity) pairs, in order. Unknown SKU -> :class:`UnknownItem`."""
        ...

    def availability(self, skus: Sequence[str]) -> list[StockPosition]:
        """Available-to-promise per plant for each SKU (one position per SKU and plant)."""
        ...

    def submit_orders(self, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
        """Create and confirm sales orders, idempotent by reference, in one batch where possible.
        Results are in request order."""
        ...

    def amend_order(self, request: AmendmentRequest) -> AmendmentResult: ...

    def cancel_order(self, reference: str) -> bool:
        """Cancel an ERP order that is not confirmed yet (a held quotation); True if cancelled."""
        ...

    def order(self, reference: str) -> ErpOrder | None:
        """The ERP order with this reference, with shipments and invoices, or None."""
        ...

    def orders_for(self, order_id: str) -> list[ErpOrder]:
        """Every ERP order that belongs to hub order ``order_id`` (one per plant)."""
        ...

    def sales_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpOrder]:
        """The hub's ERP orders for reconciliation: every sale whose reference has our prefix
        (:data:`REFERENCE_PREFIX`) and that changed at or after ``since`` (every one with None), and the
        sales of ``references`` however old; one per reference (the one :meth:`order` would give), with
        lines, shipments, invoices and state, by reference. Read in a bounded number of batched calls per
        page of sales, never one call per order."""
        ...

    def returns_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpReturn]:
        """The hub's ERP returns for reconciliation, as :meth:`sales_since` reads our sales: every return whose
        reference has our prefix (:data:`RETURN_PREFIX`) changed at or after ``since`` (all with None), and
        those of ``references``; one per reference (the one :meth:`return_status` would give), in batches."""
        ...

    def changes_since(self, watermark: dt.datetime | None, known: Known | None = None) -> ChangeBatch:
        """Shipments, invoices, stock, price lists and returns changed at or after ``watermark``.

        ``known(key, version)`` says the hub already holds that change (its poll windows overlap); an
        adapter may then skip reading the record's details (and may leave the change out), which keeps
        overlapping polls from re-reading every record of the window."""
        ...

    def change_probe(self, watermark: dt.datetime | None) -> str | None:
        """One cheap question before a poll: a fingerprint of what changed at or after ``watermark``
        (the same fingerprint, asked again for the same ``watermark``, means nothing new arrived), or
        None when this ERP cannot answer cheaply (then every poll reads in full). It may see less than
        :meth:`changes_since` (Tryton's covers stock moves and the shipments, sales and invoices they
        belong to, not price lists); the poller sweeps in full now and then for the rest."""
        ...

    def change_feed(self) -> ChangeFeed | None:
        """A subscription to the ERP's own change signals (push), or None when this ERP cannot push here
        (Tryton: on SQLite, without the ``ordersync_changes`` module, or with its bus closed). The poller
        keeps asking :meth:`change_probe` when there is none; with one it asks when signalled, and
        seldom otherwise."""
        ...

    def create_return(self, request: ReturnRequest) -> ReturnResult:
        """Create and confirm the return of ``request.lines`` of ERP order ``request.order_reference``,
        idempotent by ``request.reference``; refused when a line asks for more than the ERP shipped less
        what earlier returns of that order take back."""
        ...

    def return_status(self, reference: str) -> ErpReturn | None:
        """The ERP return with this reference, or None."""
        ...


class Erps(Protocol):
    """Every ERP instance of the hub behind its access policy, and the route of each account to its ERP
    of record. Views made with :meth:`in_lane` share budgets, breakers and routes with this one."""

    def names(self) -> list[str]:
        """The configured ERP instances."""
        ...

    def erp(self, name: str) -> ErpPort:
        """ERP ``name`` (:class:`UnknownItem` if there is none), its calls in this view's lane."""
        ...

    def erp_name_for(self, account_id: str) -> str:
        """The name of ``account_id``'s ERP of record (:class:`UnknownItem` if no ERP knows it)."""
        ...

    def default_name(self) -> str:
        """The ERP that answers what names no account (stock): the configured default, else the first."""
        ...

    def for_account(self, account_id: str) -> ErpPort:
        """The ERP of record of ``account_id``, its calls in this view's lane."""
        ...

    def in_lane(self, lane: Lane) -> Erps:
        """The same ERPs, every call waiting in ``lane`` (without a lane, each call takes its natural one:
        orders for submissions, reads for prices and stock, background for account lists)."""
        ...

    def status(self, name: str) -> ErpStatus:
        """How ERP ``name``'s budget and circuit stand."""
        ...

    def reachable(self, name: str) -> bool:
        """Whether ERP ``name``'s circuit is closed (its last answers can be called live)."""
        ...

    def discover(self) -> dict[str, str]:
        """Ask every ERP for its accounts and remember the routes; returns account -> ERP name."""
        ...
