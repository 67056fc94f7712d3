"""Audio attachments: recognise them, measure them and decode them to what whisper reads (PyAV, no ffmpeg binary).

Everything here is synchronous and CPU bound: callers on the event loop run it in a worker thread.
"""

from __future__ import annotations

import io
import math
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from av.error import FFmpegError

from hypotez.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy.typing as npt

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "AudioError",
    "AudioTooLongError",
    "SilentAudioError",
    "UndecodableAudioError",
    "decode",
    "format_duration",
    "is_audio",
    "probe_duration",
]

#: The sample rate whisper reads.
SAMPLE_RATE = 16_000

#: File name extensions taken for audio (or video with a sound track), lower case, without the dot.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"mp3", "wav", "m4a", "webm", "ogg", "oga", "opus", "mp4", "mov", "flac", "aac", "wma", "mka", "mkv", "aiff"}
)

#: Content types of containers that carry sound besides ``audio/*``.
_VIDEO_TYPES = frozenset({"video/mp4", "video/webm", "video/quicktime", "video/ogg", "video/x-matroska"})


class AudioError(InvalidInputError):
    """An audio file that cannot be transcribed as given."""


class UndecodableAudioError(AudioError):
    """The bytes are not audio that PyAV can decode."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "This file could not be decoded as audio. Send ogg/opus, mp3, wav, m4a, webm or mp4."
        )


class AudioTooLongError(AudioError):
    """The recording is longer than the configured limit."""

    def __init__(self, duration_s: float, limit_s: float) -> None:
        super().__init__(
            f"This recording is {format_duration(duration_s)} long; the limit is {format_duration(limit_s)}. "
            "Send a shorter recording or split it."
        )
        self.duration_s = duration_s
        self.limit_s = limit_s


class SilentAudioError(AudioError):
    """Voice activity detection found no speech."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "No speech was heard in this recording.")


def format_duration(seconds: float) -> str:
    """``75`` → ``"1 min 15 s"``, ``600`` → ``"10 min"``, ``42.4`` → ``"42 s"`` (rounded up to whole seconds)."""
    total = math.ceil(max(0.0, seconds) - 1e-9)
    minutes, secs = divmod(total, 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min" if not secs else f"{minutes} min {secs} s"


def is_audio(filename: str, content_type: str | None) -> bool:
    """Whether an attachment looks like audio (or video with sound) by its content type or its extension."""
    if content_type:
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind.startswith("audio/") or kind in _VIDEO_TYPES:
            return True
    suffix = PurePath(filename).suffix.lower().lstrip(".")
    return suffix in AUDIO_EXTENSIONS


def _open(data: bytes) -> Any:
    try:
        container: Any = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise UndecodableAudioError() from exc
    if not container.streams.audio:
        container.close()
        raise UndecodableAudioError("This file has no sound track to transcribe.")
    return container


def _frames(container: Any) -> Iterator[Any]:
    """Decoded audio frames of the first sound track; a broken stream is an :class:`UndecodableAudioError`."""
    try:
        yield from container.decode(audio=0)
    except (FFmpegError, ValueError, OSError) as exc:
        raise UndecodableAudioError() from exc


def _metadata_duration(container: Any) -> float | None:
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def probe_duration(data: bytes) -> float:
    """Length of the recording in seconds: from the container's metadata, else by decoding it.

    Raises :class:`UndecodableAudioError` when ``data`` is not audio.
    """
    with _open(data) as container:
        duration = _metadata_duration(container)
        if duration is not None:
            return duration
        samples = 0.0
        for frame in _frames(container):
            samples += frame.samples / (frame.sample_rate or SAMPLE_RATE)
        if samples <= 0:
            raise UndecodableAudioError()
        return samples


def decode(data: bytes, *, max_duration_s: float | None = None) -> npt.NDArray[np.float32]:
    """Decode ``data`` to float32 mono samples at 16 kHz, through PyAV's resampler.

    With ``max_duration_s``, a recording whose metadata says it is longer is refused before anything is decoded,
    and one without metadata as soon as the decoded part passes the limit (memory stays bounded either way).
    Raises :class:`UndecodableAudioError` or :class:`AudioTooLongError`.
    """
    limit = None if max_duration_s is None else int(max_duration_s * SAMPLE_RATE)
    chunks: list[npt.NDArray[np.float32]] = []
    total = 0
    with _open(data) as container:
        duration = _metadata_duration(container)
        if max_duration_s is not None and duration is not None and duration > max_duration_s + 0.5:
            raise AudioTooLongError(duration, max_duration_s)
        resampler: Any = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in _frames(container):
                for out in resampler.resample(frame):
                    chunk = np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if limit is not None and total > limit + SAMPLE_RATE // 2:
                    raise AudioTooLongError(total / SAMPLE_RATE, float(max_duration_s or 0))
            for out in resampler.resample(None):  # flush what the resampler holds back
                chunk = np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1)
                chunks.append(chunk)
                total += chunk.size
        except (FFmpegError, ValueError) as exc:
            raise UndecodableAudioError() from exc
    if not total:
        raise UndecodableAudioError()
    return np.concatenate(chunks)
