"""ERP integration: account routing, sync watermarks, change de-duplication.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_routes",
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_account_routes"),
    )
    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sync_state"),
    )
    op.create_table(
        "erp_changes",
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("erp", "key", "version", name="pk_erp_changes"),
    )
    op.create_index("ix_erp_changes_seen_at", "erp_changes", ["seen_at"])


def downgrade() -> None:
    op.drop_table("erp_changes")
    op.drop_table("sync_state")
    op.drop_table("account_routes")
