"""Speech to text with faster-whisper: the model is loaded once and run in worker threads."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypotez.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from pathlib import Path

    from faster_whisper import WhisperModel  # pyright: ignore[reportMissingTypeStubs]

    from hypotez.config import Settings

__all__ = ["Transcriber", "Transcription"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transcription:
    """The text of one audio clip."""

    text: str
    language: str
    duration_s: float


class Transcriber:
    """Transcribes audio with one shared faster-whisper model and at most ``workers`` clips at a time.

    ``model`` is a size name (``tiny``, ``small``, ``large-v3``...) fetched on first use, or the path of a
    local CTranslate2 model directory (needed where the model hub cannot be reached).
    """

    def __init__(self, model: str, *, device: str = "auto", compute_type: str = "int8", workers: int = 1) -> None:
        self.model_name = model
        self.device = device
        self.compute_type = compute_type
        self._semaphore = asyncio.Semaphore(max(1, workers))
        self._workers = max(1, workers)
        self._model: WhisperModel | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Transcriber:
        return cls(
            settings.whisper_model,
            device=settings.whisper_device,
            compute_type=settings.whisper_compute_type,
            workers=settings.whisper_workers,
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load_sync(self) -> WhisperModel:
        with self._load_lock:
            if self._model is None:
                from faster_whisper import WhisperModel  # pyright: ignore[reportMissingTypeStubs]

                try:
                    self._model = WhisperModel(
                        self.model_name,
                        device=self.device,
                        compute_type=self.compute_type,
                        num_workers=self._workers,
                    )
                except Exception as exc:
                    raise ConfigError(
                        f"The whisper model {self.model_name!r} could not be loaded ({exc.__class__.__name__}). "
                        "Set HYPOTEZ_WHISPER_MODEL to a model size or to a local model directory.",
                        setting="HYPOTEZ_WHISPER_MODEL",
                    ) from exc
                _LOGGER.info("whisper model %s loaded on %s", self.model_name, self.device)
            return self._model

    async def load(self) -> None:
        """Load the model (in a thread) if it is not loaded yet."""
        await asyncio.to_thread(self._load_sync)

    def _transcribe_sync(self, audio: bytes | Path, language: str | None) -> Transcription:
        model: Any = self._load_sync()  # faster-whisper's signatures are partly untyped
        source: Any = io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)
        try:
            segments, info = model.transcribe(
                source,
                language=language,
                vad_filter=True,
                condition_on_previous_text=False,
                beam_size=1,
            )
            text = " ".join(segment.text.strip() for segment in segments).strip()
        except (ValueError, OSError, RuntimeError) as exc:
            raise InvalidInputError(
                "This audio could not be decoded. Send ogg/opus, mp3, wav, m4a or webm audio."
            ) from exc
        except Exception as exc:  # PyAV raises its own error classes (av.error.*)
            if exc.__class__.__module__.startswith("av"):
                raise InvalidInputError(
                    "This audio could not be decoded. Send ogg/opus, mp3, wav, m4a or webm audio."
                ) from exc
            raise
        return Transcription(text=text, language=info.language, duration_s=float(info.duration))

    async def transcribe(self, audio: bytes | Path, *, language: str | None = None) -> Transcription:
        """Transcribe ``audio`` (bytes or a file); ``language`` ``None`` detects it."""
        async with self._semaphore:
            return await asyncio.to_thread(self._transcribe_sync, audio, language)
