"""voice: transcripts in full, their corrections, vocabulary, voice settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:48:12.132578

Columns added to existing tables that cannot be null get server defaults, so rows from 0001 migrate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hypotez.storage.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vocabulary_terms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=100), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False, server_default="command"),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("last_used", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vocabulary_terms")),
        sa.UniqueConstraint("guild_id", "key", name=op.f("uq_vocabulary_terms_guild_id")),
    )
    with op.batch_alter_table("vocabulary_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vocabulary_terms_guild_id"), ["guild_id"], unique=False)

    op.create_table(
        "transcript_corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("original_text", sa.Text(), nullable=False),
        sa.Column("corrected_text", sa.Text(), nullable=False),
        sa.Column("created_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hypotez.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transcript_id"],
            ["transcripts.id"],
            name=op.f("fk_transcript_corrections_transcript_id_transcripts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_corrections")),
        sa.UniqueConstraint("transcript_id", "author_id", name=op.f("uq_transcript_corrections_transcript_id")),
    )
    with op.batch_alter_table("transcript_corrections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transcript_corrections_transcript_id"), ["transcript_id"], unique=False)

    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voice_transcribe", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("voice_answer", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("voice_speak", sa.Boolean(), nullable=True))

    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language_probability", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("segments", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("elapsed_ms", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("source", sa.String(length=20), nullable=False, server_default="command"))
        batch_op.add_column(sa.Column("requested_by", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("reply_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("audio_path", sa.String(length=500), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_transcripts_reply_message_id"), ["reply_message_id"])


def downgrade() -> None:
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_transcripts_reply_message_id"), type_="unique")
        batch_op.drop_column("audio_path")
        batch_op.drop_column("reply_message_id")
        batch_op.drop_column("requested_by")
        batch_op.drop_column("source")
        batch_op.drop_column("elapsed_ms")
        batch_op.drop_column("segments")
        batch_op.drop_column("language_probability")

    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("voice_speak")
        batch_op.drop_column("voice_answer")
        batch_op.drop_column("voice_transcribe")

    with op.batch_alter_table("transcript_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcript_corrections_transcript_id"))

    op.drop_table("transcript_corrections")
    with op.batch_alter_table("vocabulary_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vocabulary_terms_guild_id"))

    op.drop_table("vocabulary_terms")
