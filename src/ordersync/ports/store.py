"""The store port: what flows need from the hub's own store, in the flows' terms.

A :class:`UnitOfWork` is one transaction: repositories bound to it, and the outbox writer, so that a
state change and the events it causes commit together or not at all. :class:`Store` opens them. The
implementation is :mod:`ordersync.store` (SQLite or PostgreSQL); flows never import it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, Protocol

from ordersync.canonical.envelope import Envelope
from ordersync.canonical.v1 import (
    CaseType,
    ExceptionCase,
    Invoice,
    OrderState,
    ReturnAuthorization,
    ReturnState,
    Shipment,
)
from ordersync.domain.events import Message
from ordersync.domain.fulfillment import FulfillmentRecord
from ordersync.domain.order import OrderRecord, Transition


class OrderRepository(Protocol):
    """Orders by id and by business key (channel, external order number), with optimistic concurrency."""

    def find(self, order_id: str) -> OrderRecord | None: ...

    def get(self, order_id: str) -> OrderRecord:
        """The order, or :class:`~ordersync.domain.errors.NotFound`."""
        ...

    def lock(self, order_id: str) -> OrderRecord | None:
        """The order, its row locked until the transaction ends."""
        ...

    def add_if_absent(self, record: OrderRecord, at: dt.datetime) -> tuple[OrderRecord, bool]:
        """Insert unless the business key exists; the stored record and whether this call created it."""
        ...

    def save(self, record: OrderRecord, at: dt.datetime) -> None:
        """Write the order if nobody changed it since it was read (else a ``ConcurrentUpdate``)."""
        ...

    def by_business_key(self, channel: str, external_order_number: str) -> OrderRecord | None: ...

    def transitions(self, order_id: str) -> list[Transition]: ...

    def account_of(self, order_id: str) -> str | None: ...

    def match(self, order_id: str | None, reference: str | None, account_id: str | None) -> str | None:
        """The one order a partner names (hub id, ERP reference or order number), if exactly one does."""
        ...

    def numbers_starting(self, channel: str, prefix: str) -> list[str]: ...

    def backordered(self, states: frozenset[OrderState], limit: int) -> list[str]:
        """Ids of orders in ``states`` with backordered allocations, least recently changed first."""
        ...

    def has_backorders(self, order_id: str) -> bool:
        """Whether the order has backordered allocations, without loading it."""
        ...

    def idempotency_key(self, scope: str, key: str) -> tuple[str, str] | None:
        """(request fingerprint, order id) of an idempotency key used before."""
        ...

    def remember_idempotency_key(self, scope: str, key: str, fingerprint: str, order_id: str,
                                 at: dt.datetime) -> bool:
        """False if a concurrent request took the key first."""
        ...

    def known_idempotency_keys(self, keys: list[tuple[str, str]]) -> int:
        """How many of the (scope, key) pairs were used before."""
        ...

    def remember_idempotency_keys(self, keys: list[tuple[str, str, str, str]], at: dt.datetime) -> bool:
        """Store (scope, key, fingerprint, order id) rows; False if a concurrent request took one first."""
        ...


class CaseRepository(Protocol):
    def add(self, case: ExceptionCase) -> None: ...

    def save(self, case: ExceptionCase) -> None: ...

    def get(self, case_id: str) -> ExceptionCase: ...

    def open_for_order(self, order_id: str, case_type: CaseType | None = None) -> list[ExceptionCase]: ...

    def for_order(self, order_id: str) -> list[ExceptionCase]: ...

    def overdue(self, now: dt.datetime, limit: int) -> list[ExceptionCase]: ...


class DocumentRepository(Protocol):
    """The hub's copies of the ERP's shipments and invoices of hub orders."""

    def keep_shipment(self, erp: str, reference: str | None, order_id: str | None, shipment: Shipment,
                      at: dt.datetime) -> bool: ...

    def keep_invoice(self, erp: str, reference: str | None, order_id: str | None, invoice: Invoice,
                     at: dt.datetime) -> bool: ...

    def shipments(self, order_id: str) -> list[Shipment]: ...

    def invoice_for_update(self, invoice_id: str, account_id: str) -> tuple[str, Invoice] | None: ...


class FulfillmentRepository(Protocol):
    def get(self, order_id: str) -> FulfillmentRecord: ...

    def save(self, order_id: str, record: FulfillmentRecord, at: dt.datetime) -> None: ...

    def claim_problem(self, key: str, case_id: str, order_id: str | None, at: dt.datetime) -> bool: ...


class ReturnRepository(Protocol):
    def add(self, request: ReturnAuthorization, at: dt.datetime) -> None: ...

    def get(self, return_id: str) -> ReturnAuthorization | None: ...

    def save(self, request: ReturnAuthorization, at: dt.datetime) -> None: ...

    def requested_quantities(self, order_id: str, before: ReturnAuthorization | None = None
                             ) -> dict[int, Decimal]: ...

    def record_part(self, erp: str, reference: str, *, return_id: str, plant: str, erp_return_id: str | None,
                    number: str | None, state: ReturnState, at: dt.datetime) -> None: ...

    def part(self, erp: str, reference: str) -> tuple[str, ReturnState] | None: ...

    def set_part_state(self, erp: str, reference: str, state: ReturnState, at: dt.datetime) -> None: ...

    def part_states(self, return_id: str) -> list[ReturnState]: ...


class DisputeRepository(Protocol):
    def open_for(self, erp: str, invoice_id: str) -> tuple[str, str] | None: ...

    def add(self, dispute_id: str, *, erp: str, invoice_id: str, order_id: str, account_id: str, case_id: str,
            at: dt.datetime, request: Mapping[str, Any]) -> None: ...

    def for_case(self, case_id: str) -> tuple[str, dict[str, Any]] | None: ...

    def decide(self, dispute_id: str, decision: Mapping[str, Any]) -> None: ...


class WmsRepository(Protocol):
    def event(self, source: str, event_id: str) -> tuple[str, str | None] | None: ...

    def add_event(self, source: str, event_id: str, *, body_sha256: str, kind: str, order_id: str | None,
                  message_id: str, at: dt.datetime) -> bool: ...

    def record_attempt(self, *, source: str, at: dt.datetime, outcome: str, reason: str, body_sha256: str,
                       key_id: str | None = None, event_id: str | None = None, detail: str = "") -> None: ...


class CounterRepository(Protocol):
    def add(self, amounts: Mapping[str, int]) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: its repositories, and the outbox writer (events commit with the state)."""

    @property
    def causation_id(self) -> str | None:
        """The message being handled, which every event written here names as its cause."""
        ...

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def cases(self) -> CaseRepository: ...

    @property
    def documents(self) -> DocumentRepository: ...

    @property
    def fulfillment(self) -> FulfillmentRepository: ...

    @property
    def returns(self) -> ReturnRepository: ...

    @property
    def disputes(self) -> DisputeRepository: ...

    @property
    def wms(self) -> WmsRepository: ...

    @property
    def counters(self) -> CounterRepository: ...

    def now(self) -> dt.datetime: ...

    def envelope(self, message: Message, correlation_id: str | None) -> Envelope:
        """The envelope ``message`` would be written in (its message id is known before it is)."""
        ...

    def emit(self, message: Message, correlation_id: str | None) -> Envelope:
        """Write ``message`` to the outbox of this transaction."""
        ...

    def write_envelopes(self, envelopes: list[Envelope]) -> None: ...

    def add_order(self, record: OrderRecord) -> tuple[OrderRecord, bool]:
        """Store a new order (or find the one with its business key) with its events."""
        ...

    def add_new_orders(self, records: list[OrderRecord]) -> bool:
        """Store new orders with their events, all at once; False (roll back) if one's business key exists."""
        ...

    def save_order(self, record: OrderRecord) -> None:
        """Store the order, the cases its decisions opened or changed, and its events."""
        ...


class Store(Protocol):
    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """Repositories over a read transaction (write nothing through them)."""
        ...

    def transaction(self, causation_id: str | None = None) -> AbstractContextManager[UnitOfWork]:
        """A write transaction; events emitted in it are published once it commits."""
        ...
