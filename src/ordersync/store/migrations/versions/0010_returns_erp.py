"""Returns created in the ERP.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

from ordersync.store.schema import UtcDateTime  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # tables come with the flow that needs them


def downgrade() -> None:
    pass
