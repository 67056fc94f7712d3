"""A dataset's examples as OpenAI fine-tuning records, for training code."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hypotez.errors import NotFoundError
from hypotez.ml.datasets.formats import preference_records, supervised_records
from hypotez.storage.repositories import DatasetRepository

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["load_examples"]


async def load_examples(
    db: DatasetRepository | Database, dataset: int | str, kind: str, *, guild_id: int | None = None
) -> list[dict[str, Any]]:
    """A dataset's examples as OpenAI fine-tuning records.

    ``db`` is the dataset repository (or the database it reads).
    ``dataset`` is a dataset id, or a name (``name`` or ``name@version``) in ``guild_id``'s datasets.
    ``kind`` is ``"supervised"`` (``{"messages": [...]}`` lines) or ``"preference"`` (DPO lines:
    ``{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}``).
    Raises :class:`NotFoundError` for an unknown dataset; returns ``[]`` when it has no examples of that kind.
    Split with :func:`split_examples`.  The examples are read in chunks and turned into records in a worker
    thread, so a large dataset does not hold up the event loop.
    """
    repository = db if isinstance(db, DatasetRepository) else DatasetRepository(db)
    if isinstance(dataset, int):
        row = await repository.get(dataset)
        if row is None:
            raise NotFoundError("dataset", dataset, f"No dataset with id {dataset} exists.")
    else:
        if guild_id is None:
            raise ValueError("a dataset given by name needs its guild_id")
        row = await repository.resolve(guild_id, dataset)
    if kind not in {"supervised", "preference"}:
        raise ValueError(f"unknown kind of examples: {kind!r} (supervised or preference)")
    rows = await repository.rows(row.id)
    return await asyncio.to_thread(supervised_records if kind == "supervised" else preference_records, rows)
