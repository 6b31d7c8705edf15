"""Reconciliation findings: each discrepancy between the hub and the ERP (or a channel) under its stable
key, with its sides and the case it opened, so that running reconciliation again never opens a second case.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_findings",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("case_id", sa.String(64)),
        sa.Column("diffs", sa.Text, nullable=False),
        sa.Column("first_seen_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_reconcile_findings_case", "reconcile_findings", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_reconcile_findings_case", table_name="reconcile_findings")
    op.drop_table("reconcile_findings")
