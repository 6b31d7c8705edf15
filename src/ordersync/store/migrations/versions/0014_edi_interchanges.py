"""EDI: interchanges stored verbatim as received or sent, and control numbers per partner.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edi_interchanges",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("partner", sa.String(64)),
        sa.Column("sender", sa.String(40), nullable=False),
        sa.Column("receiver", sa.String(40), nullable=False),
        sa.Column("control_number", sa.String(20), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("processed_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_edi_interchanges"),
    )
    op.create_index("ix_edi_interchanges_sender_control", "edi_interchanges",
                    ["direction", "sender", "control_number"])
    op.create_index("ix_edi_interchanges_received_at", "edi_interchanges", ["received_at"])
    op.create_table(
        "edi_control_numbers",
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner", "kind", name="pk_edi_control_numbers"),
    )


def downgrade() -> None:
    op.drop_table("edi_control_numbers")
    op.drop_index("ix_edi_interchanges_received_at", table_name="edi_interchanges")
    op.drop_index("ix_edi_interchanges_sender_control", table_name="edi_interchanges")
    op.drop_table("edi_interchanges")
