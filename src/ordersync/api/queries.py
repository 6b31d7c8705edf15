"""Read side for the APIs: plain queries over the store, no domain objects (reads bypass the domain)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from ordersync.api.pagination import older_than
from ordersync.canonical.v1 import Invoice, Shipment
from ordersync.flows.disputes import disputed_invoice_ids
from ordersync.flows.fulfillment import fulfillment_record, fulfillment_times, shipments_with_tracking
from ordersync.store.schema import cases, invoices, order_transitions, orders, return_requests, shipments


def order_view(conn: Connection, order_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
    if row is None:
        return None
    body = json.loads(row["body"])
    data = json.loads(row["data"])
    history = [
        {"from": r["from_state"], "to": r["to_state"], "at": r["at"].isoformat(), "cause": r["cause"]}
        for r in conn.execute(
            select(order_transitions).where(order_transitions.c.order_id == order_id).order_by(order_transitions.c.id)
        ).mappings()
    ]
    case_rows = conn.execute(select(cases.c.body).where(cases.c.order_id == order_id).order_by(cases.c.opened_at))
    priced = data.get("lines", {})
    allocations = data.get("allocations", [])
    lines = []
    for line in body["lines"]:
        key = str(line["line_no"])
        p = priced.get(key, {})
        lines.append({
            "line_no": line["line_no"],
            "sku": p.get("sku") or line.get("sku"),
            "customer_part_number": line.get("customer_part_number"),
            "quantity": p.get("quantity") or line["quantity"],  # as amended
            "cancelled": bool(p.get("cancelled")),
            "unit_price": p.get("unit_price"),
            "contract_unit_price": p.get("contract_unit_price"),
            "adjustments": p.get("adjustments", []),
            "unit_price_shown": line.get("unit_price_shown"),
            "allocations": [
                {"plant": a["plant"], "quantity": a["quantity"], "promised_date": a["promised_date"],
                 "backorder": a["backorder"]}
                for a in allocations if a["line_no"] == line["line_no"]
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
        "total": data.get("total"),
        "currency": body.get("currency"),
        "erp": data.get("erp"),
        "erp_orders": [
            {"reference": ref, **info} for ref, info in sorted(data.get("erp_orders", {}).items())
        ],
        "partial": any(a["backorder"] for a in allocations),
        "rejection": data.get("rejection", []),
        "hold": data.get("hold"),
        "lines": lines,
        "history": history,
        "cases": [json.loads(b) for b in case_rows.scalars()],
        "shipments": shipments_with_tracking(shipments_of(conn, order_id), fulfillment_record(conn, order_id)),
        "invoices": [{**invoice_view(i), "disputed": i.id in disputed} for i in invoices_of(conn, order_id)],
        "fulfillment": fulfillment_times(data),  # SLA timestamps (flows/fulfillment.py)
    }


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
                                o.body, o.data).where(o.account_id == f.account_id)
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
    data = json.loads(r["data"])
    return {"id": r["id"], "channel": r["channel"], "external_order_number": r["external_order_number"],
            "buyer_po_number": body.get("buyer_po_number"), "state": r["state"], "received_at": r["received_at"],
            "updated_at": r["updated_at"], "total": data.get("total"), "currency": body.get("currency"),
            "partial": any(a["backorder"] for a in data.get("allocations", []))}


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
