"""What evaluation keeps: the examples each training job was given (train and held-out parts), and every ``/test``
run with its cases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select

from hypotez.storage.models import EvaluationRun, JobExample

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.storage.db import Database

__all__ = ["KEPT_PER_PART", "TRAIN", "VALIDATION", "EvaluationRepository"]

TRAIN = "train"
VALIDATION = "validation"

#: Examples kept of each part of a job.
KEPT_PER_PART = 5000
#: Rows inserted per statement (PostgreSQL takes at most 32,767 bound parameters in one).
_CHUNK = 1000


def _spread(records: Sequence[dict[str, Any]], limit: int) -> Sequence[dict[str, Any]]:
    if len(records) <= limit:
        return records
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]


class EvaluationRepository:
    """Job examples and evaluation runs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def keep_job_examples(
        self,
        job_id: int,
        train: Sequence[dict[str, Any]],
        validation: Sequence[dict[str, Any]],
        *,
        limit: int = KEPT_PER_PART,
    ) -> None:
        """Keep the examples job ``job_id`` was given, each in its part, in order — at most ``limit`` of a part,
        spread evenly over it (evaluation asks a sample, never a million) — once: a second call for the same job
        changes nothing."""
        rows = [
            {"job_id": job_id, "split": split, "position": position, "record": record}
            for split, records in ((TRAIN, train), (VALIDATION, validation))
            for position, record in enumerate(_spread(records, limit))
        ]
        async with self._db.session() as session, session.begin():
            kept = await session.scalar(select(func.count()).select_from(JobExample).where(JobExample.job_id == job_id))
            if kept:
                return
            for start in range(0, len(rows), _CHUNK):
                await session.execute(insert(JobExample), rows[start : start + _CHUNK])

    async def job_examples(self, job_id: int, split: str) -> list[dict[str, Any]]:
        """The examples of ``split`` (``train`` or ``validation``) job ``job_id`` was given, in order."""
        async with self._db.session() as session:
            records = await session.scalars(
                select(JobExample.record)
                .where(JobExample.job_id == job_id, JobExample.split == split)
                .order_by(JobExample.position)
            )
            return list(records.all())

    async def job_example_counts(self, job_id: int) -> dict[str, int]:
        """How many examples of each part job ``job_id`` kept (``{}``: none kept)."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(JobExample.split, func.count()).where(JobExample.job_id == job_id).group_by(JobExample.split)
            )
            return {str(split): int(count) for split, count in rows.all()}

    async def add_run(self, run: EvaluationRun) -> EvaluationRun:
        async with self._db.session() as session, session.begin():
            session.add(run)
        return run

    async def runs(self, guild_id: int | None, *, limit: int = 20) -> list[EvaluationRun]:
        """A server's latest runs, newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(EvaluationRun)
                .where(EvaluationRun.guild_id == guild_id if guild_id is not None else EvaluationRun.guild_id.is_(None))
                .order_by(EvaluationRun.id.desc())
                .limit(limit)
            )
            return list(rows.all())
