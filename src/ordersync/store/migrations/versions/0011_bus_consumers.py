"""Broker-independent delivery bookkeeping for the NATS transport and gap repair.

``bus_consumers``: every subscribed consumer, the first outbox sequence it is responsible for
(``since_seq``) and the low-water mark below which it has processed everything (``low_seq``).
``delivery_attempts``: attempts, history and the next attempt time of a message a consumer failed
on (the broker only counts deliveries), and how often gap repair republished it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bus_consumers",
        sa.Column("consumer", sa.String(120), primary_key=True),
        sa.Column("since_seq", sa.BigInteger, nullable=False),
        sa.Column("low_seq", sa.BigInteger, nullable=False),
        sa.Column("registered_at", UtcDateTime, nullable=False),
        sa.Column("checked_at", UtcDateTime),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("consumer", sa.String(120), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("history", sa.Text, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("repairs", sa.Integer, nullable=False),
        sa.Column("repaired_at", UtcDateTime),
    )
    op.create_index("ix_dead_letters_consumer_message", "dead_letters", ["consumer", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_consumer_message", table_name="dead_letters")
    op.drop_table("delivery_attempts")
    op.drop_table("bus_consumers")
