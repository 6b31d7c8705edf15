"""Core runtime: orders and their transitions, outbox, deliveries, inbox, dead letters, counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("external_order_number", sa.String(120), nullable=False),
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("held_from", sa.String(32)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("channel", "external_order_number", name="uq_orders_business_key"),
    )
    op.create_index("ix_orders_account_state", "orders", ["account_id", "state"])
    op.create_index("ix_orders_state_updated", "orders", ["state", "updated_at"])

    op.create_table(
        "order_transitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_transitions"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_transitions_order_id_orders"),
    )
    op.create_index("ix_order_transitions_order", "order_transitions", ["order_id", "id"])

    op.create_table(
        "outbox",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(120), nullable=False),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("published_at", UtcDateTime),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index("ix_outbox_correlation", "outbox", ["correlation_id", "seq"])

    op.create_table(
        "deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(120), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("seq", sa.BigInteger),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("history", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["consumer", "next_attempt_at", "id"])
    op.create_index("ix_deliveries_key", "deliveries", ["consumer", "correlation_id", "id"])

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(120), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger),
        sa.Column("processed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_inbox"),
    )

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("consumer", sa.String(120), nullable=False),
        sa.Column("message_id", sa.String(64)),
        sa.Column("type", sa.String(120)),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("seq", sa.BigInteger),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("history", sa.Text, nullable=False),
        sa.Column("dead_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("replayed_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_status_dead_at", "dead_letters", ["status", "dead_at"])
    op.create_index("ix_dead_letters_correlation", "dead_letters", ["correlation_id"])

    op.create_table(
        "order_counters",
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_order_counters"),
    )


def downgrade() -> None:
    for table in ("order_counters", "dead_letters", "inbox", "deliveries", "outbox", "order_transitions", "orders"):
        op.drop_table(table)
