"""Worker heartbeats: each running worker process's id, host, pid, start, last beat and consumers, so
that ``/ready`` knows whether any worker is alive and which one went missing.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("beat_at", UtcDateTime, nullable=False),
        sa.Column("consumers", sa.Text, nullable=False),
        sa.Column("health_port", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
