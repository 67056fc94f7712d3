"""Shared by the voice plugins: audio attachments found and downloaded within limits, and replies spoken in the
voice channel the bot is in."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hikari

from hypotez.errors import InvalidInputError
from hypotez.storage.files import human_size
from hypotez.voice.audio import is_audio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.config import Settings
    from hypotez.voice.transport.sessions import VoiceSessions
    from hypotez.voice.tts import Speaker

__all__ = ["audio_attachments", "download_audio", "is_voice_message", "speak_reply"]

_LOGGER = logging.getLogger(__name__)


def is_voice_message(message: hikari.Message) -> bool:
    """A Discord voice message (recorded in the client; flag IS_VOICE_MESSAGE, one ogg/opus attachment)."""
    return bool(message.flags & hikari.MessageFlag.IS_VOICE_MESSAGE) and bool(message.attachments)


def audio_attachments(attachments: Sequence[hikari.Attachment]) -> list[hikari.Attachment]:
    """The attachments that are audio or video (by content type or extension)."""
    return [a for a in attachments if is_audio(a.filename, a.media_type)]


async def download_audio(attachment: hikari.Attachment, settings: Settings) -> bytes:
    """The attachment's bytes, refused before downloading when Discord says it is over the limit, and while
    downloading when it turns out larger."""
    limit = settings.voice_max_bytes
    name = attachment.filename[:100]
    if attachment.size > limit:
        raise InvalidInputError(
            f"`{name}` is {human_size(attachment.size)}; recordings up to {human_size(limit)} are transcribed "
            "(HYPOTEZ_VOICE_MAX_BYTES)."
        )
    received = bytearray()
    try:
        async with attachment.stream() as reader:
            async for chunk in reader:
                received += chunk
                if len(received) > limit:
                    raise InvalidInputError(f"`{name}` is larger than {human_size(limit)}; it was not transcribed.")
    except hikari.HikariError as exc:
        _LOGGER.warning("could not download attachment %s: %s", attachment.id, exc.__class__.__name__)
        raise InvalidInputError(f"`{name}` could not be downloaded from Discord; try again.") from exc
    return bytes(received)


async def speak_reply(
    sessions: VoiceSessions, speaker: Speaker, guild_id: int | None, text: str, settings: Settings
) -> str | None:
    """Speak ``text`` in the voice channel the bot is in on that server; returns a note for the member when it
    could not (``None`` when it was queued)."""
    if guild_id is None or sessions.channel_of(guild_id) is None:
        return "I am not in a voice channel here: use `/voice join` first."
    spoken = text if len(text) <= settings.tts_max_chars else text[: settings.tts_max_chars - 1] + "…"
    try:
        speech = await speaker.speak(spoken)
        await sessions.enqueue(guild_id, speech.clip)
    except InvalidInputError as exc:
        return exc.user_message
    return speech.fallback_reason
