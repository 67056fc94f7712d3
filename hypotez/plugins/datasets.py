"""``/dataset``: upload, select (the original ``select_dataset``), build, list, show, export and archive.

Datasets belong to a server; the files these commands read and write are in that server's area of the data
directory (``guilds/<guild id>/``: ``datasets/``, ``exports/``, ``archive/``, ``tmp/``).  Every command that may
do heavy work defers first; the work itself runs in worker threads and in the database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.ml.datasets import EXPORT_FORMATS, SUPPORTED_SUFFIXES, DatasetCatalog, DatasetDescription
from hypotez.permissions import Caller
from hypotez.plugins._attachments import attachment_chunks, check_upload, files_for, send_limit
from hypotez.plugins._autocomplete import area_autocomplete, dataset_names
from hypotez.plugins._checks import STAFF_IN_SERVERS, guild_area, require_in_server
from hypotez.plugins._deadlines import finish
from hypotez.storage.files import DATASETS, DataDirectory, human_size
from hypotez.storage.models import ReviewKind, ReviewStatus
from hypotez.storage.repositories import DatasetCounts, ReviewRepository
from hypotez.voice.transcripts import Transcripts

loader = lightbulb.Loader()
#: ``/dataset export`` format for the speech dataset (corrected transcripts with their recordings).
SPEECH = "speech"


#: The server's datasets whose name contains what was typed.
dataset_autocomplete = dataset_names(Capability.CURATE)


async def _dataset_directories(area: DataDirectory, typed: str) -> list[str]:
    return await asyncio.to_thread(area.suggest_directories, typed, area=DATASETS)


#: Directories under the server's ``datasets/`` area.
directory_autocomplete = area_autocomplete(Capability.CURATE, _dataset_directories)


def _count(n: int, noun: str) -> str:
    """``1 record``, ``2 records``; ``rated reply`` → ``rated replies``; ``reply needing ...`` → ``replies needing
    ...`` (the first word of a phrase with "needing" is the noun)."""
    head, sep, tail = noun.partition(" needing ")
    plural = (head[:-1] + "ies" if head.endswith("y") else head + "s") + sep + tail
    return f"{n:,} {noun if n == 1 else plural}"


def _guild(caller: Caller) -> int:
    if caller.guild_id is None:
        raise InvalidInputError("Datasets belong to a server; use this command in one.")
    return caller.guild_id


dataset = lightbulb.Group("dataset", "Training datasets: import, build, inspect, export, archive", **STAFF_IN_SERVERS)


@dataset.register
class DatasetUpload(
    lightbulb.SlashCommand,
    name="upload",
    description="Import a .jsonl, .csv or .txt file of examples into a new version of a dataset",
    hooks=[require_in_server(Capability.CURATE)],
):
    file = lightbulb.attachment("file", "The examples: .jsonl (chat, prompt/completion or preference), .csv, .txt")
    name = lightbulb.string(
        "name", "Dataset to add them to", min_length=1, max_length=64, autocomplete=dataset_autocomplete
    )
    positive = lightbulb.boolean("positive", "Examples to follow (true) or to avoid (false)", default=True)
    skip_bad = lightbulb.boolean("skip_bad", "Import the valid lines even when some are bad", default=False)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        catalog: DatasetCatalog,
        data_dir: DataDirectory,
    ) -> None:
        guild_id = _guild(caller)
        catalog.check_name(self.name)
        check_upload(self.file, settings, SUPPORTED_SUFFIXES)
        await ctx.defer(ephemeral=True)
        limit = settings.max_upload_bytes
        area = guild_area(data_dir, caller)
        async with area.incoming(attachment_chunks(self.file), self.file.filename, limit=limit) as path:
            report = await catalog.import_file(
                path,
                filename=self.file.filename,
                guild_id=guild_id,
                actor_id=caller.user_id,
                name=self.name,
                positive=self.positive,
                skip_bad=self.skip_bad,
            )
        await finish(ctx, report.summary())


@dataset.register
class DatasetSelect(
    lightbulb.SlashCommand,
    name="select",
    description="Import a directory of example files from this server's datasets/ area, then archive it",
    hooks=[require_in_server(Capability.CURATE)],
):
    path = lightbulb.string(
        "path", "Directory under datasets/", min_length=1, max_length=300, autocomplete=directory_autocomplete
    )
    positive = lightbulb.boolean("positive", "Examples to follow (true) or to avoid (false)", default=True)
    name = lightbulb.string("name", "Dataset name (default: the directory's)", default=None, max_length=64)
    skip_bad = lightbulb.boolean("skip_bad", "Import the valid lines even when some are bad", default=False)
    archive = lightbulb.boolean(
        "archive", "Zip the directory into archive/ once imported (default); false keeps it", default=True
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, catalog: DatasetCatalog) -> None:
        guild_id = _guild(caller)
        await ctx.defer(ephemeral=True)
        report = await catalog.import_directory(
            self.path,
            guild_id=guild_id,
            actor_id=caller.user_id,
            name=self.name,
            positive=self.positive,
            skip_bad=self.skip_bad,
            archive=self.archive,
        )
        await finish(ctx, report.summary())


@dataset.register
class DatasetBuild(
    lightbulb.SlashCommand,
    name="build",
    description="Build a dataset from corrections and rated replies",
    hooks=[require_in_server(Capability.CURATE)],
):
    name = lightbulb.string("name", "Name of the dataset to build (a new version if it exists)", max_length=64)
    days = lightbulb.integer("days", "Only the last N days", default=None, min_value=1, max_value=3650)
    channel = lightbulb.channel("channel", "Only this channel", default=None)
    model = lightbulb.string("model", "Only replies of this model", default=None, max_length=200)
    min_rating = lightbulb.integer(
        "min_rating",
        "Only rated replies rated at least this (1-5; a thumb up counts 5)",
        default=None,
        min_value=1,
        max_value=5,
    )
    include_pending = lightbulb.boolean(
        "include_pending", "Also take items curators have not reviewed yet (labelled in the dataset)", default=False
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, catalog: DatasetCatalog) -> None:
        guild_id = _guild(caller)
        await ctx.defer(ephemeral=True)
        report = await catalog.build(
            guild_id=guild_id,
            actor_id=caller.user_id,
            name=self.name,
            days=self.days,
            channel_id=int(self.channel.id) if self.channel is not None else None,
            model=self.model,
            min_rating=self.min_rating,
            include_pending=self.include_pending,
        )
        which = "reviewed or pending" if self.include_pending else "approved"
        text = (
            f"Built `{report.dataset.name}` version {report.dataset.version} from "
            f"{_count(report.corrections, f'{which} correction')} (each a chat example and a preference pair) and "
            f"{_count(report.rated_replies, f'{which} rated reply')}: {_count(report.added, 'record')}."
        )
        if self.include_pending:
            text += " It includes items no curator has reviewed yet, and its description says so."
        if report.duplicates:
            text += f" {_count(report.duplicates, 'duplicate')} left out."
        await finish(ctx, text)


@dataset.register
class DatasetList(
    lightbulb.SlashCommand,
    name="list",
    description="The server's datasets",
    hooks=[require_in_server(Capability.CURATE)],
):
    archived = lightbulb.boolean("archived", "Include archived datasets", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, catalog: DatasetCatalog) -> None:
        summaries = await catalog.summaries(_guild(caller), include_archived=self.archived)
        if not summaries:
            await ctx.respond(
                "No datasets yet. Import one with `/dataset upload` or `/dataset select`, "
                "or make one with `/dataset build`.",
                ephemeral=True,
            )
            return
        lines: list[str] = []
        for ds, counts in summaries:
            flag = " (archived)" if ds.archived_at is not None else ""
            held = "; ".join(contents(counts).split("\n")[:2]) if counts.total else "empty"
            lines.append(
                f"• `{ds.name}` v{ds.version}{flag}: {_count(counts.total, 'record')} ({held}), "
                f"~{counts.tokens:,} tokens"
            )
        text = "\n".join(lines)
        if len(text) > 1900:
            text = text[:1900].rsplit("\n", 1)[0] + "\n…"
        await ctx.respond(text, ephemeral=True)


def _sample(record: dict[str, Any] | None) -> str:
    if record is None:
        return "—"
    text = json.dumps(record, ensure_ascii=False)
    return f"```json\n{text[:900]}{'…' if len(text) > 900 else ''}\n```"


_ORIGINS = {"correction": "correction", "feedback": "rated reply", "upload": "uploaded record", "arena": "arena vote"}


def contents(counts: DatasetCounts) -> str:
    """What a version holds, in what members made: chat examples to follow or to avoid, preference pairs (which
    are neither), and where they came from."""
    follow = sum(n for (kind, label, _), (n, _) in counts.groups.items() if kind == "chat" and label == "positive")
    avoid = sum(n for (kind, label, _), (n, _) in counts.groups.items() if kind == "chat" and label == "negative")
    pairs = sum(n for (kind, _, _), (n, _) in counts.groups.items() if kind == "preference")
    lines: list[str] = []
    if follow or avoid:
        parts = [f"{follow:,} to follow"] if follow else []
        parts += [f"{avoid:,} to avoid"] if avoid else []
        lines.append(f"{_count(follow + avoid, 'chat example')} ({', '.join(parts)})")
    if pairs:
        lines.append(_count(pairs, "preference pair"))
    # Where they came from, counted as members made them: a correction gives one chat example and one pair, a
    # rated reply one chat example; uploaded records count one each.
    origins: dict[str, int] = {}
    for (kind, _, origin), (n, _) in counts.groups.items():
        if origin in {"correction", "feedback"} and kind != "chat":
            continue
        origins[origin] = origins.get(origin, 0) + n
    if origins:
        lines.append(
            "from " + ", ".join(f"{n:,} {_plural(n, _ORIGINS.get(origin, origin))}" for origin, n in origins.items())
        )
    return "\n".join(lines) or "—"


def _plural(n: int, noun: str) -> str:
    return _count(n, noun).split(" ", 1)[1]


def description_embed(info: DatasetDescription) -> hikari.Embed:
    """The ``/dataset show`` embed."""
    ds = info.dataset
    title = f"{ds.name} · version {ds.version}" + (" (archived)" if ds.archived_at is not None else "")
    embed = hikari.Embed(title=title[:256], description=(ds.description or "")[:1000] or None)
    counts = info.counts
    embed.add_field("Records", f"{_count(counts.total, 'record')} (~{counts.tokens:,} tokens)", inline=True)
    embed.add_field("Contents", contents(counts), inline=True)
    embed.add_field(
        "For training",
        f"supervised: {info.supervised:,} (~{info.supervised_tokens:,} tokens)\npreference pairs: {info.preference:,}",
    )
    costs = "\n".join(f"{model}: ${usd:,.2f}" for model, usd in sorted(info.costs.items(), key=lambda kv: kv[1]))
    embed.add_field("Hosted fine-tuning estimate (supervised, 3 epochs)", costs[:1024])
    embed.add_field(
        "Versions",
        ", ".join(f"v{v.version}" + ("*" if v.archived_at is not None else "") for v in info.versions)[:1024],
    )
    embed.add_field("Sample (supervised)", _sample(info.sample_chat)[:1024])
    if info.sample_pair is not None:
        embed.add_field("Sample (preference)", _sample(info.sample_pair)[:1024])
    return embed


@dataset.register
class DatasetShow(
    lightbulb.SlashCommand,
    name="show",
    description="Counts, tokens, a training-cost estimate and a sample of a dataset",
    hooks=[require_in_server(Capability.CURATE)],
):
    name = lightbulb.string("name", "The dataset (name, or name@version)", autocomplete=dataset_autocomplete)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, catalog: DatasetCatalog, reviews: ReviewRepository
    ) -> None:
        guild_id = _guild(caller)
        await ctx.defer(ephemeral=True)
        info = await catalog.describe(guild_id, self.name)
        embed = description_embed(info)
        embed.add_field("Review queue (this server)", review_counts(await reviews.counts(guild_id)))
        await ctx.respond(embed=embed, ephemeral=True)


def review_counts(counts: dict[tuple[str, str], int]) -> str:
    """What members made, by what curators decided: "corrections: 3 pending, 10 approved, 1 rejected"."""
    lines: list[str] = []
    for kind, label in (
        (ReviewKind.CORRECTION, "correction"),
        (ReviewKind.RATING, "rated reply"),
        (ReviewKind.NEEDS_CORRECTION, "reply needing a correction"),
        (ReviewKind.ARENA, "arena vote"),
    ):
        by_status = [(status, counts.get((kind.value, status.value), 0)) for status in ReviewStatus]
        total = sum(n for _, n in by_status)
        if total:
            decided = ", ".join(f"{n:,} {status.value}" for status, n in by_status if n)
            lines.append(f"{_count(total, label)}: {decided}")
    return "\n".join(lines) or "nothing yet"


@dataset.register
class DatasetExport(
    lightbulb.SlashCommand,
    name="export",
    description="Export a dataset as OpenAI fine-tuning JSONL or CSV",
    hooks=[require_in_server(Capability.CURATE)],
):
    name = lightbulb.string("name", "The dataset (name, or name@version)", autocomplete=dataset_autocomplete)
    format = lightbulb.string(
        "format",
        "File format (speech: corrected transcripts with their audio, for Hugging Face datasets)",
        choices=[*(lightbulb.Choice(f, f) for f in EXPORT_FORMATS), lightbulb.Choice(SPEECH, SPEECH)],
        default="openai-chat",
    )
    validation = lightbulb.number(
        "validation",
        "Share held out for validation, e.g. 0.1 (default: none)",
        default=0.0,
        min_value=0.0,
        max_value=0.5,
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        catalog: DatasetCatalog,
        data_dir: DataDirectory,
        transcripts: Transcripts,
    ) -> None:
        guild_id = _guild(caller)
        await ctx.defer(ephemeral=True)
        if self.format == SPEECH:
            await _export_speech(ctx, guild_id, self.name, settings, transcripts, data_dir)
            return
        result = await catalog.export(
            guild_id=guild_id, actor_id=caller.user_id, ref=self.name, fmt=self.format, validation=self.validation
        )
        ds = result.dataset
        area = data_dir.for_guild(guild_id)
        where = ", ".join(f"`{area.relative(p)}`" for p in result.paths)
        text = f"`{ds.name}` version {ds.version} as {result.format}: {result.train:,} records"
        if result.validation:
            text += f" for training and {result.validation:,} for validation"
        limit = send_limit(ctx.interaction, settings)
        bundle = await data_dir.bundle(result.paths, limit=limit, stem=result.stem)
        if bundle is None:
            text += (
                f". Too large to attach even zipped (limit {human_size(limit)}); saved in this server's files as "
                f"{where} (`/getfile` cannot send it either)."
            )
            await finish(ctx, text[:2000])
            return
        if len(bundle) == 1 and bundle[0] not in result.paths:
            text += " (zipped to fit Discord's upload limit)"
        await finish(ctx, (text + ".")[:2000], attachments=files_for(bundle))


async def _export_speech(
    ctx: lightbulb.Context,
    guild_id: int,
    name: str,
    settings: Settings,
    transcripts: Transcripts,
    data_dir: DataDirectory,
) -> None:
    """``/dataset export format:speech``: the server's corrected transcripts and their recordings, zipped in the
    ``audiofolder`` layout (``datasets.load_dataset("audiofolder", data_dir=...)`` gives an ``Audio`` column)."""
    if not settings.voice_enabled:
        raise InvalidInputError("Voice is turned off on this bot, so there are no transcripts to export.")
    result = await transcripts.export_speech_dataset(guild_id, name=name)
    area = data_dir.for_guild(guild_id)
    text = f"Speech dataset: {result.written:,} recordings with their corrected transcripts"
    if result.skipped:
        text += f" ({len(result.skipped)} left out: their recordings are gone)"
    limit = send_limit(ctx.interaction, settings)
    size = result.path.stat().st_size
    if size > limit:
        text += (
            f". Saved as `{area.relative(result.path)}` ({human_size(size)}, over the upload limit of "
            f"{human_size(limit)})."
        )
        await finish(ctx, text[:2000])
        return
    await finish(ctx, (text + ".")[:2000], attachments=files_for([result.path]))


@dataset.register
class DatasetArchive(
    lightbulb.SlashCommand,
    name="archive",
    description="Zip a dataset into the archive area and retire it",
    hooks=[require_in_server(Capability.CURATE)],
):
    name = lightbulb.string("name", "The dataset", autocomplete=dataset_autocomplete)
    attach = lightbulb.boolean("attach", "Attach the archive to the reply", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, settings: Settings, catalog: DatasetCatalog) -> None:
        guild_id = _guild(caller)
        await ctx.defer(ephemeral=True)
        info = await catalog.archive(guild_id=guild_id, actor_id=caller.user_id, name=self.name)
        text = (
            f"Archived `{self.name}` as `archive/{info.name}` ({len(info.files)} files, {human_size(info.size)}, "
            "checked against its manifest). It no longer appears in `/dataset list`."
        )
        limit = send_limit(ctx.interaction, settings)
        if self.attach and info.size <= limit:
            await finish(ctx, text, attachments=files_for([info.path]))
            return
        if self.attach:
            text += f" It is too large to attach (limit {human_size(limit)})."
        await finish(ctx, text)


loader.command(dataset)
