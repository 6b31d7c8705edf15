"""Intake: an order arrives from a channel and is stored once, whatever happens on the way.

The business key (channel, external order number) is unique in the store: webhook retries, EDI resends,
API retries and reconciliation polls all collapse onto one order, race-safe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ordersync.canonical.v1 import CaseType, Order, OrderState
from ordersync.domain.cases import CasePolicy, open_case, record_action
from ordersync.domain.errors import ChangedResend, Conflict
from ordersync.domain.events import CaseOpened, CaseUpdated, DuplicateOrderReceived, OrderReceived
from ordersync.domain.order import OrderRecord
from ordersync.domain.order.resend import differences
from ordersync.ports.store import UnitOfWork


@dataclass(frozen=True)
class Receipt:
    """What a channel gets back at once: the hub order id, and whether this was a repeat."""

    order_id: str
    state: OrderState
    duplicate: bool  # the business key was known (same order re-sent, maybe with a new delivery id)
    replayed: bool  # the idempotency key was known: the very same request was sent again


def request_hash(body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(data).hexdigest()


def meaning_hash(value: Any) -> str:
    """The fingerprint of a request's meaning, not its bytes: ``value`` (a parsed body, e.g. a model's
    ``model_dump()``) as canonical JSON (keys sorted, no white space, numbers by value: ``10`` and
    ``10.00`` are one quantity). The same order re-serialised, indented or with its keys in another
    order under the same idempotency key is the same request."""
    return request_hash(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   default=_canonical))


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def accept_order(
    uow: UnitOfWork,
    order: Order,
    *,
    scope: str,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    delivery_id: str | None = None,
) -> Receipt:
    """Intake from any channel, in one short transaction and without any ERP work.

    ``idempotency_key`` (scoped per client) makes a repeated request return the first answer; the same
    key with a different request body is a :class:`Conflict`. Independently of it, the business key
    (channel, external order number) collapses re-sent orders onto the first one.
    """
    fingerprint = _fingerprint(order, fingerprint)
    if idempotency_key:
        existing = uow.orders.idempotency_key(scope, idempotency_key)
        if existing is not None:
            known_hash, known_order = existing
            if known_hash != fingerprint:
                raise Conflict(f"idempotency key {idempotency_key!r} was used for a different request")
            record = uow.orders.get(known_order)
            return Receipt(record.id, record.state, duplicate=False, replayed=True)
    record, created = receive_order(uow, order, delivery_id)
    if idempotency_key and not uow.orders.remember_idempotency_key(scope, idempotency_key, fingerprint, record.id,
                                                                   uow.now()):
        # a concurrent request with the same key won; answer as it did
        raise Conflict(f"idempotency key {idempotency_key!r} is being used by a concurrent request")
    return Receipt(record.id, record.state, duplicate=not created, replayed=False)


@dataclass(frozen=True)
class Submission:
    """An order handed to intake, with how it was asked for (see :func:`accept_order`)."""

    order: Order
    scope: str
    idempotency_key: str | None = None
    fingerprint: str | None = None
    delivery_id: str | None = None


class NotAllNew(Exception):
    """A batch holds an order or an idempotency key seen before (or twice in it): roll back and take the
    orders one at a time with :func:`accept_order`."""


def accept_new_orders(uow: UnitOfWork, batch: list[Submission]) -> list[Receipt]:
    """Intake of a batch of orders that are all new, in a few statements whatever the batch's size.

    What :func:`accept_order` does for each of them, for the common case: no idempotency key and no
    business key known before, none twice in the batch. Otherwise raises :class:`NotAllNew`, maybe
    after writing part of the batch: the caller rolls the transaction back and goes one order at a time
    (the rare path of re-sends and retries keeps its one-order semantics).
    """
    keys = [(s.scope, s.idempotency_key) for s in batch if s.idempotency_key]
    numbers = {(s.order.channel, s.order.external_order_number) for s in batch}
    if len(set(keys)) != len(keys) or len(numbers) != len(batch):
        raise NotAllNew("the batch holds the same order or idempotency key twice")
    if keys and uow.orders.known_idempotency_keys(keys):
        raise NotAllNew("an idempotency key of the batch was used before")
    at = uow.now()
    records = [_received(s.order, s.delivery_id, at) for s in batch]
    if not uow.add_new_orders(records):
        raise NotAllNew("an order of the batch was received before")
    remembered = [(s.scope, s.idempotency_key, _fingerprint(s.order, s.fingerprint), s.order.id)
                  for s in batch if s.idempotency_key]
    if remembered and not uow.orders.remember_idempotency_keys(remembered, at):
        raise NotAllNew("a concurrent request took an idempotency key of the batch")
    return [Receipt(record.id, record.state, duplicate=False, replayed=False) for record in records]


def receive_order(uow: UnitOfWork, order: Order, delivery_id: str | None = None) -> tuple[OrderRecord, bool]:
    """Store ``order`` (state ``received``) with its events, or find the order it duplicates.

    Returns the stored record and whether it is new. A duplicate is recorded as an event on the existing
    order (so the timeline shows it) and changes nothing else.
    """
    stored, created = uow.add_order(_received(order, delivery_id, uow.now()))
    if not created and stored.order.account_id != order.account_id:
        # the channel's order number is taken by another account's order: refuse, without saying whose
        # (answering "duplicate" would hand out another buyer's order id and lose this order)
        raise Conflict(f"order number {order.external_order_number!r} of channel {order.channel!r} is already "
                       "used by an order of another account; send it with its own order number")
    if not created:
        changed = differences(stored.order, order)
        if changed:
            raise ChangedResend(order_id=stored.id, account_id=stored.order.account_id, channel=order.channel,
                                external_order_number=order.external_order_number, differences=changed)
        uow.emit(
            DuplicateOrderReceived(
                order_id=stored.id,
                channel=order.channel,
                external_order_number=order.external_order_number,
                delivery_id=delivery_id,
            ),
            correlation_id=stored.id,
        )
    return stored, created


def record_changed_resend(uow: UnitOfWork, refused: ChangedResend, policy: CasePolicy) -> str:
    """The case a refused re-send leaves for the channel's owner (``[cases] channel_owners``, else the
    order-conflict owner): one per order while it is open, each later re-send noted in its history (a
    channel that retries its change does not open a case per retry). Returns the case id."""
    lines = "; ".join(refused.differences)
    now = uow.now()
    for case in uow.cases.open_for_order(refused.order_id, CaseType.ORDER_CONFLICT):
        noted = record_action(case, action="resent", actor="ordersync", now=now,
                              comment=f"sent again with different content, refused: {lines}"[:2000])
        uow.cases.save(noted)
        uow.emit(CaseUpdated(case=noted, action="resent", actor="ordersync"), correlation_id=refused.order_id)
        return case.id
    owner = policy.channel_owners.get(refused.channel)
    if owner:
        policy = dataclasses.replace(policy, owners={**policy.owners, CaseType.ORDER_CONFLICT: owner})
    case = open_case(CaseType.ORDER_CONFLICT, now=now, policy=policy, order_id=refused.order_id,
                     account_id=refused.account_id,
                     summary=(f"Channel {refused.channel} re-sent order {refused.external_order_number} with "
                              f"different content, refused: {lines}")[:1000],
                     next_action="ask the channel what the buyer wants: amend the order, cancel it, or resolve")
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=refused.order_id)
    return case.id


def _received(order: Order, delivery_id: str | None, at: dt.datetime) -> OrderRecord:
    """A new order's record: state ``received`` and its ``order.received`` event."""
    record = OrderRecord.receive(order, at=at, cause=f"received from channel {order.channel}")
    record.record_event(OrderReceived(order=order, delivery_id=delivery_id))
    return record


def _fingerprint(order: Order, given: str | None) -> str:
    """The request's fingerprint for its idempotency key: the one given (the request body's hash), else
    the order's own."""
    return given or meaning_hash(order.model_dump(exclude={"id", "placed_at"}))


def move_order(uow: UnitOfWork, order_id: str, target: OrderState, cause: str) -> OrderRecord:
    """Load, transition and save an order in this unit of work (IllegalTransition changes nothing)."""
    record = uow.orders.get(order_id)
    record.move_to(target, uow.now(), cause)
    uow.save_order(record)
    return record
