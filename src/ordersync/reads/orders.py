"""The read side of orders for the experience API and the pages: plain queries over the store, no
aggregate and no decisions (reads bypass the domain; the order's stored parts are parsed with their
typed model, :class:`~ordersync.domain.order.parts.OrderParts`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from ordersync.canonical.v1 import CaseState, Invoice, Shipment
from ordersync.domain.fulfillment import FulfillmentRecord
from ordersync.domain.order.parts import OrderParts, load_parts
from ordersync.reads.pages import older_than
from ordersync.store.schema import (
    cases,
    erp_returns,
    inbound_webhook_attempts,
    invoice_disputes,
    invoices,
    order_fulfillment,
    order_transitions,
    orders,
    outbox,
    return_requests,
    shipments,
)
from ordersync.telemetry.tracing import trace_id_of


def order_view(conn: Connection, order_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
    if row is None:
        return None
    body = json.loads(row["body"])
    parts = load_parts(row["data"])
    history = [
        {"from": r["from_state"], "to": r["to_state"], "at": r["at"].isoformat(), "cause": r["cause"]}
        for r in conn.execute(
            select(order_transitions).where(order_transitions.c.order_id == order_id).order_by(order_transitions.c.id)
        ).mappings()
    ]
    case_rows = conn.execute(select(cases.c.body).where(cases.c.order_id == order_id).order_by(cases.c.opened_at))
    priced = {x.line_no: x for x in parts.lines}
    lines = []
    for line in body["lines"]:
        p = priced.get(line["line_no"])
        lines.append({
            "line_no": line["line_no"],
            "sku": (p.sku if p else None) or line.get("sku"),
            "customer_part_number": line.get("customer_part_number"),
            "quantity": str(p.quantity) if p else line["quantity"],  # as amended
            "cancelled": bool(p and p.cancelled),
            "unit_price": str(p.unit_price) if p else None,
            "contract_unit_price": str(p.contract_unit_price) if p else None,
            "adjustments": [a.model_dump(mode="json") for a in p.adjustments] if p else [],
            "unit_price_shown": line.get("unit_price_shown"),
            "allocations": [
                {"plant": a.plant, "quantity": str(a.quantity), "promised_date": a.promised_date.isoformat(),
                 "backorder": a.backorder}
                for a in parts.allocations if a.line_no == line["line_no"]
            ],
        })
    disputed = disputed_invoice_ids(conn, order_id=order_id)
    return {
        "id": row["id"],
        "channel": row["channel"],
        "external_order_number": row["external_order_number"],
        "account_id": row["account_id"],
        "buyer_po_number": body.get("buyer_po_number"),
        "ship_to_id": body.get("ship_to_id"),
        "state": row["state"],
        "received_at": row["received_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "total": row["total"],
        "currency": body.get("currency"),
        "erp": parts.erp,
        "erp_orders": [
            {"reference": e.reference, "outcome": e.outcome.value, "number": e.number, "id": e.id,
             "message": e.message, "reconciled": e.reconciled}
            for e in sorted(parts.erp_orders, key=lambda e: e.reference)
        ],
        "partial": parts.is_backordered,
        "rejection": [r.as_dict() for r in parts.rejection],
        "hold": {"case_id": parts.hold.case_id, "type": parts.hold.type.value, "reason": parts.hold.reason}
        if parts.hold is not None else None,
        "lines": lines,
        "history": history,
        "cases": [json.loads(b) for b in case_rows.scalars()],
        "shipments": shipments_with_tracking(shipments_of(conn, order_id), fulfillment_record(conn, order_id)),
        "invoices": [{**invoice_view(i), "disputed": i.id in disputed} for i in invoices_of(conn, order_id)],
        "fulfillment": fulfillment_times(parts),
        **trace_ids(conn, order_id),
    }


def trace_ids(conn: Connection, order_id: str) -> dict[str, Any]:
    """The traces the order's events were written in (tracing on, see docs/observability.md): ``trace_id``
    is its intake's (the first event's), ``traces`` every one in event order (a later change made through
    the API, an ERP change noticed by the poller, start traces of their own). Read from the outbox, so
    events pruned by retention no longer name theirs."""
    found: list[str] = []
    ob = outbox.c
    for body in conn.execute(select(ob.body).where(ob.correlation_id == order_id, ob.body.contains('"traceparent"'))
                             .order_by(ob.seq)).scalars():
        trace_id = trace_id_of(_traceparent(body))
        if trace_id and trace_id not in found:
            found.append(trace_id)
    return {"trace_id": found[0] if found else None, "traces": found}


def _traceparent(body: str) -> str | None:
    try:
        value = json.loads(body).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def fulfillment_times(parts: OrderParts) -> dict[str, str | None]:
    """The order's fulfillment and invoicing SLA timestamps (``flows/handlers/fulfillment.py``)."""
    return {key: _iso(at) for key, at in parts.fulfillment.times().items()}


def _iso(at: dt.datetime | None) -> str | None:
    return at.astimezone(dt.UTC).isoformat() if at is not None else None


def fulfillment_record(conn: Connection, order_id: str) -> FulfillmentRecord:
    body = conn.execute(select(order_fulfillment.c.body).where(order_fulfillment.c.order_id == order_id)
                        ).scalar_one_or_none()
    return FulfillmentRecord.model_validate_json(body) if body else FulfillmentRecord()


def shipments_with_tracking(erp_shipments: list[dict[str, Any]], f: FulfillmentRecord) -> list[dict[str, Any]]:
    """The ERP's shipments of an order (as the document projection keeps them) with what the warehouse
    and carriers reported: a WMS shipment whose ``shipment_ref`` names an ERP shipment (its id or number)
    adds its carrier, tracking number and ``carrier_status`` to it; any other is listed on its own with
    ``source: "wms"``."""
    reported = {k: s for k, s in f.shipments.items() if s.source == "wms"}
    numbers = {s.id: s.erp_ref for s in f.shipments.values() if s.source == "erp"}
    out = []
    for s in erp_shipments:
        names = {s["id"], numbers.get(s["id"])} - {None, ""}
        match = next((k for k, w in reported.items() if w.shipment_ref in names), None)
        wms = reported.pop(match) if match else None
        out.append({**s, "source": "erp", "carrier": s.get("carrier") or (wms.carrier if wms else None),
                    "tracking_number": s.get("tracking_number") or (wms.tracking_number if wms else None),
                    "carrier_status": wms.state.value if wms else None,
                    "delivered_at": s.get("delivered_at") or (_iso(wms.delivered_at) if wms else None)})
    for key, w in sorted(reported.items()):
        out.append({"id": key, "source": "wms", "plant": "", "state": w.state.value, "carrier": w.carrier,
                    "tracking_number": w.tracking_number, "carrier_status": w.state.value,
                    "shipped_at": _iso(w.shipped_at), "delivered_at": _iso(w.delivered_at),
                    "lines": [{"line_no": n, "sku": None, "quantity": str(q)} for n, q in w.lines.items()]})
    return out


def disputed_invoice_ids(conn: Connection, *, account_id: str | None = None, order_id: str | None = None,
                         invoice_ids: Iterable[str] | None = None) -> set[str]:
    """Ids of invoices with an open dispute, within an account and/or an order."""
    d = invoice_disputes.c
    query = select(d.invoice_id).join(cases, cases.c.id == d.case_id).where(
        cases.c.state != CaseState.RESOLVED.value)
    if account_id is not None:
        query = query.where(d.account_id == account_id)
    if order_id is not None:
        query = query.where(d.order_id == order_id)
    if invoice_ids is not None:
        query = query.where(d.invoice_id.in_(list(invoice_ids)))
    return set(conn.execute(query).scalars())


# -- shipments and invoices (projections of ERP changes) ---------------------------------------------

def shipments_of(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(shipments.c.body).where(shipments.c.order_id == order_id)
                        .order_by(shipments.c.first_seen_at, shipments.c.erp, shipments.c.shipment_id))
    out = []
    for body in rows.scalars():
        s = Shipment.model_validate_json(body)
        out.append({"id": s.id, "plant": s.plant, "state": s.state.value, "carrier": s.carrier,
                    "tracking_number": s.tracking_number,
                    "shipped_at": s.shipped_at.isoformat() if s.shipped_at else None,
                    "delivered_at": s.delivered_at.isoformat() if s.delivered_at else None,
                    "lines": [{"line_no": x.line_no, "sku": x.sku, "quantity": str(x.quantity)} for x in s.lines]})
    return out


def invoices_of(conn: Connection, order_id: str) -> list[Invoice]:
    rows = conn.execute(select(invoices.c.body).where(invoices.c.order_id == order_id)
                        .order_by(invoices.c.issued_at, invoices.c.erp, invoices.c.invoice_id))
    return [Invoice.model_validate_json(body) for body in rows.scalars()]


def invoice_view(i: Invoice) -> dict[str, Any]:
    return {"id": i.id, "number": i.number, "order_id": i.order_id, "state": i.state.value, "currency": i.currency,
            "untaxed_amount": str(i.untaxed_amount), "tax_amount": str(i.tax_amount),
            "total_amount": str(i.total_amount), "due_date": i.due_date.isoformat() if i.due_date else None,
            "posted_at": i.posted_at.isoformat() if i.posted_at else None}


# -- lists (keyset pagination, newest first) ----------------------------------------------------------

@dataclass(frozen=True)
class OrderFilter:
    account_id: str
    state: str | None = None
    channel: str | None = None
    external_order_number: str | None = None
    buyer_po_number: str | None = None
    received_from: dt.datetime | None = None  # inclusive
    received_before: dt.datetime | None = None  # exclusive


def _buyer_po(conn: Connection) -> ColumnElement[Any]:
    """The buyer's PO number inside the order body as received (no column of its own: it is searched
    within one account's orders, which the account index narrows first)."""
    if conn.dialect.name == "postgresql":
        text: ColumnElement[Any] = cast(orders.c.body, JSONB)["buyer_po_number"].astext
        return text
    return func.json_extract(orders.c.body, "$.buyer_po_number")


def order_summaries(conn: Connection, f: OrderFilter, limit: int, after: list[Any] | None) -> list[dict[str, Any]]:
    """Up to ``limit`` orders of the account, newest first, after the cursor key (received_at, id)."""
    o = orders.c
    query: Select[Any] = select(o.id, o.channel, o.external_order_number, o.state, o.received_at, o.updated_at,
                                o.body, o.total, o.backordered).where(o.account_id == f.account_id)
    for column, value in ((o.state, f.state), (o.channel, f.channel),
                          (o.external_order_number, f.external_order_number)):
        if value is not None:
            query = query.where(column == value)
    if f.buyer_po_number is not None:
        query = query.where(_buyer_po(conn) == f.buyer_po_number)
    if f.received_from is not None:
        query = query.where(o.received_at >= f.received_from)
    if f.received_before is not None:
        query = query.where(o.received_at < f.received_before)
    if after is not None:
        query = query.where(older_than([o.received_at, o.id], after))
    query = query.order_by(o.received_at.desc(), o.id.desc()).limit(limit)
    return [_summary(r) for r in conn.execute(query).mappings()]


def _summary(r: Any) -> dict[str, Any]:
    body = json.loads(r["body"])
    return {"id": r["id"], "channel": r["channel"], "external_order_number": r["external_order_number"],
            "buyer_po_number": body.get("buyer_po_number"), "state": r["state"], "received_at": r["received_at"],
            "updated_at": r["updated_at"], "total": r["total"], "currency": body.get("currency"),
            "partial": bool(r["backordered"])}


def invoice_page(conn: Connection, account_id: str, *, state: str | None, order_id: str | None, limit: int,
                 after: list[Any] | None) -> list[tuple[Invoice, list[Any]]]:
    """Up to ``limit`` invoices of the account, newest first, each with its cursor key."""
    i = invoices.c
    key = [i.issued_at, i.erp, i.invoice_id]
    query = select(i.body, *key).where(i.account_id == account_id)
    if state is not None:
        query = query.where(i.state == state)
    if order_id is not None:
        query = query.where(i.order_id == order_id)
    if after is not None:
        query = query.where(older_than(key, after))
    rows = conn.execute(query.order_by(*(c.desc() for c in key)).limit(limit))
    return [(Invoice.model_validate_json(r[0]), list(r[1:])) for r in rows]


def return_view(conn: Connection, return_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(return_requests.c.body).where(return_requests.c.id == return_id)).scalar_one_or_none()
    return json.loads(row) if row is not None else None


def erp_returns_of(conn: Connection, return_id: str) -> list[dict[str, Any]]:
    """The ERP returns a return request became (one per plant)."""
    rows = conn.execute(select(erp_returns.c.plant, erp_returns.c.reference, erp_returns.c.number,
                               erp_returns.c.state).where(erp_returns.c.return_id == return_id)
                        .order_by(erp_returns.c.plant, erp_returns.c.reference))
    return [dict(r) for r in rows.mappings()]


def webhook_attempts(conn: Connection, source: str = "wms", limit: int = 100) -> list[dict[str, object]]:
    """An inbound webhook's calls, the newest first (for operators and tests)."""
    t = inbound_webhook_attempts
    rows = conn.execute(select(t).where(t.c.source == source).order_by(t.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]
