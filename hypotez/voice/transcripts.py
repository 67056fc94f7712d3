"""Transcripts that teach the bot: recognition with the server's vocabulary, the transcript and its audio stored,
corrections that grow the vocabulary, and the speech dataset built from corrected transcripts.

No Discord here: the plugins hand in bytes and ids, the CLI could too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypotez.errors import InvalidInputError
from hypotez.storage.files import EXPORTS, safe_filename
from hypotez.storage.files.speech import SpeechSample, write_speech_dataset
from hypotez.storage.models import Transcript, utcnow
from hypotez.voice import vocabulary

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from hypotez.storage.files import DataDirectory
    from hypotez.storage.models import TranscriptCorrection
    from hypotez.storage.repositories import TranscriptRepository, VocabularyRepository
    from hypotez.voice.stt import Progress, Transcriber, Transcription

__all__ = ["AUDIO_AREA", "CorrectionResult", "SpeechExport", "Transcripts"]

_LOGGER = logging.getLogger(__name__)

#: A guild's kept recordings, ``guilds/<guild id>/audio/<transcript id>.<ext>``.
AUDIO_AREA = "audio"
_EXTENSION = re.compile(r"^[a-z0-9]{1,5}$")


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    correction: TranscriptCorrection
    created: bool
    #: Terms this correction added to (or reinforced in) the server's vocabulary.
    learned: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpeechExport:
    path: Path
    written: int
    #: Transcripts left out (their recording is gone, or in a format the audiofolder layout cannot hold).
    skipped: tuple[int, ...]


def _extension(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return suffix if _EXTENSION.match(suffix) else "audio"


class Transcripts:
    """Transcribe with a server's vocabulary, keep what was heard (and the audio, in servers), learn from
    corrections."""

    def __init__(
        self,
        transcriber: Transcriber,
        transcripts: TranscriptRepository,
        terms: VocabularyRepository,
        data_dir: DataDirectory,
        *,
        vocabulary_size: int,
    ) -> None:
        self.transcriber = transcriber
        self.repository = transcripts
        self._terms = terms
        self._data_dir = data_dir
        self._vocabulary_size = vocabulary_size

    async def vocabulary(self, guild_id: int | None) -> list[vocabulary.Term]:
        if guild_id is None:
            return []
        return [vocabulary.Term(t.text, t.uses, t.last_used) for t in await self._terms.terms(guild_id)]

    async def transcribe(
        self,
        audio: bytes,
        *,
        filename: str,
        guild_id: int | None,
        channel_id: int | None,
        message_id: int | None,
        attachment_id: int | None,
        author_id: int | None,
        requested_by: int,
        source: str,
        language: str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> tuple[Transcript, Transcription]:
        """Recognise ``audio`` with the server's vocabulary as hints, store the transcript and (in a server) the
        audio; returns both."""
        terms = await self.vocabulary(guild_id)
        result = await self.transcriber.transcribe(
            audio,
            language=language,
            hotwords=vocabulary.hotwords(terms),
            initial_prompt=vocabulary.initial_prompt(terms),
            on_progress=on_progress,
        )
        row = await self.repository.add(
            Transcript(
                guild_id=guild_id,
                channel_id=channel_id,
                message_id=message_id,
                attachment_id=attachment_id,
                author_id=author_id,
                language=result.language,
                language_probability=result.language_probability,
                text=result.text,
                segments=[[round(s.start, 3), round(s.end, 3), s.text] for s in result.segments],
                duration_s=result.duration_s,
                model=result.model,
                elapsed_ms=round(result.elapsed_s * 1000),
                source=source,
                requested_by=requested_by,
            )
        )
        if guild_id is not None:
            try:
                relative = await asyncio.to_thread(self._keep_audio, guild_id, row.id, audio, _extension(filename))
            except OSError as exc:  # the transcript stands without its audio; the speech dataset skips it
                _LOGGER.warning("could not keep the audio of transcript %s: %s", row.id, exc)
            else:
                await self.repository.set_audio(row.id, relative)
                row.audio_path = relative
        return row, result

    def _keep_audio(self, guild_id: int, transcript_id: int, audio: bytes, extension: str) -> str:
        area = self._data_dir.for_guild(guild_id)
        folder = area.area(AUDIO_AREA)
        path = folder / f"{transcript_id}.{extension}"
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(audio)
        partial.replace(path)
        return area.relative(path)

    async def correct(self, transcript: Transcript, *, author_id: int, text: str) -> CorrectionResult:
        """Store ``author_id``'s corrected text and add the names and words they fixed to the server's
        vocabulary (used on the server's next transcriptions)."""
        text = text.strip()
        if not text:
            raise InvalidInputError("A corrected transcript cannot be empty.")
        if text == transcript.text.strip():
            raise InvalidInputError("The correction is the same as the transcript: nothing to store.")
        correction, created = await self.repository.correct(transcript, author_id=author_id, text=text)
        learned: list[str] = []
        if transcript.guild_id is not None:
            learned = vocabulary.corrected_terms(transcript.text, text)
            if learned:
                await self._learn(transcript.guild_id, learned, author_id=author_id)
        return CorrectionResult(correction, created, tuple(learned))

    async def _learn(self, guild_id: int, new_terms: list[str], *, author_id: int) -> None:
        merged = vocabulary.merge(await self.vocabulary(guild_id), new_terms, now=utcnow(), limit=self._vocabulary_size)
        await self._terms.replace(
            guild_id,
            [(t.text, t.uses, t.last_used) for t in merged],
            source="correction",
            added_by=author_id,
        )

    async def add_term(self, guild_id: int, raw: str, *, added_by: int) -> str:
        """A curator's term; refused when the vocabulary is full (remove one first)."""
        term = vocabulary.clean_term(raw)
        if len(await self._terms.terms(guild_id)) >= self._vocabulary_size:
            raise InvalidInputError(
                f"This server's vocabulary is full ({self._vocabulary_size} terms). Remove one with "
                "`/vocabulary remove` first."
            )
        if not await self._terms.add(guild_id, term, added_by=added_by):
            raise InvalidInputError(f"“{term}” is already in this server's vocabulary.")
        return term

    async def remove_term(self, guild_id: int, raw: str) -> str:
        term = raw.strip()
        if not await self._terms.remove(guild_id, term):
            raise InvalidInputError(f"“{term[:50]}” is not in this server's vocabulary.")
        return term

    async def export_speech_dataset(self, guild_id: int, *, name: str) -> SpeechExport:
        """The guild's corrected transcripts, paired with their audio, as a zip in the ``audiofolder`` layout
        (Hugging Face ``datasets`` loads it with an ``Audio`` column), under the guild's ``exports/``."""
        rows = await self.repository.corrected(guild_id)
        if not rows:
            raise InvalidInputError(
                "No corrected transcript with its recording yet: use “Correct this transcript” on a transcript "
                "first (recordings are kept for transcriptions made in this server)."
            )
        area = self._data_dir.for_guild(guild_id)
        samples = [
            SpeechSample(
                audio_path=area.root / row.transcript.audio_path,
                text=row.corrected_text,
                language=row.transcript.language,
                duration_s=row.transcript.duration_s,
                transcript_id=row.transcript.id,
                speaker=_speaker(guild_id, row.transcript.author_id),
            )
            for row in rows
            if row.transcript.audio_path
        ]
        stem = safe_filename(name, default="speech")

        def _write() -> SpeechExport:
            target = area.area(EXPORTS)
            result = write_speech_dataset(samples, target, name=stem)
            return SpeechExport(result.path, result.written, result.skipped)

        return await asyncio.to_thread(_write)


def _speaker(guild_id: int, author_id: int | None) -> str:
    """An opaque speaker id: the same member gets the same id within a server, and it names no one."""
    return hashlib.sha256(f"{guild_id}:{author_id or 0}".encode()).hexdigest()[:12]
