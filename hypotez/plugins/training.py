"""``/train`` (the original ``train``): fine-tune on a dataset or straight from an uploaded file, with the local
or the OpenAI trainer; the job's status message is posted in the channel and kept current."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.assistant import Assistant
from hypotez.ml.datasets import SUPPORTED_SUFFIXES, DatasetCatalog, split_examples
from hypotez.ml.hyperparameters import (
    DataFacts,
    Hyperparameters,
    ModelFacts,
    TrainerOptions,
    options_for,
    read_model_facts,
    resolve,
)
from hypotez.ml.jobs import JobSpec, JobTracker, LocalLimits, queue_position
from hypotez.ml.local_models import LocalModels
from hypotez.ml.trainers.base import TrainingMethod, TrainingRequest
from hypotez.ml.training_data import load_training_data, validate_for
from hypotez.permissions import Caller
from hypotez.plugins._attachments import attachment_chunks, check_upload
from hypotez.plugins._autocomplete import dataset_names
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.plugins._cooldowns import cooldown
from hypotez.plugins._job_status import JobMessages
from hypotez.storage.files import DataDirectory
from hypotez.storage.models import TrainingJob
from hypotez.storage.repositories import AuditLog, DatasetRepository, EvaluationRepository

loader = lightbulb.Loader()


#: The server's datasets, for trainers.
dataset_autocomplete = dataset_names(Capability.TRAIN)


@loader.command
class Train(
    lightbulb.SlashCommand,
    name="train",
    description="Fine-tune a model on a dataset",
    hooks=[require(Capability.TRAIN), cooldown("train")],
    **STAFF_IN_SERVERS,
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
        "supervised (chat examples), preference (DPO pairs), or supervised then DPO on the pairs",
        choices=[
            lightbulb.Choice("supervised", "supervised"),
            lightbulb.Choice("preference", "preference"),
            lightbulb.Choice("supervised+preference (local)", "supervised+preference"),
        ],
        default="supervised",
    )
    # The hyperparameters: each is "auto" unless given, and maps by name onto the trainer's declared options
    # (hypotez.ml.hyperparameters); one the trainer does not take is refused with where it applies.
    epochs = lightbulb.number(
        "epochs", "Passes over the data (default: auto)", default=None, min_value=0.01, max_value=1000
    )
    learning_rate = lightbulb.number(
        "learning_rate",
        "local: learning rate; openai: learning-rate multiplier (default: auto)",
        default=None,
        min_value=0,
    )
    batch_size = lightbulb.integer(
        "batch_size", "Examples per step (default: auto)", default=None, min_value=1, max_value=256
    )
    max_steps = lightbulb.integer("max_steps", "local: stop after this many steps", default=None, min_value=1)
    lora = lightbulb.boolean(
        "lora", "local: a LoRA adapter (true) or every weight (false); default: auto, by model size", default=None
    )
    lora_rank = lightbulb.integer(
        "lora_rank", "local: the LoRA adapter's rank (default: auto)", default=None, min_value=1, max_value=1024
    )
    beta = lightbulb.number(
        "beta",
        "Preference training: how close DPO stays to its reference (default: auto, 0.1)",
        default=None,
        min_value=0,
    )
    validation = lightbulb.number(
        "validation", "Share of examples held out for validation (0-0.5)", default=0.0, min_value=0, max_value=0.5
    )
    suffix = lightbulb.string("suffix", "A name for the resulting model", default=None, max_length=40)

    def _options(self, method: TrainingMethod) -> TrainerOptions:
        """The slash options given, as the trainer's declared options (by name)."""
        given = {
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_steps": self.max_steps,
            "lora": self.lora,
            "lora_rank": self.lora_rank,
            "beta": self.beta,
        }
        if self.trainer == "openai" and isinstance(self.epochs, float):
            if not self.epochs.is_integer():
                raise InvalidInputError("OpenAI trains whole epochs: give `epochs` as a whole number.")
            given["epochs"] = int(self.epochs)
        return options_for(self.trainer, given, method=method.value)

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
        evaluation: EvaluationRepository,
        local_models: LocalModels,
        catalog: DatasetCatalog,
        data_dir: DataDirectory,
        assistant: Assistant,
    ) -> None:
        method = TrainingMethod(self.method)
        jobs.trainer(self.trainer)  # an unavailable trainer is refused before any work
        if method is TrainingMethod.SUPERVISED_PREFERENCE and self.trainer == "openai":
            raise InvalidInputError(
                "`method:supervised+preference` runs on the local trainer. With OpenAI, train `method:supervised`, "
                "then `method:preference` with `base_model:` the fine-tuned model (OpenAI's DPO compares with the "
                "model it starts from)."
            )
        options = self._options(method)
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
        # Every "auto" decided now, from the data and the base model's config.json (no weights loaded): shown
        # in the reply, stored with the job, and used by the trainer exactly.
        model = (
            await asyncio.to_thread(read_model_facts, load_from, shown=base_model)
            if self.trainer == "local"
            else ModelFacts(base_model)
        )
        plan = resolve(
            options,
            method=method.value,
            data=await asyncio.to_thread(DataFacts.of, train),
            model=model,
            reference=base_model,
        )
        spec = JobSpec(
            trainer=self.trainer,
            base_model=base_model,
            method=method.value,
            hyperparameters={**plan.stored(), "validation": self.validation},
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
                hyperparameters=plan.values,
                suffix=self.suffix,
            )

        # The limits as configured (the tracker polls with the latest; it starts with the defaults).
        jobs.local_limits = LocalLimits(settings.local_max_concurrent_jobs, settings.local_max_jobs_per_server)
        job, created = await jobs.submit(spec, request, idempotency_key=f"interaction:{ctx.interaction.id}")
        if not created:
            where = f" (status message: {_message_link(job)})" if job.status_message_id else ""
            await ctx.respond(f"An identical training job #{job.id} is already {job.status}{where}.", ephemeral=True)
            return
        # Kept for /test run job:<id>: the model scored on what it never saw apart from what it learned from.
        await evaluation.keep_job_examples(job.id, train, valid)
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
        position = queue_position(job)
        await ctx.respond(
            (
                f"Training job #{job.id} started on `{base_model}`"
                if position is None
                else f"Training job #{job.id} is queued (position {position}): it starts on `{base_model}` when "
                "a local training slot frees,"
            )
            + f" with {len(train)} examples"
            + (f" ({len(valid)} held out for validation)" if valid else "")
            + (
                ". Its status message below updates as it runs."
                if status_message is not None
                else ". I cannot post in this channel, so follow it with `/jobs status`."
            )
            + "\n"
            + _fitted(plan),
            ephemeral=True,
        )


#: Room left in a 2,000-character reply for the hyperparameters after the sentence about the job.
_PLAN_CHARS = 1500


def _fitted(plan: Hyperparameters) -> str:
    """The hyperparameters for the reply; without the reasons when they would not fit in one message."""
    shown = plan.describe()
    return shown if len(shown) <= _PLAN_CHARS else plan.describe(reasons=False)[:_PLAN_CHARS]


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
