"""People: staff and buyers who sign in (a password hash and/or an OpenID Connect identity), their roles
and account, invitations, and a session epoch that ends every session of a person at once.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ordersync.store.schema import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(120)),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("oidc_issuer", sa.String(300)),
        sa.Column("oidc_subject", sa.String(300)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("invited_by", sa.String(254)),
        sa.Column("invite_hash", sa.String(64)),
        sa.Column("invite_expires", UtcDateTime),
        sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("last_signin_at", UtcDateTime),
        sa.UniqueConstraint("email", name="uq_people_email"),
        sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_people_oidc"),
    )
    op.create_index("ix_people_account", "people", ["account_id"])
    op.create_index("ix_people_invite", "people", ["invite_hash"])


def downgrade() -> None:
    op.drop_table("people")
