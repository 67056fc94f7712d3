"""Training data for a job: a dataset's examples in the trainer formats, validated before anything is uploaded."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from hypotez.errors import InvalidInputError
from hypotez.ml.datasets import load_examples

if TYPE_CHECKING:
    from hypotez.ml.trainers.base import TrainingMethod
    from hypotez.storage.models import Dataset
    from hypotez.storage.repositories import DatasetRepository

__all__ = ["OPENAI_MIN_EXAMPLES", "TrainingData", "fingerprint", "load_training_data", "validate_for"]

#: OpenAI's fine-tuning API refuses fewer examples than this.
OPENAI_MIN_EXAMPLES = 10


class TrainingData:
    """A dataset's examples ready for a trainer."""

    def __init__(self, dataset: Dataset, examples: list[dict[str, Any]]) -> None:
        self.dataset = dataset
        self.examples = examples

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.examples)


def fingerprint(examples: list[dict[str, Any]]) -> str:
    """A hash of the examples: identical data gives identical fingerprints."""
    return hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def load_training_data(
    datasets: DatasetRepository, *, guild_id: int | None, name: str, method: TrainingMethod
) -> TrainingData:
    """Dataset ``name`` (or ``name@version``) of a server, as records for ``method``; refused when empty.

    Supervised training takes the chat examples (and the preferred side of every pair); ``preference`` and
    ``supervised+preference`` take the preference pairs: an approved correction is one (preferred: the
    correction, rejected: the reply it corrects), and so is a positive and a negative answer to the same
    conversation.  ``supervised+preference`` trains its supervised stage on the pairs' preferred replies.
    """
    dataset = await datasets.resolve(guild_id or 0, name)
    examples = await load_examples(datasets, dataset.id, method.examples)
    if not examples:
        raise InvalidInputError(
            f"Dataset `{name}` has no examples usable for {method.value} training "
            + ("(chat examples)." if method.examples == "supervised" else "(preference pairs).")
        )
    return TrainingData(dataset, examples)


def validate_for(trainer: str, examples: list[dict[str, Any]]) -> None:
    """Refuse before uploading what the trainer would refuse after."""
    if trainer == "openai" and len(examples) < OPENAI_MIN_EXAMPLES:
        raise InvalidInputError(
            f"OpenAI fine-tuning needs at least {OPENAI_MIN_EXAMPLES} examples; this data has {len(examples)}."
        )
