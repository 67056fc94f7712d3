"""The training process of the ``local`` trainer: ``python -m hypotez.ml.trainers._local_worker JOB_DIR``.

The command forks: the parent records the child's pid and exits at once, and the child, detached in its
own session, trains.  So the bot never owns a long-lived child process (asyncio would kill it when the
bot's loop closes) and a job outlives a restart of the bot.

Everything the bot learns about the job goes through files in the job directory (:class:`JobFiles`):
``request.json`` in, ``status.json`` (replaced atomically), ``events.jsonl`` (appended) and the model
out, ``cancel`` as the stop request.  Heavy libraries (torch, transformers, trl, peft, datasets) are
imported only in the child, so this module is cheap to import from the bot.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import importlib
import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hypotez.ml.hyperparameters import LocalSettings

__all__ = [
    "EXTRA_HINT",
    "LOCAL_EXTRA_MODULES",
    "JobFiles",
    "append_event",
    "best_checkpoint",
    "checkpoint_listing",
    "main",
    "read_json",
    "record_checkpoint",
    "run",
    "write_json_atomic",
]

#: The modules the ``local`` extra provides; the worker needs every one.
LOCAL_EXTRA_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
EXTRA_HINT = "Local training needs the `local` extra: pip install 'hypotez[local]'."

_ROLES = {"system", "user", "assistant"}
#: The methods a job may use (``supervised+preference``: SFT, then DPO from its model).
METHODS = ("supervised", "preference", "supervised+preference")
# A template for base models that ship none: TRL and the chat backend both need one.
_FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + eos_token + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


@dataclass(frozen=True, slots=True)
class JobFiles:
    """Where one job keeps its files."""

    root: Path

    @property
    def request(self) -> Path:
        return self.root / "request.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "worker.log"

    @property
    def pid(self) -> Path:
        return self.root / "worker.pid"

    @property
    def cancel(self) -> Path:
        return self.root / "cancel"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def stage_model(self, stage: str) -> Path:
        """Where a job of several stages keeps the model of an earlier one (``supervised``)."""
        return self.root / f"{stage}-model"

    @property
    def checkpoints(self) -> Path:
        """Where the trainer saves checkpoints (``checkpoint-<step>`` directories)."""
        return self.root / "checkpoints"

    @property
    def checkpoint_list(self) -> Path:
        """``checkpoints.json``: every checkpoint saved, with its step and losses, and the best step."""
        return self.root / "checkpoints.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data``; a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cast("dict[str, Any]", data) if isinstance(data, dict) else None


def append_event(
    files: JobFiles, message: str, *, kind: str = "message", level: str = "info", data: dict[str, Any] | None = None
) -> None:
    """Append one event as a single line (one ``write``, so only the last line can ever be partial)."""
    line = {
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "kind": kind,
        "level": level,
        "message": message,
        "data": data or {},
    }
    with files.events.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


class JobError(Exception):
    """A failure to report as it is: its message is a plain-language sentence for the member."""


class _Status:
    """The worker's view of ``status.json``."""

    def __init__(self, files: JobFiles) -> None:
        self.files = files
        self.fields: dict[str, Any] = {"state": "validating", "pid": os.getpid()}

    def update(self, **fields: Any) -> None:
        self.fields.update(fields, updated_at=dt.datetime.now(dt.UTC).isoformat())
        write_json_atomic(self.files.status, self.fields)


# --------------------------------------------------------------------------------------------- examples


def _messages(value: object, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise JobError(f"{where} has no messages.")
    out: list[dict[str, str]] = []
    for message in cast("list[object]", value):
        if not isinstance(message, dict):
            raise JobError(f"{where} has a message that is not an object.")
        message = cast("dict[str, object]", message)
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in _ROLES:
            raise JobError(f"{where} has a message with role {role!r}; use system, user or assistant.")
        if not isinstance(content, str):
            raise JobError(
                f"{where} has a message whose content is not text (tool calls and images are not supported)."
            )
        out.append({"role": role, "content": content})
    return out


def _trained_prefix(messages: object) -> list[Any] | None:
    """The conversation up to its last assistant turn that is trained on: OpenAI's ``weight: 0`` on an assistant
    turn means "context, not a target", and the local trainer learns from the last turn alone.  ``None`` when
    every assistant turn has weight 0; a malformed list is returned as it is (``_messages`` says what is wrong)."""
    if not isinstance(messages, list):
        return cast("list[Any] | None", messages)
    turns = cast("list[Any]", messages)
    assistant = [
        index
        for index, turn in enumerate(turns)
        if isinstance(turn, dict) and cast("dict[str, Any]", turn).get("role") == "assistant"
    ]
    trained = [index for index in assistant if cast("dict[str, Any]", turns[index]).get("weight", 1) != 0]
    if trained:
        return turns[: trained[-1] + 1]
    return None if assistant else turns


def supervised_rows(examples: list[Any], label: str = "Training example") -> list[dict[str, Any]]:
    """OpenAI supervised examples → TRL conversational prompt-completion rows.

    The last message must be the assistant's: it is the completion, and the loss is computed on it alone
    (the earlier turns are context), which is what a correction of one reply asks for.
    """
    rows: list[dict[str, Any]] = []
    for number, example in enumerate(examples, 1):
        where = f"{label} {number}"
        if not isinstance(example, dict) or "messages" not in example:
            raise JobError(f'{where} is not a supervised example ({{"messages": [...]}}).')
        raw = cast("dict[str, Any]", example)["messages"]
        trained = _trained_prefix(raw)
        if trained is None:
            continue  # every assistant turn has weight 0: nothing in it to learn
        messages = _messages(trained, where)
        if messages[-1]["role"] != "assistant":
            raise JobError(f"{where} does not end with an assistant message.")
        if len(messages) < 2:
            raise JobError(f"{where} has an assistant message but nothing before it to answer.")
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return rows


def preference_rows(examples: list[Any], label: str = "Training example") -> list[dict[str, Any]]:
    """OpenAI preference examples → TRL conversational prompt/chosen/rejected rows."""
    rows: list[dict[str, Any]] = []
    for number, example in enumerate(examples, 1):
        where = f"{label} {number}"
        if not isinstance(example, dict):
            raise JobError(f"{where} is not a preference example.")
        example = cast("dict[str, Any]", example)
        prompt_input = example.get("input")
        if not isinstance(prompt_input, dict) or "messages" not in prompt_input:
            raise JobError(f'{where} has no "input": {{"messages": [...]}}.')
        prompt = _messages(cast("dict[str, Any]", prompt_input)["messages"], where)
        chosen = _messages(example.get("preferred_output"), f"{where} (preferred output)")
        rejected = _messages(example.get("non_preferred_output"), f"{where} (non-preferred output)")
        if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            raise JobError(f"{where}: the preferred and non-preferred outputs must be assistant messages.")
        if len(chosen) > 1 or len(rejected) > 1:
            # As OpenAI's DPO: the final assistant reply is what is compared; earlier turns are the prompt.
            if chosen[:-1] != rejected[:-1]:
                raise JobError(
                    f"{where}: the preferred and non-preferred outputs differ before their last message; a "
                    "preference pair compares one final assistant reply (earlier turns belong in the input)."
                )
            prompt, chosen, rejected = prompt + chosen[:-1], chosen[-1:], rejected[-1:]
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def chosen_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference rows as supervised rows on their chosen replies: the first stage of ``supervised+preference``."""
    return [{"prompt": row["prompt"], "completion": row["chosen"]} for row in rows]


# ----------------------------------------------------------------------------------------- hyperparameters


def _settings(request: dict[str, Any]) -> LocalSettings:
    """The request's hyperparameters, used exactly as they are: every "auto" was resolved before the job was
    written (by ``/train`` or the local trainer, with :func:`hypotez.ml.hyperparameters.resolve`)."""
    values = request.get("hyperparameters")
    try:
        return LocalSettings.from_values(
            cast("dict[str, Any]", values) if isinstance(values, dict) else {}, method=str(request.get("method"))
        )
    except ValueError as exc:
        raise JobError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class _Stage:
    """One training pass of a job: supervised (SFT) or preference (DPO)."""

    kind: str
    rows: list[dict[str, Any]]
    valid_rows: list[dict[str, Any]]
    epochs: float
    learning_rate: float
    max_steps: int
    output_dir: Path

    def planned_steps(self, batch_size: int) -> int:
        """The optimiser steps the trainer will take (as transformers counts them)."""
        if self.max_steps > 0:
            return self.max_steps
        return max(1, math.ceil(self.epochs * math.ceil(len(self.rows) / batch_size)))


def _stages(files: JobFiles, request: dict[str, Any], settings: LocalSettings) -> list[_Stage]:
    method = request.get("method")
    if method not in METHODS:
        raise JobError(
            f"The training method {method!r} is not supported; use supervised, preference or supervised+preference."
        )
    train_examples = cast("list[Any]", request.get("train_examples") or [])
    if not train_examples:
        raise JobError("There are no training examples.")
    valid_examples = cast("list[Any]", request.get("validation_examples") or [])
    if method == "supervised":
        train, valid = supervised_rows(train_examples), supervised_rows(valid_examples, "Validation example")
        if not train:
            raise JobError("Every training example's assistant turns have weight 0: there is nothing to learn.")
        return [
            _Stage(
                "supervised",
                train,
                valid,
                settings.epochs,
                settings.learning_rate,
                settings.max_steps,
                files.checkpoints,
            )
        ]
    pairs, valid_pairs = preference_rows(train_examples), preference_rows(valid_examples, "Validation example")
    if method == "preference":
        return [
            _Stage(
                "preference",
                pairs,
                valid_pairs,
                settings.epochs,
                settings.learning_rate,
                settings.max_steps,
                files.checkpoints,
            )
        ]
    # supervised+preference: SFT on the chosen replies, then DPO from that model (its frozen reference).  Only
    # the last stage's checkpoints are the job's.
    return [
        _Stage(
            "supervised",
            chosen_rows(pairs),
            chosen_rows(valid_pairs),
            settings.epochs,
            settings.learning_rate,
            settings.max_steps,
            files.root / "checkpoints-supervised",
        ),
        _Stage(
            "preference",
            pairs,
            valid_pairs,
            settings.preference_epochs,
            settings.preference_learning_rate,
            -1,
            files.checkpoints,
        ),
    ]


# ----------------------------------------------------------------------------------------------- training


def _check_base_path(base_model: str) -> Path:
    """Fail early (before the slow imports) on a base model directory that cannot hold a model."""
    if not base_model.strip():
        raise JobError("No base model was given.")
    path = Path(base_model).expanduser()
    if path.exists() or base_model.startswith(("/", ".", "~")):
        if not path.is_dir():
            raise JobError(f"The base model directory {base_model} does not exist.")
        if not (path / "config.json").is_file():
            raise JobError(f"The directory {base_model} has no config.json: it does not hold a Hugging Face model.")
    return path


def _load_base(base_model: str, hf: Any, peft: Any, dtype: Any, *, lora: bool) -> tuple[Any, Any]:
    """The tokenizer and model of ``base_model``: a local directory (a full model, or a LoRA adapter trained here,
    loaded onto its base: trainable with ``lora``, merged into it otherwise), or a hub name where the hub is
    reachable."""
    path = _check_base_path(base_model)
    source = str(path) if path.is_dir() else base_model
    adapter = _adapter_base(path)
    try:
        if adapter is not None:
            tokenizer = hf.AutoTokenizer.from_pretrained(
                source if (path / "tokenizer_config.json").is_file() else adapter
            )
            model = peft.PeftModel.from_pretrained(
                hf.AutoModelForCausalLM.from_pretrained(adapter, dtype=dtype), source, is_trainable=lora
            )
            if not lora:
                model = model.merge_and_unload()
        else:
            tokenizer = hf.AutoTokenizer.from_pretrained(source)
            model = hf.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as exc:
        traceback.print_exc()
        if path.is_dir():
            raise JobError(f"The base model in {base_model} could not be loaded ({type(exc).__name__}).") from exc
        raise JobError(
            f"The base model {base_model} could not be loaded: it is not a local model directory, and the Hugging "
            "Face hub does not have it or cannot be reached."
        ) from exc
    return tokenizer, model


def _adapter_base(path: Path) -> str | None:
    """The base of a LoRA adapter directory (``None`` for a full model or a hub name)."""
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    config = read_json(path / "adapter_config.json") or {}
    base = config.get("base_model_name_or_path")
    return base if isinstance(base, str) and base else None


def _train(files: JobFiles, request: dict[str, Any], status: _Status) -> bool:
    """Train every stage of the job; returns ``False`` when it was cancelled."""
    settings = _settings(request)
    stages = _stages(files, request, settings)
    _check_base_path(str(request.get("base_model", "")))

    try:
        # Typed as Any: these libraries are only partly annotated, and this is the one place that drives them.
        datasets: Any = importlib.import_module("datasets")
        peft: Any = importlib.import_module("peft")
        torch: Any = importlib.import_module("torch")
        hf: Any = importlib.import_module("transformers")
        trl: Any = importlib.import_module("trl")
    except ImportError as exc:
        raise JobError(f"{EXTRA_HINT} ({exc.name} is missing)") from exc
    if files.cancel.exists():
        return False

    cuda = bool(torch.cuda.is_available())
    bf16 = cuda and bool(torch.cuda.is_bf16_supported())
    tokenizer, model = _load_base(
        str(request["base_model"]), hf, peft, torch.bfloat16 if bf16 else torch.float32, lora=settings.lora
    )
    if tokenizer.chat_template is None:
        tokenizer.chat_template = _FALLBACK_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    progress = _progress_callback(hf.TrainerCallback, files, status, cancel_file=files.cancel)
    progress.total = sum(stage.planned_steps(settings.batch_size) for stage in stages)
    started, cpu_started = time.monotonic(), time.process_time()
    trainer: Any = None
    for number, stage in enumerate(stages, 1):
        last = number == len(stages)
        progress.record_checkpoints = last
        progress.stage = stage.kind if len(stages) > 1 else None
        common = _arguments(files, settings, hf, cuda=cuda, bf16=bf16, validate=bool(stage.valid_rows), stage=stage)
        # A model that already carries an adapter (a LoRA job trained here, or the first stage) trains it on.
        peft_config = (
            peft.LoraConfig(
                r=settings.lora_rank,
                lora_alpha=settings.lora_alpha,
                lora_dropout=0.05,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            if settings.lora and not isinstance(model, peft.PeftModel)
            else None
        )
        train_dataset = datasets.Dataset.from_list(stage.rows)
        eval_dataset = datasets.Dataset.from_list(stage.valid_rows) if stage.valid_rows else None
        if stage.kind == "preference":
            dpo = _preference_arguments(settings)
            trainer = trl.DPOTrainer(
                model=model,
                # The reference is the model training starts from: with an adapter, TRL disables (or copies) it;
                # a full model gets a frozen copy, taken before any update.
                ref_model=None if settings.lora else _frozen_copy(model),
                args=trl.DPOConfig(**common, **dpo),
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[progress],
            )
        else:
            trainer = trl.SFTTrainer(
                model=model,
                args=trl.SFTConfig(**common),
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[progress],
            )
        trainer.train()
        if progress.cancelled or files.cancel.exists():
            return False
        model = trainer.model
        _drop_reference_adapter(model)
        progress.offset += int(trainer.state.global_step)
        if not last:
            # Kept beside the job (not a model of its own): what the supervised stage alone taught, to compare.
            _save(trainer, tokenizer, files, files.stage_model(stage.kind))
            append_event(files, f"The {stage.kind} stage finished after {progress.offset} steps.")

    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    _save(trainer, tokenizer, files, files.model)
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    status.update(trained_tokens=tokens or None)
    append_event(
        files,
        f"Training took {seconds:.1f} s ({cpu_seconds:.1f} s of CPU time).",
        data={"train_seconds": seconds, "train_cpu_seconds": cpu_seconds},
    )
    return True


def _preference_arguments(settings: LocalSettings) -> dict[str, Any]:
    """DPO's own settings: ``beta``, and the NLL of the chosen replies weighted ``rpo_alpha`` (RPO: in TRL 1 a
    second loss, ``sft``, beside DPO's ``sigmoid``)."""
    if settings.rpo_alpha > 0:
        return {"beta": settings.beta, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, settings.rpo_alpha]}
    return {"beta": settings.beta}


def _frozen_copy(model: Any) -> Any:
    reference = copy.deepcopy(model)
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def _drop_reference_adapter(model: Any) -> None:
    """TRL trains an adapter model against a frozen copy of its adapter named "ref"; it is not part of the result."""
    adapters = getattr(model, "peft_config", None)
    if isinstance(adapters, dict) and "ref" in adapters and hasattr(model, "delete_adapter"):
        model.delete_adapter("ref")


def _arguments(
    files: JobFiles, settings: LocalSettings, hf: Any, *, cuda: bool, bf16: bool, validate: bool, stage: _Stage
) -> dict[str, Any]:
    """The training arguments SFTConfig and DPOConfig share, for one stage."""
    arguments: dict[str, Any] = {
        "output_dir": str(stage.output_dir),
        "num_train_epochs": stage.epochs,
        "max_steps": stage.max_steps,
        "learning_rate": stage.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "seed": settings.seed,
        "data_seed": settings.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": not cuda,
        # TRL turns bf16 on by default; on the CPU it is slow or unsupported, and fp16 needs a GPU.
        "bf16": bf16,
        "fp16": False,
        # Checkpointing trades time for GPU memory; on the CPU it only costs time.
        _checkpointing_field(hf.TrainingArguments): cuda,
        "include_num_input_tokens_seen": True,
    }
    if validate:
        arguments.update(
            eval_strategy="steps",
            eval_steps=0.2,  # five evaluations, whatever the length
            # A checkpoint at each evaluation; the best by validation loss is the final model, and it and the
            # latest are all that is kept (weights only: no optimizer state), so disk use stays bounded.
            save_strategy="steps",
            save_steps=0.2,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            save_total_limit=2,
            save_only_model=True,
        )
    return arguments


def _checkpoint_record(state: Any) -> dict[str, Any]:
    """The step and losses of the checkpoint just saved, from the trainer's log history."""
    step = int(state.global_step)
    train_loss = valid_loss = None
    for entry in cast("list[dict[str, Any]]", state.log_history):
        if int(entry.get("step", -1)) > step:
            continue
        if "loss" in entry:
            train_loss = float(entry["loss"])
        if "eval_loss" in entry and int(entry.get("step", -1)) == step:
            valid_loss = float(entry["eval_loss"])
    return {"step": step, "train_loss": train_loss, "valid_loss": valid_loss, "dir": f"checkpoint-{step}"}


def record_checkpoint(files: JobFiles, state: Any) -> None:
    """Add the checkpoint just saved to ``checkpoints.json`` (with the best step so far)."""
    listing = read_json(files.checkpoint_list) or {}
    saved = _records(listing)
    record = _checkpoint_record(state)
    saved = [c for c in saved if c.get("step") != record["step"]] + [record]
    best = getattr(state, "best_model_checkpoint", None)
    best_step = int(Path(best).name.removeprefix("checkpoint-")) if isinstance(best, str) else None
    write_json_atomic(files.checkpoint_list, {"checkpoints": saved, "best_step": best_step})


def best_checkpoint(files: JobFiles) -> dict[str, Any] | None:
    """The best checkpoint by validation loss recorded for the job, or ``None`` when it kept none."""
    listing = read_json(files.checkpoint_list) or {}
    best_step = listing.get("best_step")
    for record in _records(listing):
        if record.get("step") == best_step:
            return record
    return None


def checkpoint_listing(files: JobFiles) -> tuple[list[dict[str, Any]], int | None]:
    """The checkpoints recorded in ``checkpoints.json`` (oldest first) and the best step."""
    listing = read_json(files.checkpoint_list) or {}
    best = listing.get("best_step")
    return sorted(_records(listing), key=lambda r: int(r.get("step") or 0)), best if isinstance(best, int) else None


def _records(listing: dict[str, Any]) -> list[dict[str, Any]]:
    raw = listing.get("checkpoints")
    items = cast("list[Any]", raw) if isinstance(raw, list) else []
    return [cast("dict[str, Any]", c) for c in items if isinstance(c, dict)]


def _save(trainer: Any, tokenizer: Any, files: JobFiles, target: Path) -> None:
    """The adapter (LoRA) or the full model, with the tokenizer, under a temporary name then renamed: a
    model directory is always complete."""
    tmp = files.root / f"{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    os.replace(tmp, target)


def _checkpointing_field(arguments: type[Any]) -> str:
    """transformers 5 renamed ``gradient_checkpointing`` (a deprecated alias now); older releases lack the new name."""
    names = {f.name for f in dataclasses.fields(arguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _progress_callback(base: type[Any], files: JobFiles, status: _Status, *, cancel_file: Path) -> Any:
    """A ``TrainerCallback`` (its class is only known once transformers is imported) that reports progress."""

    class Progress(base):
        cancelled = False
        #: Steps of the job's earlier stages, and of all its stages (0: this stage's own count).
        offset = 0
        total = 0
        #: The stage running, in a job of several (``None`` in a job of one).
        stage: str | None = None
        #: Only the last stage's checkpoints are the job's.
        record_checkpoints = True

        def _total(self, state: Any) -> int:
            return max(self.total, self.offset + int(state.max_steps))

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.offset == 0:
                status.update(
                    state="running",
                    step=0,
                    total_steps=self._total(state),
                    started_at=dt.datetime.now(dt.UTC).isoformat(),
                )
                append_event(files, f"Training started: {self._total(state)} steps.")
            if self.stage is not None:
                append_event(
                    files,
                    f"The {self.stage} stage started: {state.max_steps} steps"
                    + (
                        " (DPO, against the supervised stage's model as its frozen reference)."
                        if self.stage == "preference"
                        else "."
                    ),
                )

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.record_checkpoints:
                record_checkpoint(files, state)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cancel_file.exists():
                self.cancelled = True
                control.should_training_stop = True

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            logs = logs or {}
            step, total = self.offset + int(state.global_step), self._total(state)
            data: dict[str, Any] = {"step": step, "total_steps": total}
            if "loss" in logs:
                data["train_loss"] = float(logs["loss"])
                message = f"Step {step}/{total}: training loss {data['train_loss']:.4f}"
            elif "eval_loss" in logs:
                data["valid_loss"] = float(logs["eval_loss"])
                message = f"Step {step}/{total}: validation loss {data['valid_loss']:.4f}"
            else:
                return  # the summary at the end of training; the final event says it
            for key, name in (
                ("learning_rate", "learning_rate"),
                ("epoch", "epoch"),
                ("rewards/accuracies", "reward_accuracy"),
                ("rewards/margins", "reward_margin"),
                ("rewards/chosen", "reward_chosen"),
                ("rewards/rejected", "reward_rejected"),
            ):
                if isinstance(logs.get(key), int | float):
                    data[name] = float(logs[key])
            if "epoch" not in data and state.epoch is not None:
                data["epoch"] = float(state.epoch)
            if self.stage is not None:
                data["stage"] = self.stage
            append_event(files, message, kind="metrics", data=data)
            status.update(step=step, total_steps=total)

    return Progress()


def _plain(exc: BaseException) -> str:
    """One line about an unexpected error, without a traceback (that goes to the log)."""
    text = str(exc).strip().splitlines()
    detail = f": {text[0][:300]}" if text else ""
    return f"Training failed ({type(exc).__name__}{detail})."


def run(job_dir: Path) -> int:
    """Run the job in ``job_dir`` to the end; returns the process's exit status.

    The last event is written before the final status, so whoever sees a finished job has all its events.
    """
    files = JobFiles(job_dir)
    status = _Status(files)
    try:
        request = read_json(files.request)
        if request is None:
            raise JobError("The training request is missing or unreadable.")
        status.update(state="validating")
        append_event(files, f"Worker started (pid {os.getpid()}).")
        finished = _train(files, request, status)
    except JobError as exc:
        traceback.print_exc()
        append_event(files, f"Training failed: {exc}", level="error")
        status.update(state="failed", error=str(exc))
        return 1
    except BaseException as exc:  # every failure ends in a final status; the log says why
        traceback.print_exc()
        if isinstance(exc, KeyboardInterrupt):
            append_event(files, "Training cancelled.")
            status.update(state="cancelled")
            return 1
        append_event(files, f"Training failed: {_plain(exc)}", level="error")
        status.update(state="failed", error=_plain(exc))
        return 1
    if not finished:
        append_event(files, "Training cancelled.")
        status.update(state="cancelled")
        return 0
    result = f"local:{job_dir.name}"
    best = best_checkpoint(files)
    if best is not None and isinstance(best.get("valid_loss"), float):
        append_event(
            files,
            f"Training finished: the model is {result}, the best checkpoint by validation loss "
            f"(step {best['step']}, validation loss {best['valid_loss']:.4f}).",
            data={"best_step": best["step"], "best_valid_loss": best["valid_loss"]},
        )
    else:
        append_event(files, f"Training finished: the model is {result}.")
    status.update(state="succeeded", result_model=result, error=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``JOB_DIR [--foreground]``: detach and train (or train in this process with ``--foreground``)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m hypotez.ml.trainers._local_worker JOB_DIR [--foreground]", file=sys.stderr)
        return 2
    job_dir = Path(args[0]).resolve()
    files = JobFiles(job_dir)
    if "--foreground" not in args and hasattr(os, "fork"):
        child = os.fork()
        if child:
            write_json_atomic(files.pid, {"pid": child})
            return 0
        os.setsid()  # its own session and process group: signals to the bot do not reach it; killpg reaches all
    else:
        write_json_atomic(files.pid, {"pid": os.getpid()})
    code = run(job_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
