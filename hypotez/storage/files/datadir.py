"""The data directory sandbox: each guild's own area, paths given by members resolved safely inside it, listings
for autocomplete, attachments streamed to disk, and the archive area's zips (written by
:mod:`hypotez.storage.files.archives`).

The top of the data directory is the operator's: nothing outside ``guilds/<guild id>/`` is served, listed,
archived or deleted by a member command.  :meth:`DataDirectory.for_guild` gives a guild's area, itself a
:class:`DataDirectory` rooted there, so a path a member gives is relative to their guild's area and cannot reach
another guild's.

Member-supplied paths are relative to the area.  Refused: absolute paths, ``..``, NUL bytes, percent-encoded
traversal, symbolic links that lead outside the area, device files, pipes and sockets, directories where a file
is wanted, the SQLite database, dotfiles and the ``tmp`` area.  Every blocking call runs in a worker thread;
files are read and written in chunks, never whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import aiofiles
from sqlalchemy.engine import make_url

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.storage.files.archives import bundle_files, read_archives, zip_directory, zip_files
from hypotez.storage.files.layout import ARCHIVE, GUILDS, MODELS, TMP, TRAINING, human_size, safe_filename

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterable, Collection, Sequence

    from hypotez.config import Settings
    from hypotez.storage.files.archives import ArchiveInfo

__all__ = ["SCAN_LIMIT", "DataDirectory", "SafeFile"]

#: Areas at the top of the data directory that are never archived, and what they hold.
_OPERATOR_AREAS = (
    (TRAINING, "local training jobs and the models the bot may be serving"),
    (MODELS, "local base models"),
    (GUILDS, "the servers' own files"),
)

#: Entries looked at, at most, when listing for autocomplete (Discord wants an answer within 3 s).
SCAN_LIMIT = 5000

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class SafeFile:
    """A regular file inside the data directory, checked at the time it was resolved."""

    path: Path
    relative: str
    size: int


class DataDirectory:
    """The bot's data directory, or (from :meth:`for_guild`) one guild's area of it.  ``hidden`` files (the SQLite
    database) are never listed, served or archived.

    Member-facing commands use only a guild's area: ``data_dir.for_guild(guild_id)``.  The top-level directory
    is the operator's (training jobs, local models, the database).
    """

    def __init__(self, root: Path, *, hidden: Collection[Path] = (), guild_id: int | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self._hidden = {Path(os.path.realpath(p)) for p in hidden}
        #: The guild whose area this is; ``None`` for the whole data directory (the operator's).
        self.guild_id = guild_id
        self._where = "the data directory" if guild_id is None else "this server's files"

    def for_guild(self, guild_id: int | None) -> DataDirectory:
        """The area of one guild, ``<data dir>/guilds/<guild_id>/``, as a :class:`DataDirectory` rooted there:
        paths are relative to it and nothing outside it is reached.  Touches no disk (areas are created when
        first written to).  Refuses ``None`` (a direct message) with a message for the member.

        ``for_guild(gid).area(REPORTS)`` is where a guild's ``/test`` reports go (blocking: it creates the
        folder), and ``for_guild(gid).relative(path)`` the path ``/getfile`` serves them by.
        """
        if guild_id is None:
            raise InvalidInputError(
                "Files and datasets belong to a server, each server its own; use this command in a server."
            )
        if self.guild_id is not None:
            raise ValueError("already a guild's area")
        if isinstance(guild_id, bool) or guild_id <= 0:
            raise ValueError(f"not a guild id: {guild_id!r}")
        return DataDirectory(self.root / GUILDS / str(guild_id), hidden=self._hidden, guild_id=guild_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> DataDirectory:
        hidden: list[Path] = []
        url = make_url(settings.resolved_database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            database = Path(url.database)
            hidden += [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))]
        return cls(settings.data_dir, hidden=hidden)

    # ------------------------------------------------------------------------------------------ paths

    def area(self, name: str) -> Path:
        """An area (``datasets``, ``exports``, ``archive``, ``reports``, ``tmp``), created when missing
        (blocking)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: Path) -> str:
        """``path`` relative to this directory (a guild's area: the path ``/getfile`` takes), ``/`` separated."""
        return Path(os.path.realpath(path)).relative_to(self.root).as_posix()

    def parts(self, raw: str) -> list[str]:
        """The components of a member-supplied relative path; refuses anything that could leave the directory."""
        text = raw.strip()
        if not text:
            raise InvalidInputError(f"Give a path relative to {self._where}.")
        if "\x00" in text:
            raise InvalidInputError("That path contains a NUL byte; paths cannot contain one.")
        decoded = text
        for _ in range(3):
            once = unquote(decoded)
            if once == decoded:
                break
            decoded = once
        if decoded != text and _ENCODED.search(text) and _escapes(decoded):
            raise InvalidInputError(
                f"Percent-encoded paths are not accepted (that one decodes to a path outside {self._where}). "
                "Type the path as it is."
            )
        text = text.replace("\\", "/")
        if text.startswith(("/", "~")) or _DRIVE.match(text):
            raise InvalidInputError(
                f"`{_show(raw)}` is an absolute path. Give a path relative to {self._where}, as autocomplete offers it."
            )
        parts = [p for p in text.split("/") if p not in {"", "."}]
        if ".." in parts:
            raise InvalidInputError(f"`{_show(raw)}` contains `..`; paths must stay inside {self._where}.")
        if not parts:
            raise InvalidInputError(f"Give a path relative to {self._where}, not the directory itself.")
        return parts

    def _is_hidden(self, real: Path) -> bool:
        if real in self._hidden:
            return True
        rel = real.relative_to(self.root).parts
        return bool(rel) and (rel[0] == TMP or any(p.startswith(".") for p in rel))

    def _check_inside(self, raw: str, candidate: Path) -> Path:
        # Checked before existence, so a link cannot be used to probe what exists outside.
        real = Path(os.path.realpath(candidate))
        if real != self.root and not real.is_relative_to(self.root):
            raise InvalidInputError(f"`{_show(raw)}` is a link that leads outside {self._where}; it is not served.")
        if not os.path.lexists(candidate) or not real.exists():
            raise NotFoundError("file", raw, f"There is nothing at `{_show(raw)}` in {self._where}.")
        if self._is_hidden(real):
            raise InvalidInputError(f"`{_show(raw)}` is not served (the database, temporary or hidden files).")
        return real

    def resolve_file(self, raw: str, *, limit: int) -> SafeFile:
        """A regular file of at most ``limit`` bytes inside this directory (blocking; see :meth:`file`)."""
        real = self._check_inside(raw, self.root.joinpath(*self.parts(raw)))
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(
                f"`{_show(raw)}` is a directory. Ask for a file in it, or zip it with `/archive create`."
            )
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(
                f"`{_show(raw)}` is not a regular file (a device, pipe or socket); it is not served."
            )
        if info.st_nlink > 1:
            raise InvalidInputError(
                f"`{_show(raw)}` has other names (hard links) that may lie outside {self._where}; it is not served. "
                "Copy the file instead of linking it."
            )
        if info.st_size > limit:
            raise InvalidInputError(
                f"`{_show(raw)}` is {human_size(info.st_size)}; files over {human_size(limit)} cannot be sent "
                "through Discord."
            )
        return SafeFile(path=real, relative=self.relative(real), size=info.st_size)

    async def file(self, raw: str, *, limit: int) -> SafeFile:
        """:meth:`resolve_file` in a worker thread."""
        return await asyncio.to_thread(self.resolve_file, raw, limit=limit)

    def resolve_directory(self, raw: str, *, area: str | None = None) -> Path:
        """A directory inside this directory (inside ``area`` when given, ``raw`` being relative to it)."""
        parts = self.parts(raw)
        base = self.root / area if area else self.root
        real = self._check_inside(raw, base.joinpath(*parts))
        if area and not real.is_relative_to(Path(os.path.realpath(base))):
            raise InvalidInputError(f"`{_show(raw)}` leads outside `{area}/`.")
        if not real.is_dir():
            raise InvalidInputError(f"`{_show(raw)}` is not a directory.")
        if real == self.root:
            raise InvalidInputError(f"Give a directory inside {self._where}, not the directory itself.")
        return real

    async def directory(self, raw: str, *, area: str | None = None) -> Path:
        """:meth:`resolve_directory` in a worker thread."""
        return await asyncio.to_thread(self.resolve_directory, raw, area=area)

    # ------------------------------------------------------------------------------------------ listings

    def _walk(self, base: Path, *, limit: int | None = SCAN_LIMIT) -> list[tuple[Path, bool]]:
        """(path, is_dir) under ``base``, without following links out, skipping hidden entries; ``limit`` bounds
        how many entries are looked at (for autocomplete)."""
        found: list[tuple[Path, bool]] = []
        if not base.is_dir():
            return found
        seen = 0
        for top, dirs, files in os.walk(base):
            top_path = Path(top)
            dirs[:] = sorted(d for d in dirs if not self._is_hidden(top_path / d) and not (top_path / d).is_symlink())
            for d in dirs:
                found.append((top_path / d, True))
            for name in sorted(files):
                path = top_path / name
                real = Path(os.path.realpath(path))
                if real.is_relative_to(self.root) and not self._is_hidden(real) and real.is_file():
                    found.append((path, False))
            seen += len(dirs) + len(files)
            if limit is not None and seen > limit:
                break
        return found

    def _suggest(
        self, typed: str, base: Path, *, want_dirs: bool, limit: int, exclude: Collection[str] = ()
    ) -> list[str]:
        needle = typed.strip().replace("\\", "/").lower()
        names = [
            path.relative_to(base).as_posix()
            for path, is_dir in self._walk(base)
            if is_dir == want_dirs and path.relative_to(base).parts[0] not in exclude
        ]
        matches = [n for n in names if needle in n.lower()]
        matches.sort(key=lambda n: (not n.lower().startswith(needle), n.count("/"), n.lower()))
        return matches[:limit]

    def suggest_files(self, typed: str, *, limit: int = 25) -> list[str]:
        """Files in this directory whose path contains ``typed`` (blocking)."""
        return self._suggest(typed, self.root, want_dirs=False, limit=limit)

    def suggest_directories(self, typed: str, *, area: str | None = None, limit: int = 25) -> list[str]:
        """Directories (relative to ``area`` or this directory) whose path contains ``typed`` (blocking)."""
        base = self.root / area if area else self.root
        exclude = () if area else (ARCHIVE, TMP)
        return self._suggest(typed, base, want_dirs=True, limit=limit, exclude=exclude)

    def dataset_files(self, directory: Path, suffixes: Collection[str]) -> list[Path]:
        """Files with one of ``suffixes`` under ``directory`` (recursively, links leading out skipped)."""
        return [
            path for path, is_dir in self._walk(directory, limit=None) if not is_dir and path.suffix.lower() in suffixes
        ]

    # ------------------------------------------------------------------------------------------ receiving

    @contextlib.asynccontextmanager
    async def incoming(self, chunks: AsyncIterable[bytes], filename: str, *, limit: int) -> AsyncGenerator[Path]:
        """Stream ``chunks`` into a temporary file (refused past ``limit`` bytes); removed on exit."""
        tmp = await asyncio.to_thread(self.area, TMP)
        path = tmp / f"{uuid.uuid4().hex}-{safe_filename(filename)}"
        try:
            received = 0
            async with aiofiles.open(path, "wb") as out:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > limit:
                        raise InvalidInputError(
                            f"`{_show(filename)}` is larger than the upload limit of {human_size(limit)} "
                            "(HYPOTEZ_MAX_UPLOAD_BYTES)."
                        )
                    await out.write(chunk)
            yield path
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    # ------------------------------------------------------------------------------------------ archives

    def archive_path(self, name: str) -> Path:
        """An existing archive by file name (blocking)."""
        if "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or not name.endswith(".zip"):
            raise InvalidInputError(f"`{_show(name)}` is not an archive name; pick one from `/archive list`.")
        path = self.root / ARCHIVE / name
        if not path.is_file() or path.is_symlink():
            raise NotFoundError("archive", name, f"There is no archive called `{_show(name)}`. See `/archive list`.")
        return path

    def list_archives(self) -> list[ArchiveInfo]:
        """Every archive, newest first (blocking)."""
        return read_archives(self.root / ARCHIVE)

    async def archives(self) -> list[ArchiveInfo]:
        return await asyncio.to_thread(self.list_archives)

    def archive_directory_sync(self, directory: Path) -> ArchiveInfo:
        """Zip ``directory`` (from :meth:`resolve_directory`) into the archive area, verify it, then remove the
        originals.  On any failure before verification the partial zip is deleted and nothing is removed."""
        rel = self.relative(directory)
        if rel.split("/")[0] in {ARCHIVE, TMP}:
            raise InvalidInputError(f"`{rel}` is inside the `{rel.split('/')[0]}/` area; it cannot be archived.")
        for operator, what in _OPERATOR_AREAS:
            held = self.root / operator
            if self.guild_id is None and (directory.is_relative_to(held) or held.is_relative_to(directory)):
                raise InvalidInputError(f"`{rel}` holds {what}; it cannot be archived.")
        if any(h.is_relative_to(directory) for h in self._hidden):
            raise InvalidInputError(f"`{rel}` holds the database; it cannot be archived.")
        return zip_directory(self.root / ARCHIVE, directory, self._walk(directory, limit=None), source=rel)

    async def archive_directory(self, directory: Path) -> ArchiveInfo:
        """:meth:`archive_directory_sync` in a worker thread."""
        return await asyncio.to_thread(self.archive_directory_sync, directory)

    def archive_files_sync(
        self, stem: str, files: Sequence[tuple[str, Path]], *, source: str, remove_originals: bool = True
    ) -> ArchiveInfo:
        """Zip ``files`` (name in the archive, path) into the archive area; originals removed once verified."""
        return zip_files(self.root / ARCHIVE, stem, files, source=source, remove_originals=remove_originals)

    async def archive_files(
        self, stem: str, files: Sequence[tuple[str, Path]], *, source: str, remove_originals: bool = True
    ) -> ArchiveInfo:
        return await asyncio.to_thread(
            self.archive_files_sync, stem, files, source=source, remove_originals=remove_originals
        )

    # ------------------------------------------------------------------------------------------ bundles

    def bundle_sync(self, files: Sequence[Path], *, limit: int, stem: str) -> list[Path] | None:
        """``files`` when together they fit in ``limit`` bytes, else one zip of them next to the first when that
        fits, else ``None``."""
        return bundle_files(files, limit=limit, stem=stem)

    async def bundle(self, files: Sequence[Path], *, limit: int, stem: str) -> list[Path] | None:
        return await asyncio.to_thread(self.bundle_sync, files, limit=limit, stem=stem)


def _show(raw: str) -> str:
    """A member's path, safe to echo: control characters replaced, shortened, no backticks."""
    cleaned = "".join(c if c.isprintable() else "?" for c in raw).replace("`", "'")
    return cleaned if len(cleaned) <= 200 else cleaned[:199] + "…"


def _escapes(decoded: str) -> bool:
    text = decoded.replace("\\", "/")
    return (
        "\x00" in text
        or text.startswith(("/", "~"))
        or bool(_DRIVE.match(text))
        or ".." in text.split("/")
        or bool(_ENCODED.search(text))
    )
