"""Exception workbench and SLA clocks: indexes for case pages, the escalation check and SLA windows.

Cases, their history (in the case body) and order transitions exist since 0003; the workbench and
the SLA clocks read them, so this migration adds only the indexes their queries need.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_opened", "cases", ["opened_at", "id"])
    op.create_index("ix_cases_state_due", "cases", ["state", "due_at"])
    op.create_index("ix_orders_received", "orders", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_received", table_name="orders")
    op.drop_index("ix_cases_state_due", table_name="cases")
    op.drop_index("ix_cases_opened", table_name="cases")
