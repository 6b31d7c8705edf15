"""``POST /v1/wms/events``: the warehouse's signed webhook (the protocol is in ``flows/services/wms.py``).

Checks, in order: an API key of client ``wms`` with the ``fulfillment:write`` scope (401/403 as on every
route), then the HMAC-SHA256 signature over ``<timestamp>.<raw body>`` and the timestamp's age (401,
recorded in ``inbound_webhook_attempts`` with the reason; nothing is applied), then the event's shape.
A signed body is read against the event's schema (``docs/contracts.md``): fields we do not know are
recorded as drift of source ``wms.event`` and the event is processed; a body that cannot be processed (a
changed type on a field we need, a missing field, not JSON) is quarantined with the reason, answered 202
with status ``quarantined``, and replayed from ``/ops/drift`` or ``ordersync drift replay`` after a fix
(ADR 0021: the sender cannot fix the hub's side, so a 4xx would only make it retry or give up). An
accepted event answers 202; a redelivery of an event already taken answers 200 and changes nothing; an
``event_id`` reused with another body answers 409.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ordersync.api.auth import require
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal, Scope
from ordersync.api.params import IsoAwareDateTime
from ordersync.api.problems import Problem
from ordersync.domain.errors import Conflict
from ordersync.flows.services.wms import WmsReport, body_digest, receive, record_refusal, signature_problem
from ordersync.runtime.contracts import Unprocessable, observe, quarantine, register_replayer
from ordersync.runtime.hub import Hub

router = APIRouter(prefix="/v1", tags=["fulfillment"])

SOURCE = "wms"
#: the source's name in drift and quarantine
CONTRACT = "wms.event"
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


#: the schema a signed body is read against (drift is measured from it)
EVENT_SCHEMA = WmsEventIn.model_json_schema(mode="validation")


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` put in place (the body is read by hand, so FastAPI does not list its
    models among the document's components; the models are not recursive)."""
    defs = schema.get("$defs", {})

    def place(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return place(defs[str(node["$ref"]).rsplit("/", 1)[-1]])
            return {k: place(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [place(v) for v in node]
        return node

    placed: dict[str, Any] = place(schema)
    return placed


class WmsEventAck(BaseModel):
    event_id: str | None = Field(description="the event's id (null: a quarantined body that had none)")
    status: Literal["accepted", "duplicate", "quarantined"]
    order_id: str | None = Field(description="the hub order the event was matched to; null: none matched (a "
                                             "fulfillment_discrepancy case keeps the event) or quarantined")
    quarantine_id: str | None = Field(default=None, description="quarantined: the entry that keeps the body "
                                                               "until it is replayed")
    reason: str | None = Field(default=None, description="quarantined: why the event could not be processed")


@dataclass(frozen=True)
class Signed:
    principal: Principal
    body_sha256: str
    body: bytes


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
    return Signed(principal, digest, body)


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
}, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
    "schema": _inlined(EVENT_SCHEMA)}}}})
def receive_wms_event(hub: HubDep, signed: SignedWms) -> JSONResponse:
    """Take a signed pick, pack, ship, in-transit, delivered or exception event from the warehouse. It
    moves the order along its fulfillment (accepted, in fulfillment, partially shipped, shipped) and shows
    carrier and tracking number with the order's shipments. An event that names no known order is kept in
    a ``fulfillment_discrepancy`` case, never dropped. Fields the hub does not know are recorded as drift
    and the event is processed; an event the hub cannot process is quarantined (status ``quarantined``,
    with the reason) and replayed once the cause is fixed."""
    principal = signed.principal
    decoded, event, problem = _read(signed.body)
    context = {"channel": principal.channel, "account_id": principal.account_id, "key_id": principal.key_id}
    try:
        with hub.uow() as uow:
            if decoded is not None:  # a body that is not JSON at all is no drift, only unprocessable
                observe(uow, hub.workbench.policy, CONTRACT, EVENT_SCHEMA, decoded)
            if event is None:
                problem = problem or "unreadable"
                entry_id, _ = quarantine(uow, hub.workbench.policy, CONTRACT, signed.body, signed.body_sha256,
                                         context, problem)
                event_id = decoded.get("event_id") if isinstance(decoded, dict) else None
                uow.wms.record_attempt(source=principal.channel, at=uow.now(), outcome="quarantined",
                                       reason="unprocessable", key_id=principal.key_id,
                                       event_id=str(event_id)[:200] if event_id is not None else None,
                                       body_sha256=signed.body_sha256, detail=f"{entry_id}: {problem}"[:2000])
                ack = WmsEventAck(event_id=str(event_id) if event_id is not None else None, status="quarantined",
                                  order_id=None, quarantine_id=entry_id, reason=problem)
                return JSONResponse(ack.model_dump(mode="json"), status_code=202)
            receipt = receive(uow, _report(event), source=principal.channel, body_sha256=signed.body_sha256,
                              account_id=principal.account_id, key_id=principal.key_id)
    except Conflict as exc:
        _attempt(hub, principal, signed.body_sha256, "event_id_reused", event_id=event.event_id if event else None,
                 detail=str(exc))
        raise Problem(409, "Conflict", str(exc)) from exc
    if receipt.status == "accepted":
        hub.worker.wake()
    ack = WmsEventAck(event_id=receipt.event_id, status="accepted" if receipt.status == "accepted" else "duplicate",
                      order_id=receipt.order_id)
    return JSONResponse(ack.model_dump(mode="json", exclude={"quarantine_id", "reason"}),
                        status_code=202 if receipt.status == "accepted" else 200)


def _read(body: bytes) -> tuple[Any, WmsEventIn | None, str | None]:
    """The body as read: (the decoded JSON or None when it is not JSON, the event or None when it cannot
    be processed, the reason it cannot)."""
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        return None, None, f"the body is not JSON: {exc}"
    try:
        return decoded, WmsEventIn.model_validate(decoded), None
    except ValidationError as exc:
        return decoded, None, _problems(exc)


def _problems(exc: ValidationError) -> str:
    said = []
    for error in exc.errors(include_url=False):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        said.append(f"{where}: {error['msg']}")
    return "; ".join(said)


def _report(body: WmsEventIn) -> WmsReport:
    return WmsReport(
        event_id=body.event_id, kind=body.type, order_id=body.order_id, reference=body.reference,
        occurred_at=body.occurred_at.astimezone(dt.UTC), shipment_ref=body.shipment_ref,
        lines=tuple((x.line_no, x.quantity) for x in body.lines), carrier=body.carrier,
        tracking_number=body.tracking_number, detail=body.detail)


def replay_event(hub: Hub, body: bytes, context: dict[str, Any]) -> str:
    """Process a quarantined event's body (or its correction) as if it came now, as the key that sent it."""
    _, event, problem = _read(body)
    if event is None:
        raise Unprocessable(problem or "unreadable")
    try:
        with hub.uow() as uow:
            receipt = receive(uow, _report(event), source=context["channel"], body_sha256=body_digest(body),
                              account_id=context.get("account_id"), key_id=context.get("key_id"))
    except Conflict as exc:
        raise Unprocessable(str(exc)) from exc
    if receipt.status == "accepted":
        hub.worker.wake()
    return f"{receipt.status}: {event.type} event {event.event_id} for {receipt.order_id or 'an unknown order'}"


register_replayer(CONTRACT, replay_event)
