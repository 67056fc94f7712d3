"""Training: ``/train`` (the original ``train``), ``/jobs`` (the original ``save_job_id``), ``/model`` and
``/test`` (the original ``test`` / ``predict`` / ``handle_errors``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
from pathlib import Path

import hikari
import lightbulb

from hypotez.app import Hypotez, Services
from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.assistant import Assistant
from hypotez.ml.charts import win_loss_chart_png
from hypotez.ml.datasets import SUPPORTED_SUFFIXES, DatasetCatalog, split_examples
from hypotez.ml.evaluation import EvalReport, TestCase, compare, evaluate, parse_test_data
from hypotez.ml.jobs import JobSpec, JobTracker
from hypotez.ml.local_models import LocalModels
from hypotez.ml.trainers.base import TrainingMethod, TrainingRequest
from hypotez.ml.training_data import load_training_data, validate_for
from hypotez.permissions import Caller
from hypotez.plugins._checks import require
from hypotez.plugins._files import allowed, attachment_chunks, check_upload, choices
from hypotez.plugins._jobs_ui import JobActions, JobMessages, render
from hypotez.plugins.chat import model_autocomplete
from hypotez.plugins.feedback import read_text_attachment
from hypotez.storage.files import REPORTS, DataDirectory
from hypotez.storage.models import TrainingJob
from hypotez.storage.repositories import AuditLog, DatasetRepository, GuildSettingsRepository

loader = lightbulb.Loader()
_LOGGER = logging.getLogger(__name__)

#: Largest test-data attachment read for /test.
TEST_FILE_LIMIT = 5 * 1024 * 1024


async def job_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    jobs: JobTracker = lightbulb.di.INJECTED,
    services: Services = lightbulb.di.INJECTED,
) -> None:
    """Recent jobs of this server, newest first: ``#12 succeeded · local · ft-name`` (for trainers only)."""
    if not await allowed(ctx, services, Capability.TRAIN):
        await ctx.respond([])
        return
    typed = str(ctx.focused.value or "").lstrip("#").strip()
    offered: list[hikari.impl.AutocompleteChoiceBuilder] = []
    for job in await jobs.list(ctx.interaction.guild_id, limit=50):
        label = f"#{job.id} {job.status} · {job.trainer} · {job.base_model}"
        if typed and typed not in str(job.id) and typed.lower() not in label.lower():
            continue
        offered.append(hikari.impl.AutocompleteChoiceBuilder(name=label[:100], value=str(job.id)))
    await ctx.respond(offered[:25])


def _job_id(value: str) -> int:
    text = value.strip().lstrip("#")
    if not text.isdigit():
        raise InvalidInputError(f"“{value[:50]}” is not a job number; pick one from the list.")
    return int(text)


async def _own_job(jobs: JobTracker, caller: Caller, value: str) -> int:
    job = await jobs.get(_job_id(value))
    if job.guild_id != caller.guild_id:
        raise NotFoundError("training job", value, f"There is no training job #{job.id} in this server.")
    return job.id


async def dataset_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    datasets: DatasetRepository = lightbulb.di.INJECTED,
    services: Services = lightbulb.di.INJECTED,
) -> None:
    """Dataset names of this server (for trainers only)."""
    if not await allowed(ctx, services, Capability.TRAIN):
        await ctx.respond([])
        return
    typed = str(ctx.focused.value or "").lower()
    names = [d.name for d in await datasets.latest(int(ctx.interaction.guild_id or 0))]
    await ctx.respond(choices([n for n in names if typed in n.lower()]))


@loader.command
class Train(
    lightbulb.SlashCommand,
    name="train",
    description="Fine-tune a model on a dataset",
    hooks=[require(Capability.TRAIN)],
):
    dataset = lightbulb.string(
        "dataset", "Dataset to train on", default=None, autocomplete=dataset_autocomplete, max_length=100
    )
    file = lightbulb.attachment("file", "Or train straight from a .jsonl, .csv or .txt file of examples", default=None)
    trainer = lightbulb.string(
        "trainer",
        "Where to train",
        choices=[lightbulb.Choice("local (this server's machine)", "local"), lightbulb.Choice("openai", "openai")],
        default="local",
    )
    base_model = lightbulb.string("base_model", "Model to start from", default=None, max_length=300)
    method = lightbulb.string(
        "method",
        "supervised (chat examples) or preference (DPO pairs)",
        choices=[lightbulb.Choice("supervised", "supervised"), lightbulb.Choice("preference", "preference")],
        default="supervised",
    )
    epochs = lightbulb.integer("epochs", "Passes over the data", default=None, min_value=1, max_value=50)
    learning_rate = lightbulb.number(
        "learning_rate", "local: learning rate; openai: learning-rate multiplier", default=None, min_value=0
    )
    batch_size = lightbulb.integer("batch_size", "Examples per step", default=None, min_value=1, max_value=256)
    max_steps = lightbulb.integer("max_steps", "local: stop after this many steps", default=None, min_value=1)
    lora = lightbulb.boolean("lora", "local: train a LoRA adapter (default) instead of every weight", default=None)
    validation = lightbulb.number(
        "validation", "Share of examples held out for validation (0-0.5)", default=0.0, min_value=0, max_value=0.5
    )
    suffix = lightbulb.string("suffix", "A name for the resulting model", default=None, max_length=40)

    def _hyperparameters(self) -> dict[str, object]:
        hp: dict[str, object] = {}
        if self.epochs is not None:
            hp["epochs"] = self.epochs
        if self.batch_size is not None:
            hp["batch_size"] = self.batch_size
        if self.learning_rate is not None:
            hp["learning_rate_multiplier" if self.trainer == "openai" else "learning_rate"] = self.learning_rate
        if self.trainer == "local":
            if self.max_steps is not None:
                hp["max_steps"] = self.max_steps
            if self.lora is not None:
                hp["lora"] = self.lora
        return hp

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        datasets: DatasetRepository,
        jobs: JobTracker,
        messages: JobMessages,
        audit: AuditLog,
        local_models: LocalModels,
        catalog: DatasetCatalog,
        data_dir: DataDirectory,
        assistant: Assistant,
    ) -> None:
        method = TrainingMethod(self.method)
        jobs.trainer(self.trainer)  # an unavailable trainer is refused before any work
        base_model = self.base_model or settings.default_base_model(self.trainer)
        # What the trainer loads: a local model's directory; a hub or OpenAI name as it is.
        load_from = local_models.base_model_for_training(base_model) if self.trainer == "local" else base_model
        if self.trainer == "local":
            await _check_local_base(assistant, caller, base_model)
        if (self.dataset is None) == (self.file is None):
            raise InvalidInputError("Train on a `dataset` or on a `file`, one of the two.")
        if self.file is not None:
            check_upload(self.file, settings, SUPPORTED_SUFFIXES)
            await ctx.defer(ephemeral=True)
            name = await _import_upload(self.file, caller, settings, catalog, data_dir)
        else:
            name = self.dataset or ""
        data = await load_training_data(datasets, guild_id=caller.guild_id, name=name, method=method)
        train, valid = split_examples(data.examples, self.validation)
        validate_for(self.trainer, train)
        if not ctx.initial_response_sent.is_set():
            await ctx.defer(ephemeral=True)
        hyperparameters = self._hyperparameters()
        spec = JobSpec(
            trainer=self.trainer,
            base_model=base_model,
            method=method.value,
            hyperparameters={**hyperparameters, "validation": self.validation},
            data_fingerprint=data.fingerprint,
            guild_id=caller.guild_id,
            requested_by=caller.user_id,
            dataset_id=data.dataset.id,
            status_channel_id=caller.channel_id,
            suffix=self.suffix,
        )

        async def request(job_key: str) -> TrainingRequest:
            return TrainingRequest(
                job_key=job_key,
                base_model=load_from,
                method=method,
                train_examples=train,
                validation_examples=valid,
                hyperparameters=hyperparameters,
                suffix=self.suffix,
            )

        job, created = await jobs.submit(spec, request, idempotency_key=f"interaction:{ctx.interaction.id}")
        if not created:
            where = f" (status message: {_message_link(job)})" if job.status_message_id else ""
            await ctx.respond(f"An identical training job #{job.id} is already {job.status}{where}.", ephemeral=True)
            return
        try:
            status_message = await messages.post(job, caller.channel_id)
        except hikari.ForbiddenError:
            status_message = None  # the bot may answer commands here but not post: /jobs status still works
        else:
            await jobs.set_status_message(job.id, caller.channel_id, int(status_message.id))
        await audit.record(
            "job.start",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=f"job:{job.id}",
            details={
                "trainer": self.trainer,
                "base_model": base_model,
                "dataset": self.dataset,
                "examples": len(train),
            },
        )
        await ctx.respond(
            f"Training job #{job.id} started on `{base_model}` with {len(train)} examples"
            + (f" ({len(valid)} held out for validation)" if valid else "")
            + (
                ". Its status message below updates as it runs."
                if status_message is not None
                else ". I cannot post in this channel, so follow it with `/jobs status`."
            ),
            ephemeral=True,
        )


#: A Hugging Face hub id: ``name`` or ``organisation/name`` (never a path).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


async def _check_local_base(assistant: Assistant, caller: Caller, base_model: str) -> None:
    """A local trainer starts from ``local:<name>`` models this server may use, or a hub id — never a path."""
    if base_model.startswith("local:"):
        await assistant.require_model(caller.guild_id, base_model)
    elif not _HUB_ID.fullmatch(base_model) or ".." in base_model:
        raise InvalidInputError(
            f"`{base_model[:100]}` is not a model to train from: give a Hugging Face model id such as "
            "`Qwen/Qwen2.5-0.5B-Instruct`, or `local:<name>` for a model of this server (`/model list`)."
        )


async def _import_upload(
    file: hikari.Attachment, caller: Caller, settings: Settings, catalog: DatasetCatalog, data_dir: DataDirectory
) -> str:
    """Import an uploaded training file as a dataset named after it and its content (so the same file twice
    is the same dataset, and the same request); returns the dataset's name."""
    if caller.guild_id is None:
        raise InvalidInputError("Training belongs to a server; use this command in one.")
    area = data_dir.for_guild(caller.guild_id)
    async with area.incoming(attachment_chunks(file), file.filename, limit=settings.max_upload_bytes) as path:
        digest = await asyncio.to_thread(_sha256, path)
        stem = re.sub(r"[^a-z0-9-]+", "-", Path(file.filename).stem.lower()).strip("-")[:40] or "file"
        name = f"upload-{stem}-{digest[:8]}"
        try:
            await catalog.repository.resolve(caller.guild_id, name)
        except NotFoundError:
            await catalog.import_file(
                path,
                filename=file.filename,
                guild_id=caller.guild_id,
                actor_id=caller.user_id,
                name=name,
                positive=True,
            )
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _message_link(job: TrainingJob) -> str:
    guild = job.guild_id or "@me"
    return f"https://discord.com/channels/{guild}/{job.status_channel_id}/{job.status_message_id}"


jobs_group = lightbulb.Group("jobs", "Training jobs")


@jobs_group.register
class JobsList(
    lightbulb.SlashCommand, name="list", description="Recent training jobs", hooks=[require(Capability.TRAIN)]
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        rows = await jobs.list(caller.guild_id, limit=15)
        if not rows:
            await ctx.respond("No training jobs yet. Start one with `/train`.", ephemeral=True)
            return
        lines = [
            f"`#{j.id}` **{j.status}** · {j.trainer} · `{j.base_model[:60]}`"
            + (f" → `{j.result_model[:80]}`" if j.result_model else "")
            + f" · <t:{int(j.created_at.timestamp())}:R>"
            for j in rows
        ]
        await ctx.respond("\n".join(lines)[:2000], ephemeral=True)


@jobs_group.register
class JobsStatus(
    lightbulb.SlashCommand, name="status", description="A job's status", hooks=[require(Capability.TRAIN)]
):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        await ctx.defer(ephemeral=True)
        await jobs.refresh(job_id)
        embed, _ = await render(await jobs.get(job_id))
        await ctx.respond(embed=embed, ephemeral=True)


@jobs_group.register
class JobsEvents(
    lightbulb.SlashCommand, name="events", description="A job's events", hooks=[require(Capability.TRAIN)]
):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        events = await jobs.events(job_id)
        if not events:
            await ctx.respond(f"Job #{job_id} has no events yet.", ephemeral=True)
            return
        lines = [f"<t:{int(e.created_at.timestamp())}:T> [{e.level}] {e.message}" for e in events]
        text = "\n".join(lines)
        if len(text) <= 1900:
            await ctx.respond(f"Events of job #{job_id}:\n{text}", ephemeral=True)
        else:
            await ctx.respond(
                f"Events of job #{job_id} ({len(events)}):",
                attachment=hikari.Bytes(text.encode(), f"job-{job_id}-events.txt"),
                ephemeral=True,
            )


@jobs_group.register
class JobsCancel(lightbulb.SlashCommand, name="cancel", description="Cancel a job", hooks=[require(Capability.TRAIN)]):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker, audit: AuditLog) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        await ctx.defer(ephemeral=True)
        job = await jobs.cancel(job_id)
        await audit.record("job.cancel", guild_id=caller.guild_id, actor_id=caller.user_id, target=f"job:{job_id}")
        await ctx.respond(f"Cancelling training job #{job.id} ({job.status}).", ephemeral=True)


loader.command(jobs_group)


model_group = lightbulb.Group("model", "Which model the bot talks with")


@model_group.register
class ModelUse(
    lightbulb.SlashCommand,
    name="use",
    description="Switch this server's (or channel's) chat model",
    hooks=[require(Capability.TRAIN)],
):
    name = lightbulb.string("name", "Model", autocomplete=model_autocomplete, max_length=300)
    channel = lightbulb.boolean("channel", "Only in this channel (default: the whole server)", default=False)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        assistant: Assistant,
        guild_settings: GuildSettingsRepository,
        audit: AuditLog,
    ) -> None:
        if caller.guild_id is None:
            raise InvalidInputError("Models are chosen per server; use this command in a server.")
        await ctx.defer(ephemeral=True)
        if self.name not in await assistant.model_choices(caller.guild_id):
            raise NotFoundError(
                "model", self.name, f"`{self.name}` is not a model this bot can use. Pick one from the list."
            )
        scope = caller.channel_id if self.channel else 0
        await guild_settings.update(caller.guild_id, scope, active_model=self.name)
        await audit.record(
            "model.use", guild_id=caller.guild_id, actor_id=caller.user_id, target=self.name, details={"channel": scope}
        )
        where = "in this channel" if self.channel else "in this server"
        await ctx.respond(f"The bot now talks with `{self.name}` {where}.", ephemeral=True)


@model_group.register
class ModelList(
    lightbulb.SlashCommand, name="list", description="Base and trained models", hooks=[require(Capability.CHAT)]
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant) -> None:
        await ctx.defer(ephemeral=True)
        active = await assistant.active_model(caller.guild_id, caller.channel_id)
        trained = await assistant.registered_models(caller.guild_id)
        try:
            served = await assistant.backends.backend_models()
        except Exception:
            served = []
        lines = [f"Active here: `{active}`", "", "**Trained**"]
        lines += [
            f"`{m.name}` · {m.backend} · from `{m.base_model}`"
            + (f" · dataset #{m.dataset_id}" if m.dataset_id else "")
            + (f" · job #{m.job_id}" if m.job_id else "")
            for m in trained
        ] or ["none yet (`/train`)"]
        lines += [
            "",
            "**Base (served by the chat backend)**",
            ", ".join(f"`{m}`" for m in served[:40]) or "unavailable",
        ]
        await ctx.respond("\n".join(lines)[:2000], ephemeral=True)


loader.command(model_group)


async def _test_cases(data: str | None, file: hikari.Attachment | None) -> list[TestCase]:
    if data is not None and file is None:
        return parse_test_data(data)
    if file is not None and data is None:
        return parse_test_data(await read_text_attachment(file, TEST_FILE_LIMIT))
    raise InvalidInputError("Give the test data either inline as `data` (JSON) or as a `file` (JSONL), not both.")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


async def _save_report(data_dir: DataDirectory, guild_id: int | None, name: str, content: str) -> str:
    """Keep the report in the server's ``reports/`` area for later analysis (``/getfile`` serves it there);
    returns its path in that area."""
    area = data_dir.for_guild(guild_id)

    def write() -> str:
        path = area.area(REPORTS) / name
        path.write_text(content, encoding="utf-8")
        return area.relative(path)

    return await asyncio.to_thread(write)


def _report_name(kind: str, model: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:60]
    return f"{kind}-{stamp}-{safe}-{hashlib.sha1(model.encode()).hexdigest()[:6]}.jsonl"  # noqa: S324 - a file name


def _summary_lines(report: EvalReport) -> list[str]:
    return [
        f"**{report.model}** on {len(report.predictions)} cases",
        f"exact match {_pct(report.exact_match)} · normalized match {_pct(report.normalized_match)} · "
        f"similarity {_pct(report.similarity)} · errors {report.errors}",
    ]


test_group = lightbulb.Group("test", "Evaluate a model on test data")


@test_group.register
class TestRun(
    lightbulb.SlashCommand,
    name="run",
    description="Run a model on test data and score it",
    hooks=[require(Capability.TRAIN)],
):
    data = lightbulb.string("data", 'Inline JSON: {"text": ..., "expected": ...} or a list of them', default=None)
    file = lightbulb.attachment("file", "A JSONL file of test cases", default=None)
    model = lightbulb.string(
        "model", "Model (default: the active one here)", default=None, autocomplete=model_autocomplete
    )

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        await ctx.defer(ephemeral=True)
        cases = await _test_cases(self.data, self.file)
        model = self.model or await assistant.active_model(caller.guild_id, caller.channel_id)
        await assistant.require_model(caller.guild_id, model)
        report = await evaluate(await assistant.backend_for(caller.guild_id, model), model, cases)
        path = await _save_report(data_dir, caller.guild_id, _report_name("test", model), report.jsonl())
        await audit.record(
            "test.run", guild_id=caller.guild_id, actor_id=caller.user_id, target=model, details=report.summary()
        )
        lines = _summary_lines(report)
        for prediction in report.predictions[:5]:
            mark = (
                "✅"
                if prediction.normalized
                else ("⚠️" if prediction.error else ("❌" if prediction.normalized is False else "•"))
            )
            shown = prediction.error or (prediction.output or "")
            lines.append(f"{mark} {prediction.case.prompt[:80]} → {shown[:120]}")
        if len(report.predictions) > 5:
            lines.append(f"… {len(report.predictions) - 5} more in the report")
        lines.append(f"Report kept as `{path}` ({len(report.failures)} failures and errors).")
        await ctx.respond(
            "\n".join(lines)[:2000],
            attachment=hikari.Bytes(report.jsonl().encode("utf-8"), path.rsplit("/", 1)[-1]),
            ephemeral=True,
        )


@test_group.register
class TestCompare(
    lightbulb.SlashCommand,
    name="compare",
    description="Two models on the same test data",
    hooks=[require(Capability.TRAIN)],
):
    model_a = lightbulb.string("model_a", "First model", autocomplete=model_autocomplete)
    model_b = lightbulb.string("model_b", "Second model", autocomplete=model_autocomplete)
    data = lightbulb.string("data", "Inline JSON test data", default=None)
    file = lightbulb.attachment("file", "A JSONL file of test cases", default=None)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        await ctx.defer(ephemeral=True)
        cases = await _test_cases(self.data, self.file)
        for model in (self.model_a, self.model_b):
            await assistant.require_model(caller.guild_id, model)
        comparison = await compare(
            await assistant.backend_for(caller.guild_id, self.model_a),
            self.model_a,
            await assistant.backend_for(caller.guild_id, self.model_b),
            self.model_b,
            cases,
        )
        wins_a, wins_b, ties = comparison.tally()
        report = comparison.jsonl()
        path = await _save_report(
            data_dir, caller.guild_id, _report_name("compare", f"{self.model_a}-vs-{self.model_b}"), report
        )
        chart = await asyncio.to_thread(win_loss_chart_png, self.model_a, self.model_b, wins_a, wins_b, ties)
        await audit.record(
            "test.compare",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=f"{self.model_a} vs {self.model_b}",
            details={"wins_a": wins_a, "wins_b": wins_b, "ties": ties},
        )
        lines = [
            *_summary_lines(comparison.a),
            *_summary_lines(comparison.b),
            f"`{self.model_a}` better on {wins_a}, `{self.model_b}` better on {wins_b}, ties {ties}.",
            f"Side-by-side report kept as `{path}`.",
        ]
        await ctx.respond(
            "\n".join(lines)[:2000],
            attachments=[
                hikari.Bytes(report.encode("utf-8"), path.rsplit("/", 1)[-1]),
                hikari.Bytes(chart, "comparison.png"),
            ],
            ephemeral=True,
        )


loader.command(test_group)


def setup(app: Hypotez) -> None:
    """Persistent job buttons, and live status messages for every job update."""
    messages = JobMessages(app.bot.rest)
    app.client.di.registry_for(lightbulb.di.Contexts.DEFAULT).register_value(JobMessages, messages)
    app.miru.start_view(JobActions(app.services, messages), bind_to=None)
    app.services.jobs.subscribe(messages.update)
