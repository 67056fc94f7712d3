"""training jobs: room for the method ``supervised+preference`` (21 characters) in ``training_jobs.method``

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.alter_column("method", existing_type=sa.String(length=20), type_=sa.String(length=32))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.alter_column("method", existing_type=sa.String(length=32), type_=sa.String(length=20))
