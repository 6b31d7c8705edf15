"""The warehouse webhook's intake: signed events of picking, packing, shipping and carrier tracking.

A warehouse system (WMS) signs each request with a shared secret: ``X-Ordersync-Timestamp`` (unix
seconds) and ``X-Ordersync-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``. The
timestamp is part of what is signed and may be at most ``max_age`` seconds from the hub's clock, so a
captured request cannot be replayed later; within that window a replay carries the same ``event_id`` and
changes nothing (the ``wms_events`` inbox). ``inbound_webhook_attempts`` records every refused signature
check with its reason, and every event taken (accepted, duplicate, or refused for a reused id); a signed
body that is not a valid event is answered 422 and not recorded.

An accepted event becomes a canonical event in the outbox, in the same transaction as its inbox row:
``wms.shipment_event`` (pick, pack, ship) or ``carrier.tracking_event`` (in_transit, delivered,
exception), for the fulfillment flow (``flows/handlers/fulfillment.py``). The event names its order by hub order
id or by ``reference``: an ERP reference (``OS-<order>-<plant>``, what the ERP gave the warehouse) or the
channel's order number when exactly one order has it. An event no order matches is still accepted (the
warehouse did its part): the fulfillment flow opens a case for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal

from ordersync.domain.errors import Conflict
from ordersync.domain.events import CarrierTrackingEvent, ReportedLine, WmsShipmentEvent
from ordersync.domain.fulfillment import WAREHOUSE_KINDS
from ordersync.ports.store import UnitOfWork

SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True)
class WmsReport:
    """One event as the warehouse sent it (already validated for shape by the API)."""

    event_id: str
    kind: str
    order_id: str | None
    reference: str | None
    occurred_at: dt.datetime
    lines: tuple[tuple[int, Decimal], ...] = ()
    shipment_ref: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class WmsReceipt:
    event_id: str
    status: str  # accepted | duplicate
    order_id: str | None  # the hub order the event was matched to (None: unknown, a case follows)


# -- signatures -------------------------------------------------------------------------------------------

def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Ordersync-Signature`` value of ``body`` sent at ``timestamp`` (what a WMS computes)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_problem(secret: bytes, timestamp: str | None, signature: str | None, body: bytes,
                      now: dt.datetime, max_age: int) -> str | None:
    """Why the request must be refused (a short reason code), or None when it is signed with ``secret``
    and its timestamp is within ``max_age`` seconds of ``now``. The signature is compared in constant
    time, and before the timestamp's age, so a wrong signature never learns whether its time was good."""
    if not signature:
        return "missing_signature"
    if not timestamp:
        return "missing_timestamp"
    if not signature.startswith(SIGNATURE_PREFIX):
        return "malformed_signature"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        return "bad_signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return "malformed_timestamp"
    age = now.timestamp() - sent
    if age > max_age:
        return "stale_timestamp"
    if age < -max_age:
        return "future_timestamp"
    return None


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _message(report: WmsReport, source: str, order_id: str | None) -> WmsShipmentEvent | CarrierTrackingEvent:
    cls = WmsShipmentEvent if report.kind in WAREHOUSE_KINDS else CarrierTrackingEvent
    return cls(source=source, event_id=report.event_id, kind=report.kind, order_id=order_id,
               order_ref=report.order_id or report.reference or "", shipment_ref=report.shipment_ref,
               lines=tuple(ReportedLine(line_no=n, quantity=q) for n, q in report.lines),
               carrier=report.carrier, tracking_number=report.tracking_number, detail=report.detail,
               occurred_at=report.occurred_at)


def receive(uow: UnitOfWork, report: WmsReport, *, source: str, body_sha256: str, account_id: str | None,
            key_id: str | None) -> WmsReceipt:
    """Take one signed event: a redelivery (same id, same body) is a duplicate that changes nothing; the
    same id with another body raises :class:`Conflict` (nothing stored); anything else is written to the
    inbox and the outbox together."""
    now = uow.now()
    held = uow.wms.event(source, report.event_id)
    if held is None:
        order_id = uow.orders.match(report.order_id, report.reference, account_id)
        envelope = uow.envelope(_message(report, source, order_id), correlation_id=order_id)
        if uow.wms.add_event(source, report.event_id, body_sha256=body_sha256, kind=report.kind, order_id=order_id,
                             message_id=envelope.message_id, at=now):
            uow.write_envelopes([envelope])
            uow.wms.record_attempt(source=source, at=now, outcome="accepted", reason="ok", key_id=key_id,
                                   event_id=report.event_id, body_sha256=body_sha256,
                                   detail=f"{report.kind} for {order_id or 'an unknown order'}")
            return WmsReceipt(report.event_id, "accepted", order_id)
        held = uow.wms.event(source, report.event_id)
        assert held is not None
    if held[0] != body_sha256:
        raise Conflict(f"event_id {report.event_id} was received before with a different body; "
                       "send a new event_id for a new event")
    uow.wms.record_attempt(source=source, at=now, outcome="duplicate", reason="redelivery", key_id=key_id,
                           event_id=report.event_id, body_sha256=body_sha256)
    return WmsReceipt(report.event_id, "duplicate", held[1])


def record_refusal(uow: UnitOfWork, *, source: str, reason: str, body_sha256: str, key_id: str | None = None,
                   event_id: str | None = None, detail: str = "") -> None:
    """Record a call refused before its event was taken (a bad signature, a reused event id)."""
    uow.wms.record_attempt(source=source, at=uow.now(), outcome="refused", reason=reason, key_id=key_id,
                           event_id=event_id, body_sha256=body_sha256, detail=detail)
