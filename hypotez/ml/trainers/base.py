"""The trainer interface: every way of fine-tuning a model looks the same to the job tracker.

A trainer starts a job from examples in OpenAI's fine-tuning formats, reports its status and its events
(metrics included), cancels it, and names the resulting model.  Implementations: ``openai`` (OpenAI's
fine-tuning API or any server implementing it) and ``local`` (TRL in a separate process).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# A job's states are those of its stored row; trainers report them.
from hypotez.storage.models import JobState

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping

__all__ = [
    "Checkpoint",
    "CheckpointingTrainer",
    "JobEventRecord",
    "JobState",
    "JobStatus",
    "Trainer",
    "TrainingMethod",
    "TrainingRequest",
]


class TrainingMethod(enum.StrEnum):
    """``supervised``: chat examples ``{"messages": [...]}``.

    ``preference``: DPO pairs ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}],
    "non_preferred_output": [...]}``; the final assistant reply is compared, earlier turns are the prompt.

    ``supervised+preference``: the same pairs, for supervised training on the preferred replies and then DPO
    from that model, which is also the frozen reference.
    """

    SUPERVISED = "supervised"
    PREFERENCE = "preference"
    SUPERVISED_PREFERENCE = "supervised+preference"

    @property
    def examples(self) -> str:
        """The kind of examples the method trains on: ``supervised`` or ``preference``."""
        return "supervised" if self is TrainingMethod.SUPERVISED else "preference"


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """What to train.  ``hyperparameters`` are the trainer's options (:mod:`hypotez.ml.hyperparameters`:
    ``LocalOptions``, ``OpenAIOptions``) as resolved values, used exactly; an option left out (or ``"auto"``)
    is resolved by the trainer with the same rules before the job starts."""

    job_key: str
    base_model: str
    method: TrainingMethod
    train_examples: list[dict[str, Any]]
    validation_examples: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    hyperparameters: Mapping[str, Any] = field(default_factory=dict[str, Any])
    suffix: str | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's state as the trainer reports it."""

    state: JobState
    step: int | None = None
    total_steps: int | None = None
    result_model: str | None = None
    error: str | None = None
    trained_tokens: int | None = None
    #: When the trainer itself started running the job (its clock, not when the bot noticed): elapsed and
    #: remaining time are measured from it.  ``None`` until it runs, or where the trainer does not say.
    started_at: dt.datetime | None = None
    #: The trainer's own estimate of when the job finishes, where it gives one (OpenAI's ``estimated_finish``).
    estimated_finish_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class JobEventRecord:
    """One event; ``data`` of a metrics event holds ``step``, ``total_steps``, ``train_loss`` and, where the
    trainer knows it, ``learning_rate``, ``epoch``, ``valid_loss``."""

    external_id: str
    created_at: dt.datetime
    message: str
    level: str = "info"
    kind: str = "message"  # "message" | "metrics"
    data: dict[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One saved state of a job's model: its step, the losses there, whether it is the best by validation
    loss, and the model name it is registered as (``None`` until registered)."""

    step: int
    train_loss: float | None = None
    valid_loss: float | None = None
    best: bool = False
    model: str | None = None


@runtime_checkable
class CheckpointingTrainer(Protocol):
    """A trainer that keeps checkpoints of a job and can make one of them a model of its own."""

    async def checkpoints(self, external_id: str) -> list[Checkpoint]:
        """The job's checkpoints, oldest first (empty when it kept none)."""
        ...

    async def register_checkpoint(self, external_id: str, step: int) -> str:
        """Make the checkpoint at ``step`` a model; returns its name (the same name when called again)."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """What the job tracker needs from a way of training."""

    name: str

    async def start(self, request: TrainingRequest) -> str:
        """Upload or prepare the data and start the job; returns the trainer's id for it."""
        ...

    async def status(self, external_id: str) -> JobStatus: ...

    async def events(self, external_id: str) -> list[JobEventRecord]:
        """Every event so far, oldest first (the tracker stores the new ones)."""
        ...

    async def cancel(self, external_id: str) -> None: ...

    async def close(self) -> None: ...
