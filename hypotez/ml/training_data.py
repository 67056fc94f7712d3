"""Training data for a job: a dataset's examples in the trainer formats, validated before anything is uploaded."""

from __future__ import annotations

import hashlib
import json
import random
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.trainers.base import TrainingMethod
from hypotez.storage.models import Dataset, DatasetExample

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = [
    "OPENAI_MIN_EXAMPLES",
    "TrainingData",
    "dataset_names",
    "fingerprint",
    "load_training_data",
    "split",
    "validate_for",
]

#: OpenAI's fine-tuning API refuses fewer examples than this.
OPENAI_MIN_EXAMPLES = 10


class TrainingData:
    """A dataset's examples ready for a trainer."""

    def __init__(self, dataset: Dataset | None, examples: list[dict[str, Any]]) -> None:
        self.dataset = dataset
        self.examples = examples

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.examples)


def fingerprint(examples: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _as_training_example(example: DatasetExample, method: TrainingMethod) -> dict[str, Any] | None:
    if method is TrainingMethod.SUPERVISED and example.kind == "chat":
        return {"messages": [dict(m) for m in example.messages]}
    if method is TrainingMethod.PREFERENCE and example.kind == "preference":
        return {
            "input": {"messages": [dict(m) for m in example.messages]},
            "preferred_output": [{"role": "assistant", "content": example.preferred or ""}],
            "non_preferred_output": [{"role": "assistant", "content": example.rejected or ""}],
        }
    return None


async def load_training_data(db: Database, *, guild_id: int | None, name: str, method: TrainingMethod) -> TrainingData:
    """The newest version of dataset ``name``: its positive examples usable by ``method``."""
    async with db.session() as session:
        dataset = await session.scalar(
            select(Dataset)
            .where(Dataset.guild_id == (guild_id or 0), Dataset.name == name, Dataset.archived_at.is_(None))
            .order_by(Dataset.version.desc())
            .limit(1)
        )
        if dataset is None:
            raise NotFoundError("dataset", name, f"There is no dataset called `{name}` in this server.")
        rows = (
            await session.scalars(
                select(DatasetExample)
                .where(DatasetExample.dataset_id == dataset.id, DatasetExample.label == "positive")
                .order_by(DatasetExample.id)
            )
        ).all()
    examples = [e for e in (_as_training_example(row, method) for row in rows) if e is not None]
    if not examples:
        kind = "chat" if method is TrainingMethod.SUPERVISED else "preference"
        raise InvalidInputError(
            f"Dataset `{name}` has no positive {kind} examples for {method.value} training "
            f"({len(rows)} examples of other kinds)."
        )
    return TrainingData(dataset, examples)


async def dataset_names(db: Database, guild_id: int | None) -> list[str]:
    """Names of a server's datasets that are not archived."""
    async with db.session() as session:
        rows = await session.scalars(
            select(Dataset.name)
            .where(Dataset.guild_id == (guild_id or 0), Dataset.archived_at.is_(None))
            .distinct()
            .order_by(Dataset.name)
        )
        return list(rows.all())


def validate_for(trainer: str, examples: list[dict[str, Any]]) -> None:
    """Refuse before uploading what the trainer would refuse after."""
    if trainer == "openai" and len(examples) < OPENAI_MIN_EXAMPLES:
        raise InvalidInputError(
            f"OpenAI fine-tuning needs at least {OPENAI_MIN_EXAMPLES} examples; this data has {len(examples)}."
        )


def split(
    examples: list[dict[str, Any]], validation: float, *, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A reproducible train/validation split (``validation`` is the share held out, 0 for none)."""
    if validation <= 0:
        return list(examples), []
    if not 0 < validation < 1:
        raise InvalidInputError("The validation share must be between 0 and 1.")
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - a reproducible split, not a secret
    held = max(1, round(len(shuffled) * validation))
    if held >= len(shuffled):
        raise InvalidInputError("Too few examples to hold some out for validation.")
    return shuffled[held:], shuffled[:held]
