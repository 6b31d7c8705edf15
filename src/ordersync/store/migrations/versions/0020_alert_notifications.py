"""Alert notifications: one row per alert (a case escalated to a level, an SLA clock past a level) and
channel, so that each is sent once, a failed send is retried with backoff, and a restart sends nothing
again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("last_error", sa.String(1000)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime),
        sa.Column("digest_key", sa.String(200)),
        sa.UniqueConstraint("key", "channel", name="uq_alert_notifications_key"),
    )
    op.create_index("ix_alert_notifications_due", "alert_notifications", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_notifications_due", "alert_notifications")
    op.drop_table("alert_notifications")
