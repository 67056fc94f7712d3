"""Zip archives: written with a ``manifest.json`` (each file's path, size and SHA-256) and read back before they
appear under their final name, the originals removed only then; read back for listing; and zips bundling files
to send together."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypotez.errors import InvalidInputError, StorageError
from hypotez.storage.files.layout import CHUNK, safe_filename

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MANIFEST",
    "ArchiveInfo",
    "ManifestEntry",
    "bundle_files",
    "read_archives",
    "zip_directory",
    "zip_files",
]

MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One archived file: its path inside the archive, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """A zip in the archive area and what its manifest lists."""

    name: str
    path: Path
    size: int
    created_at: dt.datetime
    source: str
    files: list[ManifestEntry]
    #: Originals left in place after archiving (changed while being archived, or could not be removed).
    kept: list[str] = field(default_factory=list[str])


@dataclass(frozen=True, slots=True)
class _Member:
    arcname: str
    path: Path
    size: int
    mtime_ns: int


def read_archives(folder: Path) -> list[ArchiveInfo]:
    """Every archive in ``folder``, newest first (blocking)."""
    if not folder.is_dir():
        return []
    infos: list[ArchiveInfo] = []
    for path in folder.glob("*.zip"):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            infos.append(_read_archive(path))
        except (OSError, zipfile.BadZipFile, ValueError, KeyError):
            continue
    infos.sort(key=lambda i: (i.created_at, i.name), reverse=True)
    return infos


def zip_directory(folder: Path, directory: Path, entries: Iterable[tuple[Path, bool]], *, source: str) -> ArchiveInfo:
    """Zip the files among ``entries`` (path, is_dir: what :class:`DataDirectory` lists under ``directory``) into
    ``folder``, named after ``source`` (the directory's relative path), verify it, then remove the originals and
    the directories left empty.  On any failure before verification the partial zip is deleted and nothing is
    removed."""
    members: list[_Member] = []
    for path, is_dir in entries:
        if is_dir or path.is_symlink():
            continue
        info = os.stat(path)
        members.append(_Member(path.relative_to(directory).as_posix(), path, info.st_size, info.st_mtime_ns))
    if not members:
        raise InvalidInputError(f"`{source}` has no files to archive.")
    archive = _write_archive(folder, source.replace("/", "_"), members=members, source=source)
    kept = _remove_originals(members)
    with contextlib.suppress(OSError):
        _remove_empty_dirs(directory)
    return ArchiveInfo(archive.name, archive.path, archive.size, archive.created_at, source, archive.files, kept)


def zip_files(
    folder: Path, stem: str, files: Sequence[tuple[str, Path]], *, source: str, remove_originals: bool = True
) -> ArchiveInfo:
    """Zip ``files`` (name in the archive, path) into ``folder``; originals removed once verified."""
    members: list[_Member] = []
    for arcname, path in files:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise StorageError(f"Archiving `{source}` failed ({exc.strerror or exc}); nothing was moved.") from exc
        members.append(_Member(arcname, path, info.st_size, info.st_mtime_ns))
    archive = _write_archive(folder, stem, members=members, source=source)
    kept = _remove_originals(members) if remove_originals else []
    return ArchiveInfo(archive.name, archive.path, archive.size, archive.created_at, source, archive.files, kept)


def _new_archive_path(folder: Path, stem: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{safe_filename(stem, default='archive')}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    path = folder / f"{base}.zip"
    counter = 2
    while path.exists() or path.with_name(path.name + ".partial").exists():
        path = folder / f"{base}-{counter}.zip"
        counter += 1
    return path


def _write_archive(folder: Path, stem: str, *, members: Sequence[_Member], source: str) -> ArchiveInfo:
    """Write and verify a zip with a manifest; it appears under its final name only once verified."""
    target = _new_archive_path(folder, stem)
    partial = target.with_name(target.name + ".partial")
    created = dt.datetime.now(dt.UTC)
    try:
        entries: list[ManifestEntry] = []
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for member in members:
                entries.append(_add_to_zip(zf, member))
            manifest = {
                "source": source,
                "created_at": created.isoformat(),
                "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries],
            }
            zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
        _verify_archive(partial, entries)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"Archiving `{source}` failed ({exc.strerror or exc}); nothing was moved, the originals are where "
            "they were."
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ArchiveInfo(target.name, target, target.stat().st_size, created, source, entries)


def _add_to_zip(zf: zipfile.ZipFile, member: _Member) -> ManifestEntry:
    digest = hashlib.sha256()
    size = 0
    info = zipfile.ZipInfo(member.arcname, date_time=_zip_time(member.mtime_ns))
    info.compress_type = zipfile.ZIP_DEFLATED
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(member.path, flags)
    with os.fdopen(fd, "rb") as source, zf.open(info, "w", force_zip64=True) as sink:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise OSError(f"{member.arcname} is not a regular file")
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    return ManifestEntry(member.arcname, size, digest.hexdigest())


def _remove_originals(members: Sequence[_Member]) -> list[str]:
    """Delete archived originals; a file changed since it was read is kept (and reported)."""
    kept: list[str] = []
    for member in members:
        try:
            info = os.stat(member.path, follow_symlinks=False)
            if info.st_size != member.size or info.st_mtime_ns != member.mtime_ns:
                kept.append(member.arcname)
                continue
            member.path.unlink()
        except OSError:
            kept.append(member.arcname)
    return kept


def bundle_files(files: Sequence[Path], *, limit: int, stem: str) -> list[Path] | None:
    """``files`` when together they fit in ``limit`` bytes, else one zip of them next to the first when that
    fits, else ``None``."""
    if sum(p.stat().st_size for p in files) <= limit:
        return list(files)
    target = files[0].with_name(f"{safe_filename(stem)}.zip")
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for path in files:
                zf.write(path, path.name)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return [target] if target.stat().st_size <= limit else None


def _zip_time(mtime_ns: int) -> tuple[int, int, int, int, int, int]:
    when = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    when = max(when, dt.datetime(1980, 1, 1, tzinfo=dt.UTC))
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def _verify_archive(path: Path, entries: Sequence[ManifestEntry]) -> None:
    """Re-read the zip: its manifest lists exactly ``entries`` and every member's bytes hash as recorded."""
    with zipfile.ZipFile(path) as zf:
        manifest: dict[str, Any] = json.loads(zf.read(MANIFEST))
        listed = [(f["path"], f["size"], f["sha256"]) for f in manifest["files"]]
        if listed != [(e.path, e.size, e.sha256) for e in entries]:
            raise OSError("the manifest does not match the files written")
        for entry in entries:
            digest = hashlib.sha256()
            size = 0
            with zf.open(entry.path) as member:
                while chunk := member.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
            if size != entry.size or digest.hexdigest() != entry.sha256:
                raise OSError(f"{entry.path} does not read back as written")


def _read_archive(path: Path) -> ArchiveInfo:
    with zipfile.ZipFile(path) as zf:
        manifest: dict[str, Any] = json.loads(zf.read(MANIFEST))
    files = [ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in manifest["files"]]
    created = dt.datetime.fromisoformat(str(manifest["created_at"]))
    return ArchiveInfo(path.name, path, path.stat().st_size, created, str(manifest.get("source", "")), files)


def _remove_empty_dirs(directory: Path) -> None:
    for top, _dirs, _files in os.walk(directory, topdown=False):
        with contextlib.suppress(OSError):
            Path(top).rmdir()
