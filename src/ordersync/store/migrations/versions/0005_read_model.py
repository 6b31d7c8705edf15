"""Read model for the experience API: contract prices, stock per plant and catalogs, as last read from
the ERP, each with the time the ERP's answer describes (``as_of``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rm_stock",
        sa.Column("sku", sa.String(120), nullable=False),
        sa.Column("plant", sa.String(64), nullable=False),
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("as_of", UtcDateTime, nullable=False),
        sa.Column("refreshed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("sku", "plant", name="pk_rm_stock"),
    )
    op.create_index("ix_rm_stock_refreshed_at", "rm_stock", ["refreshed_at"])
    op.create_table(
        "rm_prices",
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("sku", sa.String(120), nullable=False),
        sa.Column("quantity", sa.String(40), nullable=False),
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("as_of", UtcDateTime, nullable=False),
        sa.Column("refreshed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "sku", "quantity", name="pk_rm_prices"),
    )
    op.create_index("ix_rm_prices_refreshed_at", "rm_prices", ["refreshed_at"])
    op.create_table(
        "rm_catalogs",
        sa.Column("account_id", sa.String(120), nullable=False),
        sa.Column("erp", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("as_of", UtcDateTime, nullable=False),
        sa.Column("refreshed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_rm_catalogs"),
    )


def downgrade() -> None:
    op.drop_table("rm_catalogs")
    op.drop_index("ix_rm_prices_refreshed_at", table_name="rm_prices")
    op.drop_table("rm_prices")
    op.drop_index("ix_rm_stock_refreshed_at", table_name="rm_stock")
    op.drop_table("rm_stock")
