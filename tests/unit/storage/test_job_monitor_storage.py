"""What the job tracker stores for the monitor: the trainer's start time, the series the chart draws, and the
chart and refresh claims that keep replicas sharing the database from uploading or asking twice."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from hypotez.ml.trainers.base import JobEventRecord, JobState, JobStatus
from hypotez.storage.models import TrainingJob, utcnow
from hypotez.storage.repositories import JobRepository

if TYPE_CHECKING:
    from hypotez.storage import Database

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


async def _job(jobs: JobRepository) -> int:
    job, created = await jobs.insert(
        TrainingJob(
            guild_id=1,
            requested_by=2,
            idempotency_key="k",
            request_hash="h",
            trainer="local",
            base_model="tiny",
            metrics={},
            status="running",
            external_id="job-1",
        )
    )
    assert created
    return job.id


def _metrics(number: int, step: int, **data: float) -> JobEventRecord:
    return JobEventRecord(
        external_id=str(number),
        created_at=T0 + dt.timedelta(seconds=10 * number),
        message=f"step {step}",
        kind="metrics",
        data={"step": step, **data},
    )


@pytest.mark.asyncio
async def test_the_trainers_start_time_and_the_series_are_stored(db: Database) -> None:
    jobs = JobRepository(db)
    job_id = await _job(jobs)
    records = [
        _metrics(1, 1, train_loss=2.0, reward_accuracy=0.5, reward_margin=0.1),
        _metrics(2, 2, train_loss=1.5),
        _metrics(3, 2, valid_loss=1.7),
    ]
    # The trainer says nothing of its start: its first metrics record is the best clue, by its clock.
    job, new, _ = await jobs.store_refresh(job_id, JobState.RUNNING, JobStatus(JobState.RUNNING), records)
    assert len(new) == 3
    assert job.trainer_started_at == records[0].created_at
    assert job.metrics["loss"] == [[1, 2.0], [2, 1.5]]
    assert job.metrics["valid"] == [[2, 1.7]]
    assert job.metrics["reward_accuracies"] == [[1, 0.5]]
    assert job.metrics["reward_margins"] == [[1, 0.1]]
    assert job.metrics["step"] == 2

    # Its own start time wins; the records already stored add nothing twice.
    started = T0 - dt.timedelta(minutes=5)
    finish = T0 + dt.timedelta(hours=1)
    status = JobStatus(JobState.RUNNING, step=3, total_steps=9, started_at=started, estimated_finish_at=finish)
    job, new, _ = await jobs.store_refresh(job_id, JobState.RUNNING, status, [*records, _metrics(4, 3, train_loss=1.0)])
    assert [e.external_id for e in new] == ["4"]
    assert job.trainer_started_at == started
    assert job.estimated_finish_at == finish
    assert job.metrics["loss"] == [[1, 2.0], [2, 1.5], [3, 1.0]]
    assert (job.metrics["step"], job.metrics["total_steps"]) == (3, 9)

    # Finished: no estimate any more.
    done = JobStatus(JobState.SUCCEEDED, started_at=started, estimated_finish_at=finish, result_model="local:job-1")
    job, _, changed = await jobs.store_refresh(job_id, JobState.SUCCEEDED, done, [])
    assert changed
    assert job.estimated_finish_at is None


@pytest.mark.asyncio
async def test_a_chart_is_claimed_once_per_new_points_and_interval(db: Database) -> None:
    jobs = JobRepository(db)
    job_id = await _job(jobs)
    hour = dt.timedelta(hours=1)
    assert await jobs.claim_chart(job_id, 5, interval=hour)  # the first chart
    assert not await jobs.claim_chart(job_id, 5, interval=hour)  # no new points
    assert not await jobs.claim_chart(job_id, 9, interval=hour)  # new points, but too soon
    assert not await jobs.claim_chart(job_id, 5, interval=hour, final=True)  # the final chart is already there
    assert await jobs.claim_chart(job_id, 9, interval=hour, final=True)  # the job ended: whatever the interval
    assert await jobs.claim_chart(job_id, 12, interval=dt.timedelta(0))
    job = await jobs.get(job_id)
    assert job is not None
    assert job.chart_points == 12
    assert job.chart_posted_at is not None
    assert abs(job.chart_posted_at - utcnow()) < dt.timedelta(minutes=1)
    await jobs.release_chart(job_id)  # an upload that failed is tried again
    assert await jobs.claim_chart(job_id, 12, interval=hour)


@pytest.mark.asyncio
async def test_a_refresh_is_claimed_at_most_once_per_window(db: Database) -> None:
    jobs = JobRepository(db)
    job_id = await _job(jobs)
    window = dt.timedelta(seconds=30)
    assert await jobs.claim_refresh(job_id, within=window)
    assert not await jobs.claim_refresh(job_id, within=window)
    await jobs.update(job_id, refreshed_at=utcnow() - window)
    assert await jobs.claim_refresh(job_id, within=window)
