"""Corrected transcripts exported as a speech dataset: a zip in the "audiofolder" layout that Hugging Face
``datasets`` loads as it is (``load_dataset("audiofolder", data_dir=<the unzipped folder>)``)::

    metadata.jsonl    one line per clip: file_name, text, language, duration_s, transcript_id, speaker
    data/<transcript id><extension>

Files in the zip are named by transcript id and a known audio extension only, so no name a member chose reaches
the archive.  Blocking: the caller runs :func:`write_speech_dataset` in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypotez.errors import InvalidInputError, StorageError
from hypotez.storage.files.layout import CHUNK, safe_filename
from hypotez.text import jsonl_line

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["AUDIO_EXTENSIONS", "METADATA", "SpeechExport", "SpeechSample", "write_speech_dataset"]

#: The metadata file ``datasets``' audiofolder reads.
METADATA = "metadata.jsonl"
#: Where the clips go inside the zip.
_DATA = "data"
#: Extensions of recordings exported, and the extension each gets in the zip: one that audiofolder loads (a clip
#: under any other would be listed but never loaded).  ``.m4a`` is an MP4 container and ``.oga`` an Ogg one.
AUDIO_EXTENSIONS: dict[str, str] = {
    ".flac": ".flac",
    ".m4a": ".mp4",
    ".mp3": ".mp3",
    ".mp4": ".mp4",
    ".oga": ".ogg",
    ".ogg": ".ogg",
    ".opus": ".opus",
    ".wav": ".wav",
    ".webm": ".webm",
}


@dataclass(frozen=True, slots=True)
class SpeechSample:
    """One corrected transcript and the recording it transcribes."""

    audio_path: Path
    text: str
    language: str | None
    duration_s: float
    transcript_id: int
    #: An opaque id of who spoke (never a username).
    speaker: str


@dataclass(frozen=True, slots=True)
class SpeechExport:
    """The zip written, how many clips it holds, and the transcript ids left out (audio gone, not a regular file,
    an extension audiofolder does not load, no text, or an id given twice)."""

    path: Path
    written: int
    skipped: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def write_speech_dataset(samples: Sequence[SpeechSample], target: Path, *, name: str) -> SpeechExport:
    """Write ``samples`` as ``<target>/<name>-<UTC time>.zip`` in the audiofolder layout; the zip appears under its
    final name only once complete.  A sample that cannot be exported is skipped and counted.

    Raises :class:`~hypotez.errors.InvalidInputError` when no sample can be exported, and
    :class:`~hypotez.errors.StorageError` when writing fails (nothing is left behind then).
    """
    path = _new_path(target, name)
    partial = path.with_name(path.name + ".partial")
    skipped: list[int] = []
    seen: set[int] = set()
    lines: list[str] = []
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for sample in samples:
                arcname = _add_sample(zf, sample, seen)
                if arcname is None:
                    skipped.append(sample.transcript_id)
                    continue
                seen.add(sample.transcript_id)
                lines.append(_metadata_line(sample, arcname))
            if not lines:
                raise InvalidInputError(
                    "None of these transcripts can be exported as speech: none has its recording still stored, in a "
                    "format a speech dataset can hold."
                )
            zf.writestr(METADATA, "".join(lines), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"Writing the speech dataset `{path.name}` failed ({exc.strerror or exc}).") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SpeechExport(path, len(lines), tuple(skipped))


def _new_path(target: Path, name: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    base = f"{safe_filename(name, default='speech')}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    path = target / f"{base}.zip"
    counter = 2
    while path.exists() or path.with_name(path.name + ".partial").exists():
        path = target / f"{base}-{counter}.zip"
        counter += 1
    return path


def _add_sample(zf: zipfile.ZipFile, sample: SpeechSample, seen: set[int]) -> str | None:
    """Copy the sample's audio into the zip as ``data/<id><ext>``; ``None`` (nothing written) when it cannot be
    exported."""
    extension = AUDIO_EXTENSIONS.get(sample.audio_path.suffix.lower())
    if extension is None or sample.transcript_id in seen or not sample.text.strip():
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(sample.audio_path, flags)
    except OSError:
        return None  # gone (or a symbolic link): skipped, not an error of the export
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        arcname = f"{_DATA}/{int(sample.transcript_id)}{extension}"
        entry = zipfile.ZipInfo(arcname, date_time=_zip_time(info.st_mtime))
        # Audio is compressed already: stored as it is, so it reads back byte for byte and fast.
        entry.compress_type = zipfile.ZIP_STORED
        with zf.open(entry, "w", force_zip64=True) as sink:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
    return arcname


def _metadata_line(sample: SpeechSample, arcname: str) -> str:
    record = {
        "file_name": arcname,
        "text": " ".join(sample.text.split()),
        "language": sample.language,
        "duration_s": round(float(sample.duration_s), 3),
        "transcript_id": int(sample.transcript_id),
        "speaker": sample.speaker,
    }
    return jsonl_line(record)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    when = max(dt.datetime.fromtimestamp(mtime, dt.UTC), dt.datetime(1980, 1, 1, tzinfo=dt.UTC))
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)
