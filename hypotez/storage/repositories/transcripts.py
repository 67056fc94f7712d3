"""Transcripts of audio, the bot messages that show them, and members' corrections of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from hypotez.storage.models import Transcript, TranscriptCorrection, utcnow

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["CorrectedTranscript", "TranscriptRepository"]


@dataclass(frozen=True, slots=True)
class CorrectedTranscript:
    """A transcript with the latest correction of it (what the speech dataset pairs with its audio)."""

    transcript: Transcript
    corrected_text: str
    corrected_by: int


class TranscriptRepository:
    """Transcripts, found by the message they transcribe or by the bot message showing them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, transcript: Transcript) -> Transcript:
        """Store a transcript; a second transcription of the same attachment replaces the first (text, segments,
        model), so retrying never fails on the unique (message, attachment) pair."""
        async with self._db.session() as session, session.begin():
            existing = None
            if transcript.message_id is not None:
                existing = await session.scalar(
                    select(Transcript).where(
                        Transcript.message_id == transcript.message_id,
                        Transcript.attachment_id == transcript.attachment_id,
                    )
                )
            if existing is None:
                session.add(transcript)
                await session.flush()
                return transcript
            for field in ("language", "language_probability", "text", "segments", "duration_s", "model"):
                setattr(existing, field, getattr(transcript, field))
            existing.elapsed_ms = transcript.elapsed_ms
            if transcript.audio_path:
                existing.audio_path = transcript.audio_path
            await session.flush()
            return existing

    async def get(self, transcript_id: int) -> Transcript | None:
        async with self._db.session() as session:
            return await session.get(Transcript, transcript_id)

    async def set_audio(self, transcript_id: int, audio_path: str) -> None:
        async with self._db.session() as session, session.begin():
            row = await session.get(Transcript, transcript_id)
            if row is not None:
                row.audio_path = audio_path

    async def set_reply_message(self, transcript_id: int, message_id: int) -> None:
        async with self._db.session() as session, session.begin():
            row = await session.get(Transcript, transcript_id)
            if row is not None:
                row.reply_message_id = message_id

    async def by_message(self, message_id: int) -> Transcript | None:
        """The transcript a message shows (the bot's reply) or transcribes (the voice message itself; its first
        attachment's when several)."""
        async with self._db.session() as session:
            return await session.scalar(
                select(Transcript)
                .where(or_(Transcript.reply_message_id == message_id, Transcript.message_id == message_id))
                .order_by(Transcript.id)
                .limit(1)
            )

    async def correct(self, transcript: Transcript, *, author_id: int, text: str) -> tuple[TranscriptCorrection, bool]:
        """Store (or replace) ``author_id``'s correction of ``transcript``; returns it and whether it is new."""
        for attempt in range(2):
            try:
                async with self._db.session() as session, session.begin():
                    row = await session.scalar(
                        select(TranscriptCorrection).where(
                            TranscriptCorrection.transcript_id == transcript.id,
                            TranscriptCorrection.author_id == author_id,
                        )
                    )
                    created = row is None
                    if row is None:
                        row = TranscriptCorrection(
                            transcript_id=transcript.id,
                            guild_id=transcript.guild_id,
                            author_id=author_id,
                            original_text=transcript.text,
                            corrected_text=text,
                        )
                        session.add(row)
                    else:
                        row.corrected_text = text
                        row.updated_at = utcnow()
                    await session.flush()
                    return row, created
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def correction_by(self, transcript_id: int, author_id: int) -> TranscriptCorrection | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(TranscriptCorrection).where(
                    TranscriptCorrection.transcript_id == transcript_id, TranscriptCorrection.author_id == author_id
                )
            )

    async def corrected(self, guild_id: int, *, limit: int = 10_000) -> list[CorrectedTranscript]:
        """The guild's corrected transcripts that kept their audio, each with its latest correction."""
        async with self._db.session() as session:
            latest = (
                select(TranscriptCorrection.transcript_id, func.max(TranscriptCorrection.updated_at).label("at"))
                .where(TranscriptCorrection.guild_id == guild_id)
                .group_by(TranscriptCorrection.transcript_id)
                .subquery()
            )
            rows = (
                await session.execute(
                    select(Transcript, TranscriptCorrection)
                    .join(TranscriptCorrection, TranscriptCorrection.transcript_id == Transcript.id)
                    .join(
                        latest,
                        (latest.c.transcript_id == TranscriptCorrection.transcript_id)
                        & (latest.c.at == TranscriptCorrection.updated_at),
                    )
                    .where(Transcript.guild_id == guild_id, Transcript.audio_path.is_not(None))
                    .order_by(Transcript.id)
                    .limit(limit)
                )
            ).all()
        seen: set[int] = set()
        result: list[CorrectedTranscript] = []
        for transcript, correction in rows:
            if transcript.id in seen:
                continue
            seen.add(transcript.id)
            result.append(CorrectedTranscript(transcript, correction.corrected_text, correction.author_id))
        return result

    async def counts(self, guild_id: int) -> tuple[int, int]:
        """(transcripts, corrected transcripts) in a guild."""
        async with self._db.session() as session:
            total = await session.scalar(
                select(func.count()).select_from(Transcript).where(Transcript.guild_id == guild_id)
            )
            corrected = await session.scalar(
                select(func.count(func.distinct(TranscriptCorrection.transcript_id))).where(
                    TranscriptCorrection.guild_id == guild_id
                )
            )
        return int(total or 0), int(corrected or 0)
