"""Contracts: how inbound payloads drifted from their schemas (counted per source, field and kind) and
the payloads that could not be processed, kept with their reason until they are replayed.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payload_drift",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("field", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("expected", sa.String(120), nullable=False),
        sa.Column("seen", sa.String(20), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.Column("sample", sa.Text, nullable=False),
        sa.Column("case_id", sa.String(64)),
    )
    op.create_table(
        "quarantined_payloads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("replayed_at", UtcDateTime),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("case_id", sa.String(64)),
        sa.UniqueConstraint("source", "body_sha256", name="uq_quarantined_payloads_source_body"),
    )
    op.create_index("ix_quarantined_payloads_status_received", "quarantined_payloads", ["status", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_quarantined_payloads_status_received", table_name="quarantined_payloads")
    op.drop_table("quarantined_payloads")
    op.drop_table("payload_drift")
