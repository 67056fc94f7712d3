"""Local training is queued: at most ``local_max_concurrent_jobs`` workers run on the machine, and at most
``local_max_jobs_per_server`` for one server; the rest wait, their place shown, and start as slots free.

Slots are counted in the database (the jobs holding one), so the limits hold across processes sharing it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlalchemy import select

from hypotez.ml.jobs import JobSpec, LocalLimits
from hypotez.ml.trainers.base import TrainingMethod, TrainingRequest
from hypotez.ml.training_data import load_training_data
from hypotez.storage.models import TrainingJob
from tests.conftest import running_hypotez
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, slash
from tests.fakes.tiny_model import make_tiny_model

if TYPE_CHECKING:
    from pathlib import Path

    from hypotez.config import Settings
    from tests.conftest import RunningBot, ServiceView
    from tests.fakes.openai_api import FakeOpenAI

pytestmark = pytest.mark.timeout(600)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OTHER_GUILD = GUILD_ID + 1


async def _jobs(services: ServiceView) -> dict[int, TrainingJob]:
    async with services.db.session() as session:
        return {job.id: job for job in (await session.scalars(select(TrainingJob).order_by(TrainingJob.id))).all()}


def _said(result: Any) -> str:
    return " ".join(str(c.json) for c in result.followups) + str(result.content)


def _workers(work_dir: Path) -> set[str]:
    """The jobs whose worker was started (it writes its pid file), by job key."""
    return {entry.name for entry in work_dir.iterdir() if (entry / "worker.pid").is_file()}


def _running(jobs: dict[int, TrainingJob]) -> set[int]:
    """Jobs holding a slot: started and unfinished."""
    return {i for i, job in jobs.items() if job.external_id is not None and job.finished_at is None}


async def _poll_until(hz: RunningBot, work_dir: Path, done: Any, *, limit: int = 2) -> dict[int, TrainingJob]:
    """Poll until ``done(jobs)``, checking on every round that at most ``limit`` jobs hold a slot."""
    for _ in range(600):
        await hz.services.jobs.poll_once()
        jobs = await _jobs(hz.services)
        assert len(_running(jobs)) <= limit, {i: j.status for i, j in jobs.items()}
        if done(jobs):
            return jobs
        await asyncio.sleep(0.2)
    pytest.fail("the jobs did not get there in time")


@pytest.mark.asyncio
async def test_local_jobs_wait_for_a_slot(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    tiny = make_tiny_model(bot_settings.data_dir / "models" / "tiny", [f"What is {i} + {i}? {2 * i}" for i in range(8)])
    assert bot_settings.local_max_concurrent_jobs == 1
    assert bot_settings.local_max_jobs_per_server == 1
    async with running_hypotez(bot_settings, openai_fake) as hz:
        await seed_corrections(hz.services, 8)
        answers: list[str] = []
        for steps in (1, 2, 3):  # three requests differing in one setting
            result = await hz.send(
                slash(
                    "train",
                    {
                        "dataset": "corrections",
                        "trainer": "local",
                        "base_model": "local:tiny",
                        "max_steps": steps,
                        "batch_size": 2,
                    },
                    user=ADMIN_MEMBER,
                )
            )
            answers.append(_said(result))
        assert "Training job #1 started on `local:tiny`" in answers[0]
        assert "Training job #2 is queued (position 1)" in answers[1]
        assert "Training job #3 is queued (position 2)" in answers[2]

        # One worker; the others are written down and wait.
        jobs = await _jobs(hz.services)
        assert _running(jobs) == {1}
        assert [(jobs[i].status, jobs[i].external_id) for i in (2, 3)] == [("queued", None), ("queued", None)]
        work_dir = next(p.parent for p in bot_settings.data_dir.rglob("job-1") if (p / "request.json").is_file())
        assert _workers(work_dir) == {"job-1"}

        # Each status message shows its place in the queue.
        posts = [
            c for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages") if c.json and c.json.get("embeds")
        ]
        descriptions = [c.json["embeds"][0]["description"] for c in posts if c.json]
        assert "position" not in descriptions[0]
        assert "position 1 in the training queue" in descriptions[1]
        assert "position 2 in the training queue" in descriptions[2]

        # Another server's job waits too: the machine-wide limit holds it.
        data = await load_training_data(
            hz.services.datasets, guild_id=GUILD_ID, name="corrections", method=TrainingMethod.SUPERVISED
        )
        spec = JobSpec(
            trainer="local",
            base_model="local:tiny",
            method="supervised",
            hyperparameters={"max_steps": 1, "batch_size": 2},
            data_fingerprint=data.fingerprint,
            guild_id=OTHER_GUILD,
            requested_by=1,
        )

        async def request(job_key: str) -> TrainingRequest:
            return TrainingRequest(
                job_key=job_key,
                base_model=str(tiny),
                method=TrainingMethod.SUPERVISED,
                train_examples=data.examples,
                hyperparameters={"max_steps": 1, "batch_size": 2},
            )

        other, created = await hz.services.jobs.submit(spec, request, idempotency_key="other-server")
        assert created
        assert (other.id, other.status, other.external_id) == (4, "queued", None)
        assert other.metrics["queue_position"] == 3

        # The first finishes; the next of the queue starts, and only it.
        jobs = await _poll_until(hz, work_dir, lambda j: j[1].finished_at is not None, limit=1)
        assert jobs[1].status == "succeeded", jobs[1].error
        assert _running(jobs) == {2}
        assert _workers(work_dir) == {"job-1", "job-2"}
        assert [jobs[i].metrics.get("queue_position") for i in (3, 4)] == [1, 2]

        # Two slots on the machine: the other server's job starts; this server's next still waits for its own.
        hz.services.jobs.local_limits = LocalLimits(concurrent=2, per_server=1)
        await hz.services.jobs.poll_once()
        jobs = await _jobs(hz.services)
        if jobs[2].finished_at is None:
            assert _running(jobs) == {2, 4}
            assert (jobs[3].status, jobs[3].external_id) == ("queued", None)
            assert "job-3" not in _workers(work_dir)

        # Everything runs to the end, never more than the limits.
        jobs = await _poll_until(hz, work_dir, lambda j: all(job.finished_at is not None for job in j.values()))
        assert [jobs[i].status for i in (1, 2, 3, 4)] == ["succeeded"] * 4, [j.error for j in jobs.values()]
        assert _workers(work_dir) == {"job-1", "job-2", "job-3", "job-4"}
