"""Shopify B2B: webhook events kept before they are answered, refused deliveries, Shopify orders and
the hub order each became, outbound tasks, and the connector's links and watermarks.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shopify_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("shop", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("webhook_id", sa.String(120), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(120), nullable=False),
        sa.Column("triggered_at", UtcDateTime),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("processed_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_shopify_events"),
        sa.UniqueConstraint("shop", "event_id", name="uq_shopify_events_shop_event_id"),
    )
    op.create_index("ix_shopify_events_state", "shopify_events", ["state", "next_attempt_at"])
    op.create_table(
        "shopify_refused",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop_domain", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shopify_refused"),
    )
    op.create_table(
        "shopify_orders",
        sa.Column("shop", sa.String(64), nullable=False),
        sa.Column("shopify_id", sa.String(120), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(120)),
        sa.Column("updated_at", UtcDateTime),
        sa.Column("cancelled_at", UtcDateTime),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("shop", "shopify_id", name="pk_shopify_orders"),
    )
    op.create_index("ix_shopify_orders_order", "shopify_orders", ["order_id"])
    op.create_table(
        "shopify_tasks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("shop", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("business_key", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("done_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_shopify_tasks"),
        sa.UniqueConstraint("business_key", name="uq_shopify_tasks_business_key"),
    )
    op.create_index("ix_shopify_tasks_due", "shopify_tasks", ["state", "next_attempt_at"])
    op.create_table(
        "shopify_state",
        sa.Column("shop", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("shop", "kind", "key", name="pk_shopify_state"),
    )


def downgrade() -> None:
    op.drop_table("shopify_state")
    op.drop_index("ix_shopify_tasks_due", table_name="shopify_tasks")
    op.drop_table("shopify_tasks")
    op.drop_index("ix_shopify_orders_order", table_name="shopify_orders")
    op.drop_table("shopify_orders")
    op.drop_table("shopify_refused")
    op.drop_index("ix_shopify_events_state", table_name="shopify_events")
    op.drop_table("shopify_events")
