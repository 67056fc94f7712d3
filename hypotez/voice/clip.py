"""An audio clip: what speech synthesis produces and a voice transport plays, independent of both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AudioClip", "AudioFormat"]

#: Container formats a clip may be in: edge-tts gives mp3, espeak-ng wav, Discord voice messages ogg/opus.
AudioFormat = Literal["mp3", "wav", "ogg"]


@dataclass(frozen=True, slots=True)
class AudioClip:
    """Encoded audio in memory.

    ``engine`` names what made it (``edge-tts``, ``espeak-ng``, ``upload``...), ``duration_s`` is its length.
    """

    data: bytes
    format: AudioFormat
    duration_s: float
    engine: str = ""

    @property
    def filename(self) -> str:
        """A file name for attaching the clip to a message."""
        return f"speech.{self.format}"

    @property
    def mime_type(self) -> str:
        return {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}[self.format]
