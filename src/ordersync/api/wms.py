"""``POST /v1/wms/events``: the warehouse's signed webhook (the protocol is in ``flows/services/wms.py``).

Checks, in order: an API key of client ``wms`` with the ``fulfillment:write`` scope (401/403 as on every
route), then the HMAC-SHA256 signature over ``<timestamp>.<raw body>`` and the timestamp's age (401,
recorded in ``inbound_webhook_attempts`` with the reason; nothing is applied), then the event's shape
(422). An accepted event answers 202; a redelivery of an event already taken answers 200 and changes
nothing; an ``event_id`` reused with another body answers 409.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ordersync.api.auth import require
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal, Scope
from ordersync.api.params import IsoAwareDateTime
from ordersync.api.problems import Problem
from ordersync.domain.errors import Conflict
from ordersync.flows.services.wms import WmsReport, body_digest, receive, record_refusal, signature_problem
from ordersync.runtime.hub import Hub

router = APIRouter(prefix="/v1", tags=["fulfillment"])

SOURCE = "wms"
TIMESTAMP_HEADER = "X-Ordersync-Timestamp"
SIGNATURE_HEADER = "X-Ordersync-Signature"
WmsWriter = Annotated[Principal, require(Scope.FULFILLMENT_WRITE)]

REASONS = {
    "missing_signature": f"send {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of '<timestamp>.<raw body>'>",
    "missing_timestamp": f"send {TIMESTAMP_HEADER}: the unix time (seconds) the request was signed at",
    "malformed_signature": f"{SIGNATURE_HEADER} must read sha256=<hex digest>",
    "bad_signature": "the signature does not match the body and timestamp under the shared secret",
    "malformed_timestamp": f"{TIMESTAMP_HEADER} must be unix seconds",
    "stale_timestamp": "the request was signed too long ago (replays are refused); sign it again",
    "future_timestamp": "the request's timestamp is too far ahead of the hub's clock",
}


class WmsLineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    line_no: int = Field(ge=1, le=9999, description="the order line (hub line number)")
    quantity: Decimal = Field(ge=0, max_digits=18, decimal_places=6,
                              description="the shipment's quantity of the line as of this event (not an increment)")


class WmsEventIn(BaseModel):
    """One warehouse or carrier event. Unknown fields are ignored (a newer WMS may send more)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    event_id: str = Field(min_length=1, max_length=200, description="the WMS's id: a redelivery carries the same")
    type: Literal["pick", "pack", "ship", "in_transit", "delivered", "exception"]
    order_id: str | None = Field(default=None, min_length=1, max_length=64, description="the hub order id")
    reference: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="instead of order_id: the ERP order reference (OS-<order>-<plant>) "
                                              "or the channel's order number")
    shipment_ref: str | None = Field(default=None, min_length=1, max_length=120,
                                     description="the warehouse's shipment (or the ERP shipment number it ships); "
                                                 "events without one describe one shipment per order")
    lines: list[WmsLineIn] = Field(default_factory=list, max_length=500)
    carrier: str | None = Field(default=None, max_length=120)
    tracking_number: str | None = Field(default=None, max_length=120)
    detail: str = Field(default="", max_length=2000, description="what happened, for an exception")
    occurred_at: IsoAwareDateTime

    @model_validator(mode="after")
    def _names_an_order(self) -> WmsEventIn:
        if not (self.order_id or self.reference):
            raise ValueError("name the order: order_id or reference")
        return self


class WmsEventAck(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate"]
    order_id: str | None = Field(description="the hub order the event was matched to; null: none matched (a "
                                             "fulfillment_discrepancy case keeps the event)")


@dataclass(frozen=True)
class Signed:
    principal: Principal
    body_sha256: str


async def signed_request(request: Request, principal: WmsWriter) -> Signed:
    """The caller is a WMS key and the body is signed with the shared secret, recently; else 401/403."""
    hub: Hub = request.app.state.hub
    if principal.client != SOURCE:
        raise Problem(403, "Not a WMS key", f"warehouse events need a key of client {SOURCE}, "
                                            f"this one is {principal.client}")
    body = await request.body()
    digest = body_digest(body)
    settings = hub.settings.wms
    secret = settings.signing_key()
    if secret is None:
        await run_in_threadpool(_attempt, hub, principal, digest, "not_configured")
        raise Problem(503, "WMS webhook not configured", "the hub has no WMS secret ([wms] secret_env)",
                      headers={"Retry-After": "60"})
    reason = signature_problem(secret, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER),
                               body, hub.clock.now(), settings.max_age_seconds)
    if reason is not None:
        await run_in_threadpool(_attempt, hub, principal, digest, reason)
        raise Problem(401, "Invalid signature", REASONS[reason], reason=reason,
                      headers={"WWW-Authenticate": 'HMAC-SHA256 realm="ordersync-wms"'})
    return Signed(principal, digest)


def _attempt(hub: Hub, principal: Principal, digest: str, reason: str, event_id: str | None = None,
             detail: str = "") -> None:
    with hub.uow() as uow:
        record_refusal(uow, source=SOURCE, reason=reason, key_id=principal.key_id, event_id=event_id,
                       body_sha256=digest, detail=detail or REASONS.get(reason, reason))


SignedWms = Annotated[Signed, Depends(signed_request)]


@router.post("/wms/events", status_code=202, response_model=WmsEventAck, responses={
    200: {"model": WmsEventAck, "description": "a redelivery of an event already taken: nothing changed"},
    409: {"description": "the event_id was used before for a different event"},
    503: {"description": "the hub has no WMS secret configured"},
})
def receive_wms_event(body: WmsEventIn, hub: HubDep, signed: SignedWms) -> JSONResponse:
    """Take a signed pick, pack, ship, in-transit, delivered or exception event from the warehouse. It
    moves the order along its fulfillment (accepted, in fulfillment, partially shipped, shipped) and shows
    carrier and tracking number with the order's shipments. An event that names no known order is kept in
    a ``fulfillment_discrepancy`` case, never dropped."""
    report = WmsReport(
        event_id=body.event_id, kind=body.type, order_id=body.order_id, reference=body.reference,
        occurred_at=body.occurred_at.astimezone(dt.UTC), shipment_ref=body.shipment_ref,
        lines=tuple((x.line_no, x.quantity) for x in body.lines), carrier=body.carrier,
        tracking_number=body.tracking_number, detail=body.detail)
    principal = signed.principal
    try:
        with hub.uow() as uow:
            receipt = receive(uow, report, source=principal.channel, body_sha256=signed.body_sha256,
                              account_id=principal.account_id, key_id=principal.key_id)
    except Conflict as exc:
        _attempt(hub, principal, signed.body_sha256, "event_id_reused", event_id=body.event_id, detail=str(exc))
        raise Problem(409, "Conflict", str(exc)) from exc
    if receipt.status == "accepted":
        hub.worker.wake()
    ack = WmsEventAck(event_id=receipt.event_id, status="accepted" if receipt.status == "accepted" else "duplicate",
                      order_id=receipt.order_id)
    return JSONResponse(ack.model_dump(mode="json"), status_code=202 if receipt.status == "accepted" else 200)
