"""Database tables.

Discord snowflakes are ``BigInteger``.  JSON columns hold the exact payloads that produced a row (the messages
sent to a model, job metrics), so every training example can be traced back to its origin.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = [
    "ArenaMatch",
    "ArenaVote",
    "AuditEntry",
    "Base",
    "BotReply",
    "Cooldown",
    "Correction",
    "Dataset",
    "DatasetExample",
    "EvaluationRun",
    "Feedback",
    "GuildSettings",
    "JobEvent",
    "JobExample",
    "JobState",
    "RegisteredModel",
    "ReplyMessage",
    "TrainingJob",
    "Transcript",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use hypotez.storage.models.utcnow()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same everywhere."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this mapping as is
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: UTCDateTime(),
    }


Snowflake = BigInteger


class GuildSettings(Base):
    """Per-guild (``channel_id == 0``) or per-channel settings: active model, system prompt, role grants."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(Snowflake, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, default=0)
    active_model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    capability_roles: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Voice messages posted here are transcribed automatically (``None``: inherit; off by default).
    voice_transcribe: Mapped[bool | None] = mapped_column(Boolean)
    #: Transcribed voice messages are answered by the chat model.
    voice_answer: Mapped[bool | None] = mapped_column(Boolean)
    #: Chat replies are also spoken in the voice channel the bot is in.
    voice_speak: Mapped[bool | None] = mapped_column(Boolean)
    # Review policy (guild scope only, ``channel_id == 0``); ``None`` keeps the default.
    #: Approvals an item needs before it becomes training data (default 1).
    review_approvals: Mapped[int | None] = mapped_column(Integer)
    #: Role ids whose members' corrections and ratings are approved on arrival.
    review_trusted_roles: Mapped[list[Any] | None] = mapped_column(JSON)
    #: Whether a curator may approve their own correction (default no).
    review_self_approval: Mapped[bool | None] = mapped_column(Boolean)
    #: Where each new item is posted with its review buttons.
    review_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BotReply(Base):
    """One answer the bot gave, with the exact conversation that produced it."""

    __tablename__ = "bot_replies"
    __table_args__ = (Index("ix_bot_replies_channel_author", "channel_id", "author_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    channel_id: Mapped[int] = mapped_column(Snowflake)
    message_id: Mapped[int | None] = mapped_column(Snowflake, unique=True)
    interaction_id: Mapped[int | None] = mapped_column(Snowflake)
    author_id: Mapped[int] = mapped_column(Snowflake)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("bot_replies.id", ondelete="SET NULL"))
    backend: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    prompt_messages: Mapped[list[Any]] = mapped_column()
    content: Mapped[str] = mapped_column(Text)
    #: The member's message that this reply answers (the last turn of ``prompt_messages``).
    user_text: Mapped[str] = mapped_column(Text, default="")
    #: "messages" when the reply was posted as text, "file" when it was too long and sent as an attachment.
    delivery: Mapped[str] = mapped_column(String(10), default="messages")
    #: ``ok``, ``empty`` (the model answered nothing) or ``failed`` (the backend failed): stored all the same, so
    #: members can correct the answer the model could not give.
    outcome: Mapped[str] = mapped_column(String(10), default="ok")
    #: Answered to ``/chat private:true`` (only its author saw it): never context for anyone else's turn.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ReplyMessage(Base):
    """A Discord message carrying (part of) a reply: long replies are split across several."""

    __tablename__ = "reply_messages"

    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    reply_id: Mapped[int] = mapped_column(ForeignKey("bot_replies.id", ondelete="CASCADE"), index=True)
    part: Mapped[int] = mapped_column(Integer, default=0)
    #: Offsets of this part's text in the reply's content.
    start: Mapped[int] = mapped_column(Integer, default=0)
    end: Mapped[int] = mapped_column(Integer, default=0)


class Correction(Base):
    """A member's corrected version of a reply; one per (reply, author)."""

    __tablename__ = "corrections"
    __table_args__ = (UniqueConstraint("reply_id", "author_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("bot_replies.id", ondelete="CASCADE"), index=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    channel_id: Mapped[int] = mapped_column(Snowflake)
    author_id: Mapped[int] = mapped_column(Snowflake)
    context: Mapped[list[Any]] = mapped_column()
    original_text: Mapped[str] = mapped_column(Text)
    corrected_text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(30), default="modal")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Feedback(Base):
    """A rating of a reply (thumbs: -1/+1) or general feedback (1-5 with text)."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_guild_created", "guild_id", "created_at"),
        # One thumb and one rating per member per reply (general feedback, without a reply, is not limited).
        UniqueConstraint("reply_id", "author_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("bot_replies.id", ondelete="SET NULL"))
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    channel_id: Mapped[int | None] = mapped_column(Snowflake)
    author_id: Mapped[int] = mapped_column(Snowflake)
    kind: Mapped[str] = mapped_column(String(20))  # "thumbs" | "rating"
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewKind(enum.StrEnum):
    #: A member's correction of a reply: a chat example and a preference pair once approved.
    CORRECTION = "correction"
    #: A rating of a reply (👍/👎 or 1-5): the reply as a positive or negative example once approved.
    RATING = "rating"
    #: A low rating without a correction, sent to curators so that someone writes the right answer.
    NEEDS_CORRECTION = "needs_correction"
    #: A member's vote in a blind arena match: a preference pair (the answer they chose over the other) once
    #: approved.
    ARENA = "arena"


class ReviewItem(Base):
    """Something members made that would become training data, waiting for (or decided by) the server's
    curators."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_guild_status", "guild_id", "status", "id"),
        UniqueConstraint("kind", "correction_id", name="uq_review_items_kind_correction_id"),
        UniqueConstraint("kind", "feedback_id", name="uq_review_items_kind_feedback_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    kind: Mapped[str] = mapped_column(String(20))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("bot_replies.id", ondelete="CASCADE"), index=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id", ondelete="CASCADE"))
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"))
    #: Who made it (the correction's or the rating's author).
    author_id: Mapped[int] = mapped_column(Snowflake)
    status: Mapped[str] = mapped_column(String(10), default=ReviewStatus.PENDING.value)
    #: Why it was decided as it was (a rejection's reason; "trusted role" for automatic approvals).
    reason: Mapped[str | None] = mapped_column(Text)
    #: The review channel's message showing it, when the server has a review channel.
    posted_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    posted_message_id: Mapped[int | None] = mapped_column(Snowflake)
    #: Whether the author has been told what became of it.
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()


class ReviewVote(Base):
    """One curator's decision on an item (a curator changing their mind replaces it)."""

    __tablename__ = "review_votes"
    __table_args__ = (UniqueConstraint("item_id", "curator_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"), index=True)
    curator_id: Mapped[int] = mapped_column(Snowflake)
    #: ``approve`` or ``reject``.
    vote: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    #: A curator's edit of the correction (approving the edited text).
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MemberPreferences(Base):
    """What a member chose for themselves, everywhere they use the bot: a direct message when a curator decides
    on what they made; the model that answers them by default (where that model may be used) and whether
    ``/chat`` answers them privately by default (``None``: no choice, the server's or the bot's default)."""

    __tablename__ = "member_preferences"

    user_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    review_dm: Mapped[bool] = mapped_column(Boolean, default=False)
    chat_model: Mapped[str | None] = mapped_column(String(300))
    private_replies: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dataset(Base):
    """A named, versioned set of training examples."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("guild_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, default=0)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(Snowflake)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[dt.datetime | None] = mapped_column()


class DatasetExample(Base):
    """One example: a chat (``messages``) or a preference pair (``messages`` + preferred/rejected)."""

    __tablename__ = "dataset_examples"
    __table_args__ = (UniqueConstraint("dataset_id", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "chat" | "preference"
    label: Mapped[str] = mapped_column(String(10), default="positive")  # "positive" | "negative"
    origin: Mapped[str] = mapped_column(String(20))  # upload | directory | correction | feedback
    source_ref: Mapped[str | None] = mapped_column(String(300))
    messages: Mapped[list[Any]] = mapped_column()
    preferred: Mapped[str | None] = mapped_column(Text)
    rejected: Mapped[str | None] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class JobState(enum.StrEnum):
    """A job's life: pending → validating → queued → running → succeeded | failed | cancelled."""

    PENDING = "pending"
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


#: The states of a job that has not finished (see :class:`JobState`).
ACTIVE_JOB = "status IN ('pending', 'validating', 'queued', 'running')"


class TrainingJob(Base):
    """A fine-tuning job, persisted so it is polled and resumed across restarts."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        # At most one unfinished job per identical request, across every process sharing the database.
        Index(
            "uq_training_jobs_active_request",
            "request_hash",
            unique=True,
            sqlite_where=text(ACTIVE_JOB),
            postgresql_where=text(ACTIVE_JOB),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    requested_by: Mapped[int] = mapped_column(Snowflake)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    #: Hash of what was asked (trainer, base model, data, hyperparameters): an identical request while this
    #: job is unfinished returns this job instead of starting another.
    request_hash: Mapped[str] = mapped_column(String(64), index=True, default="")
    trainer: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30), default="pending", index=True)
    #: supervised, preference or supervised+preference.
    method: Mapped[str] = mapped_column(String(32), default="supervised")
    base_model: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result_model: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(Text)
    status_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    status_message_id: Mapped[int | None] = mapped_column(Snowflake)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    #: When the trainer itself started running the job, by its clock (elapsed and remaining count from it).
    trainer_started_at: Mapped[dt.datetime | None] = mapped_column()
    #: The trainer's own estimate of when the job finishes, where it gives one.
    estimated_finish_at: Mapped[dt.datetime | None] = mapped_column()
    #: The loss chart on the status message: how many points it holds and when it was uploaded (it is
    #: re-uploaded only when points were added, at most every ``job_chart_interval_s``).
    chart_points: Mapped[int] = mapped_column(Integer, default=0)
    chart_posted_at: Mapped[dt.datetime | None] = mapped_column()
    #: The last Refresh press that refreshed the job (presses soon after it do nothing heavy).
    refreshed_at: Mapped[dt.datetime | None] = mapped_column()


class JobEvent(Base):
    """An event or metrics record of a training job."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RegisteredModel(Base):
    """A chat model the bot can switch to: a base model or the result of a training job."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("guild_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, default=0)
    name: Mapped[str] = mapped_column(String(300))
    backend: Mapped[str] = mapped_column(String(30))  # "openai" | "local"
    origin: Mapped[str] = mapped_column(String(30))  # "base" | "fine-tune"
    base_model: Mapped[str | None] = mapped_column(String(300))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Transcript(Base):
    """A transcription of an audio attachment or voice message."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("message_id", "attachment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    channel_id: Mapped[int | None] = mapped_column(Snowflake)
    message_id: Mapped[int | None] = mapped_column(Snowflake)
    attachment_id: Mapped[int | None] = mapped_column(Snowflake)
    author_id: Mapped[int | None] = mapped_column(Snowflake)
    language: Mapped[str | None] = mapped_column(String(10))
    language_probability: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    #: ``[[start_s, end_s, text], ...]``
    segments: Mapped[list[Any]] = mapped_column(default=list)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    model: Mapped[str] = mapped_column(String(200))
    #: How long recognition took.
    elapsed_ms: Mapped[int] = mapped_column(Integer, default=0)
    #: ``auto`` (a voice message in an enabled channel), ``menu`` (Transcribe), ``command`` (/transcribe).
    source: Mapped[str] = mapped_column(String(20), default="command")
    #: Who asked for it (the author for automatic transcriptions).
    requested_by: Mapped[int | None] = mapped_column(Snowflake)
    #: The bot's message showing the transcript (what "Correct this transcript" is used on).
    reply_message_id: Mapped[int | None] = mapped_column(Snowflake, unique=True)
    #: The audio, relative to the guild's area of the data directory (kept for the speech dataset).
    audio_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TranscriptCorrection(Base):
    """A member's corrected text of a transcript, kept with the transcript's audio; one per (transcript, author)."""

    __tablename__ = "transcript_corrections"
    __table_args__ = (UniqueConstraint("transcript_id", "author_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"), index=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    author_id: Mapped[int] = mapped_column(Snowflake)
    original_text: Mapped[str] = mapped_column(Text)
    corrected_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class VocabularyTerm(Base):
    """A name or word a server's members corrected in transcripts (or a curator added): passed to the recogniser
    on that server's later transcriptions."""

    __tablename__ = "vocabulary_terms"
    __table_args__ = (UniqueConstraint("guild_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, index=True)
    #: The term's casefolded form, for uniqueness.
    key: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(100))
    uses: Mapped[int] = mapped_column(Integer, default=1)
    #: ``correction`` or ``manual``.
    source: Mapped[str] = mapped_column(String(20), default="correction")
    added_by: Mapped[int | None] = mapped_column(Snowflake)
    last_used: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who did what: model switches, dataset and file operations, training jobs."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_guild_created", "guild_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    actor_id: Mapped[int | None] = mapped_column(Snowflake)
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Cooldown(Base):
    """One cooldown counter: how many uses ``key`` (``<kind>:<member|server>:<id>``) made in the window that
    started at ``window_start``.  Kept in the database so replicas sharing it count together."""

    __tablename__ = "cooldowns"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ArenaMatch(Base):
    """A blind match: two models answered the same message, shown to members as A and B without their names.

    Which model is A was drawn at random when the match started (so names cannot be read from the position); the
    match closes after a number of votes or hours (the settings), and its names are then shown to everyone."""

    __tablename__ = "arena_matches"
    __table_args__ = (Index("ix_arena_matches_guild_id", "guild_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(Snowflake)
    channel_id: Mapped[int] = mapped_column(Snowflake)
    #: Who started it.
    author_id: Mapped[int] = mapped_column(Snowflake)
    #: The public message showing the two answers and the vote buttons.
    message_id: Mapped[int | None] = mapped_column(Snowflake)
    #: The exact messages both models were sent (system prompt and the member's message).
    prompt_messages: Mapped[list[Any]] = mapped_column()
    user_text: Mapped[str] = mapped_column(Text)
    model_a: Mapped[str] = mapped_column(String(300))
    model_b: Mapped[str] = mapped_column(String(300))
    answer_a: Mapped[str] = mapped_column(Text)
    answer_b: Mapped[str] = mapped_column(Text)
    #: Votes are taken until then (or until the match has the votes that close it).
    closes_at: Mapped[dt.datetime] = mapped_column()
    #: Set when the match closed: its names are public from then on.
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ArenaVote(Base):
    """One member's vote on a match (one per member and match; final once cast): ``a``, ``b`` or ``tie``."""

    __tablename__ = "arena_votes"
    __table_args__ = (UniqueConstraint("match_id", "voter_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("arena_matches.id", ondelete="CASCADE"), index=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, index=True)
    voter_id: Mapped[int] = mapped_column(Snowflake)
    choice: Mapped[str] = mapped_column(String(4))
    #: The vote's item in the review queue: its preference pair reaches the ``arena`` dataset once approved (a tie
    #: has none).
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id", ondelete="SET NULL"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class JobExample(Base):
    """One example a training job was given, in the trainer's format, and the part it went to: ``train`` or
    ``validation`` (held out).  Kept so the job's model can be evaluated on what it never saw (generalisation)
    apart from what it learned from (memorisation)."""

    __tablename__ = "job_examples"
    __table_args__ = (Index("ix_job_examples_job_split", "job_id", "split", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(10))  # "train" | "validation"
    position: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column()


class EvaluationRun(Base):
    """One ``/test run`` or ``/test compare``: what was evaluated, how it was scored, the summary and every case
    (judge scores and reasons included); the report file holds the same cases."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (Index("ix_evaluation_runs_guild_created", "guild_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    requested_by: Mapped[int] = mapped_column(Snowflake)
    kind: Mapped[str] = mapped_column(String(20))  # "run" | "compare"
    model: Mapped[str] = mapped_column(String(300))
    #: The training job whose stored examples were evaluated, if any.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", ondelete="SET NULL"))
    scorer: Mapped[str] = mapped_column(String(20), default="match")  # "match" | "judge"
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cases: Mapped[list[Any]] = mapped_column(default=list)
    report_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
