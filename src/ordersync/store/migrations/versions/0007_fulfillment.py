"""Fulfillment and invoicing: WMS and carrier events, webhook attempts, invoice disputes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wms_events",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_wms_events"),
    )
    op.create_table(
        "inbound_webhook_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("event_id", sa.String(200)),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_webhook_attempts"),
    )
    op.create_index("ix_inbound_webhook_attempts_received", "inbound_webhook_attempts", ["received_at"])
    op.create_table(
        "order_fulfillment",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_order_fulfillment"),
    )
    op.create_table(
        "fulfillment_problems",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_fulfillment_problems"),
    )
    op.create_table(
        "invoice_disputes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(120), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_disputes"),
    )
    op.create_index("ix_invoice_disputes_invoice", "invoice_disputes", ["erp", "invoice_id"])
    op.create_index("ix_invoice_disputes_account", "invoice_disputes", ["account_id", "invoice_id"])
    op.create_index("ix_invoice_disputes_order", "invoice_disputes", ["order_id"])


def downgrade() -> None:
    op.drop_table("invoice_disputes")
    op.drop_table("fulfillment_problems")
    op.drop_table("order_fulfillment")
    op.drop_table("inbound_webhook_attempts")
    op.drop_table("wms_events")
