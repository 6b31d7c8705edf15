"""EDI: what an interchange answers or carries, sending with attempts and a lease, the partner's
acknowledgment of what we sent, and which purchase order each EDI order came from.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

def _columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("document", sa.String(8), nullable=False, server_default=""),
        sa.Column("reply_to", sa.String(64)),
        sa.Column("business_key", sa.String(160)),
        sa.Column("order_id", sa.String(64)),
        sa.Column("group_control", sa.String(20), nullable=False, server_default=""),
        sa.Column("set_control", sa.String(20), nullable=False, server_default=""),
        sa.Column("transport", sa.String(12), nullable=False, server_default=""),
        sa.Column("message_id", sa.String(250), nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("ack_state", sa.String(12), nullable=False, server_default=""),
        sa.Column("ack_due_at", UtcDateTime),
    ]


def upgrade() -> None:
    with op.batch_alter_table("edi_interchanges") as batch:
        for column in _columns():
            batch.add_column(column)
    op.create_index("ux_edi_interchanges_business_key", "edi_interchanges", ["business_key"], unique=True)
    op.create_index("ix_edi_interchanges_due", "edi_interchanges", ["direction", "state", "next_attempt_at"])
    op.create_index("ix_edi_interchanges_order", "edi_interchanges", ["order_id"])
    op.create_table(
        "edi_orders",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("po_number", sa.String(64), nullable=False),
        sa.Column("interchange_id", sa.String(64), nullable=False),
        sa.Column("set_control", sa.String(20), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_edi_orders"),
    )


def downgrade() -> None:
    op.drop_table("edi_orders")
    op.drop_index("ix_edi_interchanges_order", table_name="edi_interchanges")
    op.drop_index("ix_edi_interchanges_due", table_name="edi_interchanges")
    op.drop_index("ux_edi_interchanges_business_key", table_name="edi_interchanges")
    with op.batch_alter_table("edi_interchanges") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
