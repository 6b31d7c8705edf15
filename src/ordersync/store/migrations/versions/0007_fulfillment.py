"""Fulfillment and invoicing: WMS and carrier events, webhook attempts, invoice disputes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

from ordersync.store.schema import UtcDateTime  # noqa: F401

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # tables come with the flow that needs them


def downgrade() -> None:
    pass
