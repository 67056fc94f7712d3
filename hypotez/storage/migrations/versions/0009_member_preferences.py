"""member preferences: a member's own default model and private replies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("member_preferences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_model", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("private_replies", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("member_preferences", schema=None) as batch_op:
        batch_op.drop_column("private_replies")
        batch_op.drop_column("chat_model")
