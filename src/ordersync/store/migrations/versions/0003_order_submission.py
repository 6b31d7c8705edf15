"""Order submission: idempotency keys and exception cases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("account_id", sa.String(120)),
        sa.Column("owner_team", sa.String(64), nullable=False),
        sa.Column("owner_level", sa.Integer, nullable=False),
        sa.Column("due_at", UtcDateTime),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("dead_letter_id", sa.String(64)),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_index("ix_cases_state_type", "cases", ["state", "type"])
    op.create_index("ix_cases_order", "cases", ["order_id"])


def downgrade() -> None:
    op.drop_table("cases")
    op.drop_table("idempotency_keys")
