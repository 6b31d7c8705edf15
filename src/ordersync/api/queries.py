"""Read side for the APIs: plain queries over the store, no domain objects (reads bypass the domain)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from ordersync.store.schema import cases, order_transitions, orders


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
            "quantity": line["quantity"],
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
    }
