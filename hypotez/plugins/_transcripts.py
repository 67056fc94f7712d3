"""Transcripts as members point at them: by the id a button carries, by the message showing them; and storing a
member's correction of one (the "Correct this transcript" box and ``/correct`` share it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypotez.errors import NotFoundError
from hypotez.plugins._replies import visible_to

if TYPE_CHECKING:
    from hypotez.permissions import Caller
    from hypotez.storage.models import Transcript
    from hypotez.storage.repositories import AuditLog, TranscriptRepository
    from hypotez.voice.transcripts import Transcripts

__all__ = ["correct_transcript", "owned_transcript", "store_transcript_correction", "transcript_on_message"]


async def owned_transcript(transcripts: TranscriptRepository, transcript_id: int, caller: Caller) -> Transcript:
    """A transcript the caller could see: same server, or in a DM the same channel (or their own request)."""
    row = await transcripts.get(transcript_id)
    if row is None or not visible_to(caller, row.guild_id, row.channel_id, row.requested_by):
        raise NotFoundError("transcript", transcript_id, "That transcript no longer exists here.")
    return row


async def transcript_on_message(transcripts: TranscriptRepository, message_id: int, caller: Caller) -> Transcript:
    row = await transcripts.by_message(message_id)
    if row is None:
        raise NotFoundError(
            "transcript",
            message_id,
            "That message is not a transcript of mine here. Use this on the bot's transcript of a recording.",
        )
    return await owned_transcript(transcripts, row.id, caller)


async def store_transcript_correction(
    service: Transcripts, audit: AuditLog, row: Transcript, text: str, *, author_id: int, source: str
) -> str:
    result = await service.correct(row, author_id=author_id, text=text)
    await audit.record(
        "transcript.correct" if result.created else "transcript.recorrect",
        guild_id=row.guild_id,
        actor_id=author_id,
        target=f"transcript:{row.id}",
        details={"source": source, "learned": list(result.learned)},
    )
    verb = "saved" if result.created else "updated (it replaces your earlier one)"
    learned = (
        f" Added to this server's vocabulary: {', '.join(f'**{t}**' for t in result.learned)}."
        if result.learned
        else ""
    )
    where = " It joins this server's speech dataset (`/dataset speech`)." if row.guild_id is not None else ""
    return f"✅ Transcript correction {verb}.{learned}{where}"


async def correct_transcript(
    transcript_id: int,
    text: str,
    *,
    caller: Caller,
    transcripts: TranscriptRepository,
    service: Transcripts,
    audit: AuditLog,
    source: str,
) -> str:
    """Correct a transcript the caller can see; returns the acknowledgement."""
    row = await owned_transcript(transcripts, transcript_id, caller)
    return await store_transcript_correction(service, audit, row, text, author_id=caller.user_id, source=source)
