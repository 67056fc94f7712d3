"""arena: blind side-by-side matches of two models and the votes members cast

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hypotez.storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "arena_matches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("prompt_messages", sa.JSON(), nullable=False),
        sa.Column("user_text", sa.Text(), nullable=False),
        sa.Column("model_a", sa.String(length=300), nullable=False),
        sa.Column("model_b", sa.String(length=300), nullable=False),
        sa.Column("answer_a", sa.Text(), nullable=False),
        sa.Column("answer_b", sa.Text(), nullable=False),
        sa.Column("closes_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_matches")),
    )
    with op.batch_alter_table("arena_matches", schema=None) as batch_op:
        batch_op.create_index("ix_arena_matches_guild_id", ["guild_id", "id"], unique=False)

    op.create_table(
        "arena_votes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("match_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("voter_id", sa.BigInteger(), nullable=False),
        sa.Column("choice", sa.String(length=4), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["match_id"], ["arena_matches.id"], name=op.f("fk_arena_votes_match_id_arena_matches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["review_item_id"],
            ["review_items.id"],
            name=op.f("fk_arena_votes_review_item_id_review_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_votes")),
        sa.UniqueConstraint("match_id", "voter_id", name=op.f("uq_arena_votes_match_id")),
        sa.UniqueConstraint("review_item_id", name=op.f("uq_arena_votes_review_item_id")),
    )
    with op.batch_alter_table("arena_votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_arena_votes_guild_id"), ["guild_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_arena_votes_match_id"), ["match_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("arena_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_arena_votes_match_id"))
        batch_op.drop_index(batch_op.f("ix_arena_votes_guild_id"))
    op.drop_table("arena_votes")
    with op.batch_alter_table("arena_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_arena_matches_guild_id")
    op.drop_table("arena_matches")
