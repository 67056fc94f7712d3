"""What evaluation keeps: a training job's examples by part, once, at most a sample of each part; and its runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import delete

from hypotez.storage.models import EvaluationRun, TrainingJob
from hypotez.storage.repositories import EvaluationRepository

if TYPE_CHECKING:
    from hypotez.storage import Database


async def _job(db: Database) -> int:
    job = TrainingJob(requested_by=1, idempotency_key="k", trainer="openai", base_model="m", guild_id=5)
    async with db.session() as session, session.begin():
        session.add(job)
    return job.id


def _record(i: int) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


@pytest.mark.asyncio
async def test_a_jobs_examples_are_kept_by_part_in_order_once(db: Database) -> None:
    repository = EvaluationRepository(db)
    job_id = await _job(db)
    assert await repository.job_example_counts(job_id) == {}
    train, held = [_record(i) for i in range(30)], [_record(100 + i) for i in range(3)]
    await repository.keep_job_examples(job_id, train, held, limit=10)
    assert await repository.job_example_counts(job_id) == {"train": 10, "validation": 3}
    assert await repository.job_examples(job_id, "validation") == held
    kept = await repository.job_examples(job_id, "train")
    assert kept == [train[i] for i in range(0, 30, 3)]  # spread evenly, in order
    await repository.keep_job_examples(job_id, [_record(7)], [])  # a second call changes nothing
    assert await repository.job_example_counts(job_id) == {"train": 10, "validation": 3}
    # Deleting the job deletes its examples; its runs stay, without it.
    await repository.add_run(
        EvaluationRun(guild_id=5, requested_by=1, kind="run", model="m", job_id=job_id, summary={"cases": 1})
    )
    async with db.session() as session, session.begin():
        await session.execute(delete(TrainingJob).where(TrainingJob.id == job_id))
    assert await repository.job_example_counts(job_id) == {}
    [run] = await repository.runs(5)
    assert run.job_id is None
    assert run.summary == {"cases": 1}
    assert await repository.runs(6) == []
