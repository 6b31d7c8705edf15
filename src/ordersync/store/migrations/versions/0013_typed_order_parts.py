"""The order's parts become typed: every order's ``data`` document takes the layout of
``ordersync.domain.order.parts`` (shape 2), and the order gets ``total`` and ``backordered`` columns for
the read side and the backorder-promise check (which searched the JSON text before).

What changes in ``data`` (shape 1 had no marker):

- ``lines``: a list ordered by line number instead of an object keyed by the line number's text; the
  derived ``amount`` is no longer stored (the ``total`` column and the aggregate compute it);
- ``total``: moves to its column;
- ``hold``: keeps case, type and reason and gains ``interrupted`` (the state the hold interrupted, the
  ``held_from`` column); a hold left on an order that is not on hold is dropped;
- ``erp_orders``: a list of ``{"reference": ..., "outcome": ..., ...}`` in submission order instead of
  an object keyed by the reference;
- the SLA stamps (``in_fulfillment_at`` ... ``invoiced_at``) move under ``fulfillment`` beside its
  ``invoices``;
- ``erp_promised``, ``backorder_revisions`` (``from``/``to`` now ``previous``/``revised``) and
  ``backorder_overdue`` become ``backorders.erp_promised``, ``.revisions`` and ``.overdue``.

The transformation is written out here on plain JSON (not with the domain's models, which will change
again) and runs in batches; ``downgrade`` writes shape 1 back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SHAPE = 2
STAMPS = ("in_fulfillment_at", "first_shipped_at", "shipped_at", "delivered_at", "invoice_posted_at",
          "invoice_visible_at", "invoiced_at")
BATCH = 500

orders = sa.table(
    "orders",
    sa.column("id", sa.String),
    sa.column("state", sa.String),
    sa.column("held_from", sa.String),
    sa.column("data", sa.Text),
    sa.column("total", sa.String),
    sa.column("backordered", sa.Boolean),
)


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN on both databases (SQLite's batch mode would copy the table, which the
    # foreign keys of order_transitions and return_requests refuse)
    op.add_column("orders", sa.Column("total", sa.String(40)))
    op.add_column("orders", sa.Column("backordered", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_orders_backordered_state", "orders", ["backordered", "state"])
    _rewrite(lambda row: _to_shape_2(json.loads(row.data), row.state, row.held_from))


def downgrade() -> None:
    _rewrite(lambda row: (_to_shape_1(json.loads(row.data)), None, False))
    op.drop_index("ix_orders_backordered_state", table_name="orders")
    for column in ("backordered", "total"):  # SQLite 3.35+ drops a column in place, as PostgreSQL does
        op.execute(f"ALTER TABLE orders DROP COLUMN {column}")


def _rewrite(convert: Callable[[Any], tuple[dict[str, Any], str | None, bool]]) -> None:
    conn = op.get_bind()
    update = (sa.update(orders).where(orders.c.id == sa.bindparam("order_id"))
              .values(data=sa.bindparam("new_data"), total=sa.bindparam("new_total"),
                      backordered=sa.bindparam("new_backordered")))
    after = ""
    while True:
        rows = conn.execute(sa.select(orders.c.id, orders.c.state, orders.c.held_from, orders.c.data)
                            .where(orders.c.id > after).order_by(orders.c.id).limit(BATCH)).all()
        if not rows:
            return
        params = []
        for row in rows:
            data, total, backordered = convert(row)
            params.append({"order_id": row.id, "new_data": json.dumps(data, separators=(",", ":")),
                           "new_total": total, "new_backordered": backordered})
        conn.execute(update, params)
        after = rows[-1].id


def _to_shape_2(old: dict[str, Any], state: str, held_from: str | None) -> tuple[dict[str, Any], str | None, bool]:
    if old.get("shape") == SHAPE:  # already converted (a migration run that was interrupted and repeated)
        allocations = old.get("allocations", [])
        return old, _total(old.get("lines", [])), any(a.get("backorder") for a in allocations)
    new: dict[str, Any] = {"shape": SHAPE}
    for key in ("erp", "ship_to_region", "credit", "allocations", "rejection", "amendments"):
        if old.get(key) not in (None, [], {}):
            new[key] = old[key]
    if old.get("credit_approved"):
        new["credit_approved"] = True
    lines = []
    for key, line in sorted(old.get("lines", {}).items(), key=lambda kv: int(kv[0])):
        entry = {"line_no": int(key), **{k: v for k, v in line.items() if k != "amount"}}
        if not entry.get("cancelled"):
            entry.pop("cancelled", None)
        lines.append(entry)
    if lines:
        new["lines"] = lines
    hold = old.get("hold")
    if hold and state == "on_hold" and held_from:
        new["hold"] = {"case_id": hold["case_id"], "type": hold["type"], "reason": hold["reason"],
                       "interrupted": held_from}
    erp_orders = [{"reference": ref, **info} for ref, info in old.get("erp_orders", {}).items()]
    if erp_orders:
        new["erp_orders"] = erp_orders
    fulfillment = {key: old[key] for key in STAMPS if old.get(key)}
    invoices = old.get("fulfillment", {}).get("invoices", {})
    if invoices:
        fulfillment["invoices"] = invoices
    if fulfillment:
        new["fulfillment"] = fulfillment
    backorders: dict[str, Any] = {}
    if old.get("erp_promised"):
        backorders["erp_promised"] = old["erp_promised"]
    if old.get("backorder_revisions"):
        backorders["revisions"] = [{"at": r["at"], "line_no": r["line_no"], "plant": r["plant"],
                                    "previous": r["from"], "revised": r["to"]} for r in old["backorder_revisions"]]
    if old.get("backorder_overdue"):
        backorders["overdue"] = old["backorder_overdue"]
    if backorders:
        new["backorders"] = backorders
    total = old.get("total") if "total" in old else _total(lines)
    return new, total, any(a.get("backorder") for a in old.get("allocations", []))


def _total(lines: list[dict[str, Any]]) -> str | None:
    if not lines:
        return None
    return str(sum((_amount(line) for line in lines), Decimal(0)))


def _amount(line: dict[str, Any]) -> Decimal:
    return (Decimal(line["unit_price"]) * Decimal(line["quantity"])).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _to_shape_1(new: dict[str, Any]) -> dict[str, Any]:
    if new.get("shape") != SHAPE:
        return new
    old: dict[str, Any] = {}
    for key in ("erp", "ship_to_region", "credit", "allocations", "rejection", "amendments"):
        if key in new:
            old[key] = new[key]
    if new.get("credit_approved"):
        old["credit_approved"] = True
    lines = new.get("lines", [])
    if lines:
        old["lines"] = {str(line["line_no"]): {**{k: v for k, v in line.items() if k != "line_no"},
                                               "amount": str(_amount(line))} for line in lines}
        old["total"] = _total(lines)
    if new.get("hold"):
        old["hold"] = {k: new["hold"][k] for k in ("case_id", "type", "reason")}
    if new.get("erp_orders"):
        old["erp_orders"] = {e["reference"]: {k: v for k, v in e.items() if k != "reference"}
                             for e in new["erp_orders"]}
    fulfillment = new.get("fulfillment", {})
    for key in STAMPS:
        if fulfillment.get(key):
            old[key] = fulfillment[key]
    if fulfillment.get("invoices"):
        old["fulfillment"] = {"invoices": fulfillment["invoices"]}
    backorders = new.get("backorders", {})
    if "erp_promised" in backorders:
        old["erp_promised"] = backorders["erp_promised"]
    if backorders.get("revisions"):
        old["backorder_revisions"] = [{"at": r["at"], "line_no": r["line_no"], "plant": r["plant"],
                                       "from": r["previous"], "to": r["revised"]} for r in backorders["revisions"]]
    if backorders.get("overdue"):
        old["backorder_overdue"] = backorders["overdue"]
    return old
