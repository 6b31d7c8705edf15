"""Order self-service: shipments and invoices of hub orders (projections of ERP changes), return
requests, and an index for order history per account.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("shipment_id", sa.String(120), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("first_seen_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("erp", "shipment_id", name="pk_shipments"),
    )
    op.create_index("ix_shipments_order", "shipments", ["order_id"])
    op.create_table(
        "invoices",
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(120), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("number", sa.String(120), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("issued_at", UtcDateTime, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("erp", "invoice_id", name="pk_invoices"),
    )
    op.create_index("ix_invoices_order", "invoices", ["order_id"])
    op.create_index("ix_invoices_account_issued", "invoices", ["account_id", "issued_at", "erp", "invoice_id"])
    op.create_table(
        "return_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_return_requests"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_return_requests_order_id_orders"),
    )
    op.create_index("ix_return_requests_order", "return_requests", ["order_id"])
    op.create_index("ix_orders_account_received", "orders", ["account_id", "received_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_account_received", table_name="orders")
    op.drop_table("return_requests")
    op.drop_table("invoices")
    op.drop_table("shipments")
