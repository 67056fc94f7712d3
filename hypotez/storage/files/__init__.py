"""The data directory: each guild's own area and the paths members give resolved safely inside it
(:mod:`~hypotez.storage.files.datadir`), its layout and file-name helpers (:mod:`~hypotez.storage.files.layout`),
and zip archives with a verified manifest (:mod:`~hypotez.storage.files.archives`)."""

from __future__ import annotations

from hypotez.storage.files.archives import ArchiveInfo, ManifestEntry
from hypotez.storage.files.datadir import DataDirectory, SafeFile
from hypotez.storage.files.layout import (
    ARCHIVE,
    DATASETS,
    EXPORTS,
    GUILDS,
    MODELS,
    REPORTS,
    TMP,
    TRAINING,
    human_size,
    safe_filename,
)

__all__ = [
    "ARCHIVE",
    "DATASETS",
    "EXPORTS",
    "GUILDS",
    "MODELS",
    "REPORTS",
    "TMP",
    "TRAINING",
    "ArchiveInfo",
    "DataDirectory",
    "ManifestEntry",
    "SafeFile",
    "human_size",
    "safe_filename",
]
