"""Outbound event subscriptions and their deliveries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

from ordersync.store.schema import UtcDateTime  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # tables come with the flow that needs them


def downgrade() -> None:
    pass
