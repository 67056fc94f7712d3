"""The catalog behind ``/dataset``: imports of uploaded files and directories, builds from corrections and
feedback, descriptions, exports and archives, each audited, with the reports they return."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import shutil
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from hypotez.errors import InvalidInputError
from hypotez.ml.datasets.examples import NEGATIVE, POSITIVE, build_examples
from hypotez.ml.datasets.formats import (
    EXPORT_FORMATS,
    csv_rows,
    preference_records,
    split_examples,
    supervised_records,
    write_csv,
    write_jsonl,
)
from hypotez.ml.datasets.parsing import SUPPORTED_SUFFIXES, ParsedFile, Problem, iter_examples
from hypotez.ml.datasets.pricing import training_costs
from hypotez.storage.files import DATASETS, EXPORTS, TMP, safe_filename
from hypotez.storage.models import utcnow
from hypotez.storage.repositories import CorrectionRepository, DatasetRepository
from hypotez.storage.repositories.arena import ARENA_DATASET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence
    from pathlib import Path

    from hypotez.config import Settings
    from hypotez.ml.datasets.examples import Example
    from hypotez.storage.files import ArchiveInfo, DataDirectory
    from hypotez.storage.models import Dataset, DatasetExample
    from hypotez.storage.repositories import AuditLog, DatasetCounts

__all__ = [
    "SHOWN_PROBLEMS",
    "BuildReport",
    "DatasetCatalog",
    "DatasetDescription",
    "ExportResult",
    "ImportReport",
]

#: Problems shown in a reply (all of them are in the error's ``details``).
SHOWN_PROBLEMS = 10

_NAME = re.compile(r"^\w[\w.-]{0,63}$")
#: Examples an import reads, and inserts, at a time: memory holds one chunk, and each insert is a short stretch
#: of event loop work.
IMPORT_CHUNK = 500


class _RejectedError(Exception):
    """An import found problems and ``skip_bad`` was not given: its transaction is rolled back."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import stored."""

    dataset: Dataset
    files: int
    added: int
    duplicates: int
    skipped: int
    problems: list[Problem]
    archive: ArchiveInfo | None = None

    def summary(self) -> str:
        text = (
            f"Imported {self.added:,} example{'s' if self.added != 1 else ''} into `{self.dataset.name}` "
            f"(version {self.dataset.version})"
        )
        if self.files > 1:
            text += f" from {self.files} files"
        text += "."
        if self.duplicates:
            text += f" {self.duplicates:,} duplicate{'s were' if self.duplicates != 1 else ' was'} left out."
        if self.skipped:
            text += f"\nSkipped {self.skipped:,} bad line{'s' if self.skipped != 1 else ''}:\n" + _problem_lines(
                self.problems, self.skipped
            )
        if self.archive is not None:
            text += f"\nThe directory was archived as `archive/{self.archive.name}`."
            if self.archive.kept:
                text += f" {len(self.archive.kept)} file(s) changed while archiving and were left in place."
        return _clip(text)


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What ``/dataset build`` stored."""

    dataset: Dataset
    corrections: int
    rated_replies: int
    added: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class DatasetDescription:
    """Everything ``/dataset show`` tells about a dataset version."""

    dataset: Dataset
    versions: list[Dataset]
    counts: DatasetCounts
    supervised: int
    preference: int
    supervised_tokens: int
    costs: dict[str, float]
    sample_chat: dict[str, Any] | None
    sample_pair: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Files written by an export, and how many records each part holds."""

    dataset: Dataset
    format: str
    stem: str
    paths: list[Path]
    train: int
    validation: int


def _clip(text: str, limit: int = 1990) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem_lines(problems: Sequence[Problem], total: int) -> str:
    shown = [f"• {_clip(str(p), 150)}" for p in problems[:SHOWN_PROBLEMS]]
    if total > len(shown):
        shown.append(f"… and {total - len(shown):,} more.")
    return "\n".join(shown)


class DatasetCatalog:
    """Dataset operations for one bot: imports, builds, descriptions, exports and archives, each audited."""

    def __init__(
        self, settings: Settings, repository: DatasetRepository, files: DataDirectory, audit: AuditLog
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.files = files
        self.audit = audit

    @staticmethod
    def check_name(name: str) -> str:
        """A valid name for a dataset that members write to."""
        name = name.strip()
        if not _NAME.match(name):
            raise InvalidInputError(
                f"`{name[:80]}` cannot name a dataset: use up to 64 letters, digits, `.`, `_` or `-`, "
                "starting with a letter or digit."
            )
        if name == CorrectionRepository.DATASET:
            raise InvalidInputError(
                "`corrections` is kept up to date from members' corrections; choose another name "
                "(`/dataset build` makes a snapshot of it)."
            )
        if name == ARENA_DATASET:
            raise InvalidInputError(
                "`arena` is kept up to date from members' approved votes in `/arena` matches; choose another name."
            )
        return name

    async def import_file(
        self,
        path: Path,
        *,
        filename: str,
        guild_id: int,
        actor_id: int | None,
        name: str,
        positive: bool,
        skip_bad: bool = False,
    ) -> ImportReport:
        """Import an uploaded file into a new version of ``name`` (the previous version's examples kept)."""
        name = self.check_name(name)
        return await self._store(
            [(path, filename)],
            label=POSITIVE if positive else NEGATIVE,
            origin="upload",
            guild_id=guild_id,
            actor_id=actor_id,
            name=name,
            skip_bad=skip_bad,
            action="dataset.upload",
            target=filename,
            what=f"`{filename}`",
        )

    async def import_directory(
        self,
        path: str,
        *,
        guild_id: int,
        actor_id: int | None,
        name: str | None,
        positive: bool,
        skip_bad: bool = False,
        archive: bool = True,
    ) -> ImportReport:
        """Import every dataset file under ``datasets/<path>`` of the guild's area, then (unless ``archive`` is
        false) zip the directory into the guild's ``archive/`` and remove it."""
        area = self.files.for_guild(guild_id)
        directory = await area.directory(path, area=DATASETS)
        name = self.check_name(name if name else safe_filename(directory.name, default="dataset"))
        files = await asyncio.to_thread(area.dataset_files, directory, SUPPORTED_SUFFIXES)
        rel = area.relative(directory)
        if not files:
            raise InvalidInputError(f"`{rel}` has no .jsonl, .csv or .txt files to import.")
        report = await self._store(
            [(p, p.relative_to(directory).as_posix()) for p in files],
            label=POSITIVE if positive else NEGATIVE,
            origin="directory",
            guild_id=guild_id,
            actor_id=actor_id,
            name=name,
            skip_bad=skip_bad,
            action="dataset.select",
            target=rel,
            what=f"`{rel}`",
        )
        if not archive:
            return report
        info = await area.archive_directory(directory)
        await self.audit.record(
            "archive.create",
            guild_id=guild_id,
            actor_id=actor_id,
            target=rel,
            details={"archive": info.name, "files": len(info.files), "kept": info.kept},
        )
        return ImportReport(
            report.dataset, report.files, report.added, report.duplicates, report.skipped, report.problems, info
        )

    async def _store(
        self,
        files: Sequence[tuple[Path, str]],
        *,
        label: str,
        origin: str,
        guild_id: int,
        actor_id: int | None,
        name: str,
        skip_bad: bool,
        action: str,
        target: str,
        what: str,
    ) -> ImportReport:
        """Stream ``files`` ((path, source) pairs) into a new version of ``name``: read :data:`IMPORT_CHUNK`
        examples at a time in a worker thread and insert each chunk before reading the next, so neither memory
        nor the event loop grows with the file.  One transaction: a file with problems (without ``skip_bad``),
        one past ``dataset_max_examples`` or one with nothing usable leaves nothing behind."""
        parsed = [ParsedFile(source) for _, source in files]
        readers = [
            iter_examples(
                path,
                stats,
                label=label,
                origin=origin,
                max_tokens=self.settings.dataset_max_example_tokens,
                chunk=IMPORT_CHUNK,
            )
            for (path, _), stats in zip(files, parsed, strict=True)
        ]

        async def chunks() -> AsyncIterator[list[DatasetExample]]:
            offered = 0
            for reader in readers:
                while (chunk := await asyncio.to_thread(next, reader, None)) is not None:
                    if sum(f.problem_count for f in parsed) and not skip_bad:
                        continue  # the import is refused: read on only to count the problems
                    offered += len(chunk)
                    yield chunk
            if sum(f.problem_count for f in parsed) and not skip_bad:
                raise _RejectedError
            if not offered:
                raise InvalidInputError(f"Nothing was imported: {what} holds no usable examples.")

        try:
            dataset, added, duplicates = await self.repository.add_version_stream(
                guild_id,
                name,
                chunks(),
                created_by=actor_id,
                description=f"Imported from {target}"[:500],
                max_examples=self.settings.dataset_max_examples,
            )
        except _RejectedError:
            pass
        else:
            problem_count = sum(f.problem_count for f in parsed)
            await self.audit.record(
                action,
                guild_id=guild_id,
                actor_id=actor_id,
                target=target[:300],
                details={
                    "dataset_id": dataset.id,
                    "dataset": name,
                    "version": dataset.version,
                    "added": added,
                    "duplicates": duplicates,
                    "skipped": problem_count,
                },
            )
            problems = [p for f in parsed for p in f.problems]
            return ImportReport(dataset, len(parsed), added, duplicates, problem_count, problems)
        problems = [p for f in parsed for p in f.problems]
        problem_count = sum(f.problem_count for f in parsed)
        await self.audit.record(
            f"{action}.rejected",
            guild_id=guild_id,
            actor_id=actor_id,
            target=target[:300],
            details={"dataset": name, "problems": problem_count},
        )
        raise InvalidInputError(
            _clip(
                f"Nothing was imported: {what} has {problem_count:,} problem{'s' if problem_count != 1 else ''}. "
                "Fix them, or run the command again with `skip_bad:True` to import only the valid lines.\n"
                + _problem_lines(problems, problem_count)
            ),
            details=[str(p) for p in problems],
        )

    async def build(
        self,
        *,
        guild_id: int,
        actor_id: int | None,
        name: str,
        days: int | None = None,
        channel_id: int | None = None,
        model: str | None = None,
        min_rating: int | None = None,
        include_pending: bool = False,
    ) -> BuildReport:
        """A new version of ``name`` from the guild's approved corrections and rated replies matching the filters
        (with ``include_pending`` also those still waiting for review, and the version's description says so;
        rejected ones never)."""
        name = self.check_name(name)
        if min_rating is not None and not 1 <= min_rating <= 5:
            raise InvalidInputError("`min_rating` is a rating from 1 to 5.")
        since = utcnow() - dt.timedelta(days=days) if days else None
        filters = {"days": days, "channel_id": channel_id, "model": model, "min_rating": min_rating}
        corrections = await self.repository.corrections_for_build(
            guild_id, since=since, channel_id=channel_id, model=model, include_pending=include_pending
        )
        rated = await self.repository.rated_replies(
            guild_id, since=since, channel_id=channel_id, model=model, include_pending=include_pending
        )
        examples, duplicates = await asyncio.to_thread(build_examples, corrections, rated, min_rating=min_rating)
        if not examples:
            raise InvalidInputError(
                "No approved corrections or rated replies match these filters, so no dataset was built. "
                "Curators approve them with `/review`; widen the period, drop a filter, or add "
                "`include_pending:True` to take unreviewed ones too."
            )
        described = ", ".join(f"{k}={v}" for k, v in filters.items() if v is not None) or "no filters"
        if include_pending:
            described += "; INCLUDES PENDING ITEMS NOT YET REVIEWED"
        dataset, added, _ = await self.repository.add_version(
            guild_id,
            name,
            examples,
            created_by=actor_id,
            description=f"Built from reviewed corrections and feedback ({described})",
            extend=False,
            max_examples=self.settings.dataset_max_examples,
        )
        await self.audit.record(
            "dataset.build",
            guild_id=guild_id,
            actor_id=actor_id,
            target=name,
            details={"dataset_id": dataset.id, "version": dataset.version, "added": added, **filters},
        )
        return BuildReport(dataset, len(corrections), len(rated), added, duplicates)

    async def summaries(self, guild_id: int, *, include_archived: bool = False) -> list[tuple[Dataset, DatasetCounts]]:
        """The newest version of each dataset, with its counts."""
        datasets = await self.repository.latest(guild_id, include_archived=include_archived)
        counts = await self.repository.counts([d.id for d in datasets])
        return [(d, counts[d.id]) for d in datasets]

    async def describe(self, guild_id: int, ref: str) -> DatasetDescription:
        """Counts by label and origin, tokens, the training-cost estimate and a sample of one version.

        Counted by the database (:meth:`DatasetRepository.overview`); only a version holding both positive and
        negative chat examples, whose answers to the same conversation pair up for preference training, is read
        whole to count those pairs (in chunks, paired in a worker thread).
        """
        dataset = await self.repository.resolve(guild_id, ref, include_archived="@" in ref)
        versions = await self.repository.versions(guild_id, dataset.name)
        counts = (await self.repository.counts([dataset.id]))[dataset.id]
        overview = await self.repository.overview(dataset.id)
        sample_chat = supervised_records([overview.sample_supervised]) if overview.sample_supervised else []
        pairs = preference_records([overview.sample_pair]) if overview.sample_pair else []
        preference = overview.stored_pairs
        if overview.positive_chats and overview.negative_chats:
            pairs = await asyncio.to_thread(preference_records, await self.repository.rows(dataset.id))
            preference = len(pairs)
        return DatasetDescription(
            dataset=dataset,
            versions=versions,
            counts=counts,
            supervised=overview.supervised,
            preference=preference,
            supervised_tokens=overview.supervised_tokens,
            costs=training_costs(overview.supervised_tokens),
            sample_chat=sample_chat[0] if sample_chat else None,
            sample_pair=pairs[0] if pairs else None,
        )

    async def export(
        self, *, guild_id: int, actor_id: int | None, ref: str, fmt: str, validation: float = 0.0
    ) -> ExportResult:
        """Write a version as ``openai-chat``, ``preference`` or ``csv`` files under the guild's ``exports/``."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(f"`{fmt[:40]}` is not an export format: use {', '.join(EXPORT_FORMATS)}.")
        area = self.files.for_guild(guild_id)
        dataset = await self.repository.resolve(guild_id, ref, include_archived="@" in ref)
        rows = await self.repository.rows(dataset.id)
        builder = {"openai-chat": supervised_records, "preference": preference_records, "csv": csv_rows}[fmt]
        records = cast("list[dict[str, Any]]", await asyncio.to_thread(builder, rows))
        if not records:
            hint = (
                " Preference pairs come from corrections, preference files, or a positive and a negative answer "
                "to the same conversation."
                if fmt == "preference"
                else ""
            )
            raise InvalidInputError(f"`{dataset.name}` (version {dataset.version}) has no {fmt} examples.{hint}")
        train, held = await asyncio.to_thread(split_examples, records, validation)
        folder = area.root / EXPORTS
        suffix = _SUFFIXES[fmt]
        stem = _export_stem(dataset, fmt)
        parts = [("", train)] if not held else [(".train", train), (".validation", held)]
        writer = write_csv if fmt == "csv" else write_jsonl

        def write() -> list[Path]:
            folder.mkdir(parents=True, exist_ok=True)
            paths: list[Path] = []
            for part, items in parts:
                path = folder / f"{stem}{part}{suffix}"
                writer(path, items)
                paths.append(path)
            return paths

        paths = await asyncio.to_thread(write)
        await self.audit.record(
            "dataset.export",
            guild_id=guild_id,
            actor_id=actor_id,
            target=dataset.name,
            details={
                "dataset_id": dataset.id,
                "version": dataset.version,
                "format": fmt,
                "train": len(train),
                "validation": len(held),
                "files": [area.relative(p) for p in paths],
            },
        )
        return ExportResult(dataset, fmt, stem, paths, len(train), len(held))

    async def archive(self, *, guild_id: int, actor_id: int | None, name: str) -> ArchiveInfo:
        """Zip every live version of ``name`` (JSONL and CSV, with its exported files) into the archive area,
        verified, then mark it archived and remove the exported files."""
        name = name.strip()
        if name == CorrectionRepository.DATASET:
            raise InvalidInputError(
                "`corrections` is kept up to date from members' corrections and cannot be archived; "
                "archive a snapshot from `/dataset build` instead."
            )
        if name == ARENA_DATASET:
            raise InvalidInputError(
                "`arena` is kept up to date from members' approved votes in `/arena` matches and cannot be archived."
            )
        await self.repository.resolve(guild_id, name)  # NotFoundError with the name
        versions = [v for v in await self.repository.versions(guild_id, name) if v.archived_at is None]
        area = self.files.for_guild(guild_id)
        staging = area.root / TMP / f"archive-{uuid.uuid4().hex}"
        safe = safe_filename(name, default="dataset")
        exports = area.root / EXPORTS
        # The exports of exactly these versions, by their names (never a pattern: `faq` must not take `faq-v2`'s).
        candidates = [exports / file for version in versions for file in _export_names(version)]
        try:
            members: list[tuple[str, Path]] = []
            for version in versions:
                rows = await self.repository.rows(version.id)
                members += await asyncio.to_thread(_write_version, staging, f"v{version.version}/{safe}", rows)
            exported = await asyncio.to_thread(
                lambda: sorted(p for p in candidates if p.is_file() and not p.is_symlink())
            )
            members += [(f"exports/{p.name}", p) for p in exported]
            info = await area.archive_files(
                f"dataset-{safe}", members, source=f"dataset:{name}", remove_originals=False
            )
            await self.repository.archive(guild_id, name)
            await asyncio.to_thread(_unlink_all, exported)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        await self.audit.record(
            "dataset.archive",
            guild_id=guild_id,
            actor_id=actor_id,
            target=name,
            details={"archive": info.name, "versions": [v.version for v in versions], "files": len(info.files)},
        )
        return info


_SUFFIXES: dict[str, str] = {"openai-chat": ".jsonl", "preference": ".jsonl", "csv": ".csv"}
_PARTS = ("", ".train", ".validation")


def _export_stem(dataset: Dataset, fmt: str) -> str:
    """The file stem of a version's export, one version's alone: ``<name>-v<version>``, and where the name is
    not a file name as it stands (``x.`` and ``x`` both reduce to ``x``) ``<reduced>-v<version>-<id>`` — which
    no plain name's stem (always ending ``-v<digits>``) can be."""
    safe = safe_filename(dataset.name, default="dataset")
    stem = f"{safe}-v{dataset.version}" + ("" if safe == dataset.name else f"-{dataset.id}")
    return stem if fmt == "csv" else f"{stem}.{fmt}"


def _export_names(dataset: Dataset) -> list[str]:
    """Every file name an export of this version can have: each format, whole or split, and its zip bundle."""
    names: list[str] = []
    for fmt, suffix in _SUFFIXES.items():
        stem = _export_stem(dataset, fmt)
        names += [f"{stem}{part}{suffix}" for part in _PARTS]
        names.append(f"{safe_filename(stem)}.zip")
    return names


def _write_version(staging: Path, stem: str, rows: Sequence[Example]) -> list[tuple[str, Path]]:
    """A version's supervised, preference and CSV files under ``staging`` (blocking); (name in the archive, path)
    of those that are not empty."""
    tables: list[tuple[str, list[dict[str, Any]], bool]] = [
        (f"{stem}.openai-chat.jsonl", supervised_records(rows), False),
        (f"{stem}.preference.jsonl", preference_records(rows), False),
        (f"{stem}.csv", cast("list[dict[str, Any]]", csv_rows(rows)), True),
    ]
    written: list[tuple[str, Path]] = []
    for arcname, records, is_csv in tables:
        if not records:
            continue
        path = staging / arcname
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_csv if is_csv else write_jsonl)(path, records)
        written.append((arcname, path))
    return written


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
