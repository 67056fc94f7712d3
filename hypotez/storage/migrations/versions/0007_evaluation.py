"""evaluation: held-out examples of training jobs and judge scores

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:00:00.000000

``job_examples`` keeps the examples each training job was given and the part (train or validation) each went to;
``evaluation_runs`` keeps every ``/test`` run: its summary and its cases, judge scores and reasons included.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hypotez.storage.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_examples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["training_jobs.id"], name=op.f("fk_job_examples_job_id_training_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_examples")),
    )
    with op.batch_alter_table("job_examples", schema=None) as batch_op:
        batch_op.create_index("ix_job_examples_job_split", ["job_id", "split", "position"], unique=False)

    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("requested_by", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("scorer", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("report_path", sa.String(length=500), nullable=True),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["training_jobs.id"], name=op.f("fk_evaluation_runs_job_id_training_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_runs")),
    )
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.create_index("ix_evaluation_runs_guild_created", ["guild_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_runs_guild_created")
    op.drop_table("evaluation_runs")
    with op.batch_alter_table("job_examples", schema=None) as batch_op:
        batch_op.drop_index("ix_job_examples_job_split")
    op.drop_table("job_examples")
