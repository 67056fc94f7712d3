"""The data directory's layout: the names of its areas, and the file name and size helpers used across it.

Layout under ``settings.data_dir``::

    guilds/<guild id>/   one area per guild; every member-facing command works inside its guild's area only
        datasets/        directories of dataset files for ``/dataset select``
        exports/         files written by ``/dataset export``
        archive/         zip archives (``/archive``, ``/dataset archive``), each with a ``manifest.json``
        reports/         ``/test`` reports
        tmp/             attachments being received, archives being staged (never listed or served)
    training/            local training jobs and their models (operator area)
    models/              local base models (operator area)
    hypotez.db           the SQLite database (operator area)
"""

from __future__ import annotations

import re

__all__ = [
    "ARCHIVE",
    "CHUNK",
    "DATASETS",
    "EXPORTS",
    "GUILDS",
    "MODELS",
    "REPORTS",
    "TMP",
    "TRAINING",
    "human_size",
    "safe_filename",
]

DATASETS = "datasets"
EXPORTS = "exports"
ARCHIVE = "archive"
REPORTS = "reports"
TMP = "tmp"
#: The guilds' areas, ``guilds/<guild id>/``, at the top of the data directory.
GUILDS = "guilds"
#: Local training jobs and their models (hypotez.ml.local_models): operator area, in use, never archived.
TRAINING = "training"
#: Local base models (``local:<name>``): operator area, never archived.
MODELS = "models"

#: Bytes read or written at a time.
CHUNK = 1024 * 1024

_UNSAFE_NAME = re.compile(r"[^\w.-]+")


def human_size(size: int) -> str:
    """``1.5 MiB``-style sizes for replies."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size:,} bytes"  # pragma: no cover - the loop always returns


#: Longest file name we create, in UTF-8 bytes (file systems count bytes: 255 at most, with room for suffixes
#: such as ``-v12.jsonl`` or ``.part`` added later).
MAX_NAME_BYTES = 120


def _cut_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


def safe_filename(name: str, *, default: str = "file") -> str:
    """``name`` reduced to letters, digits, ``.``, ``_`` and ``-`` (no leading dot, at most
    :data:`MAX_NAME_BYTES` UTF-8 bytes — letters of any script take several —, the extension kept), for files we
    create."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip("._")
    if len(cleaned.encode()) > MAX_NAME_BYTES:
        stem, dot, suffix = cleaned.rpartition(".")
        if dot and len(suffix.encode()) <= 10:
            cleaned = _cut_bytes(stem, MAX_NAME_BYTES - 1 - len(suffix.encode())) + dot + suffix
        else:
            cleaned = _cut_bytes(cleaned, MAX_NAME_BYTES)
    return cleaned or default
