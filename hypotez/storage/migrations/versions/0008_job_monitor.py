"""job monitor: the trainer's own start time and finish estimate, the status message's chart and refresh state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00.000000

Existing jobs get no start time (the monitor then counts from when the job was created) and a chart of 0
points (re-uploaded at their next update).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hypotez.storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trainer_started_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("estimated_finish_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("chart_points", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("chart_posted_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("refreshed_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("refreshed_at")
        batch_op.drop_column("chart_posted_at")
        batch_op.drop_column("chart_points")
        batch_op.drop_column("estimated_finish_at")
        batch_op.drop_column("trainer_started_at")
