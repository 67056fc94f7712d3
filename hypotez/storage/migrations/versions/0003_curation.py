"""curation: the review queue, curators' votes, members' preferences, the review policy, reply outcomes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:30:24.724717
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hypotez.storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_preferences",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("review_dm", sa.Boolean(), nullable=False),
        sa.Column("updated_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_member_preferences")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("feedback_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("posted_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("posted_message_id", sa.BigInteger(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name=op.f("fk_review_items_correction_id_corrections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"], ["feedback.id"], name=op.f("fk_review_items_feedback_id_feedback"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reply_id"], ["bot_replies.id"], name=op.f("fk_review_items_reply_id_bot_replies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("kind", "correction_id", name=op.f("uq_review_items_kind_correction_id")),
        sa.UniqueConstraint("kind", "feedback_id", name=op.f("uq_review_items_kind_feedback_id")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index("ix_review_items_guild_status", ["guild_id", "status", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_items_reply_id"), ["reply_id"], unique=False)

    op.create_table(
        "review_votes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("curator_id", sa.BigInteger(), nullable=False),
        sa.Column("vote", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["review_items.id"], name=op.f("fk_review_votes_item_id_review_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_votes")),
        sa.UniqueConstraint("item_id", "curator_id", name=op.f("uq_review_votes_item_id")),
    )
    with op.batch_alter_table("review_votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_votes_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("bot_replies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=10), nullable=False, server_default="ok"))

    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_approvals", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("review_trusted_roles", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("review_self_approval", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("review_channel_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("review_channel_id")
        batch_op.drop_column("review_self_approval")
        batch_op.drop_column("review_trusted_roles")
        batch_op.drop_column("review_approvals")

    with op.batch_alter_table("bot_replies", schema=None) as batch_op:
        batch_op.drop_column("outcome")

    with op.batch_alter_table("review_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_votes_item_id"))

    op.drop_table("review_votes")
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_items_reply_id"))
        batch_op.drop_index("ix_review_items_guild_status")

    op.drop_table("review_items")
    op.drop_table("member_preferences")
