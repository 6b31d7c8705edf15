"""Returns created in the ERP: one row per ERP return (plant) of a return request.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erp_returns",
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("return_id", sa.String(64), nullable=False),
        sa.Column("plant", sa.String(64), nullable=False),
        sa.Column("erp_return_id", sa.String(120)),
        sa.Column("number", sa.String(120)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("erp", "reference", name="pk_erp_returns"),
        sa.ForeignKeyConstraint(["return_id"], ["return_requests.id"],
                                name="fk_erp_returns_return_id_return_requests"),
    )
    op.create_index("ix_erp_returns_return", "erp_returns", ["return_id"])


def downgrade() -> None:
    op.drop_index("ix_erp_returns_return", table_name="erp_returns")
    op.drop_table("erp_returns")
