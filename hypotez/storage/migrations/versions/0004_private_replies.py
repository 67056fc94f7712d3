"""private replies: whether a reply answered ``/chat private:true`` (only its author saw it)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

Existing replies were public: the column gets a server default of false, so rows from 0003 migrate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bot_replies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("bot_replies", schema=None) as batch_op:
        batch_op.drop_column("private")
