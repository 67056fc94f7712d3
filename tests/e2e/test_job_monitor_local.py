"""The job monitor of a local job through Discord, on the tiny model: the trainer's own start time, validation loss
shown and charted, the final chart uploaded, and a checkpoint listed, registered and chatted with."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlalchemy import select

from hypotez.ml.trainers._local_worker import read_json
from hypotez.plugins._job_status import chart_points
from hypotez.storage.models import BotReply, RegisteredModel, TrainingJob
from tests.conftest import running_hypotez
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, slash
from tests.fakes.tiny_model import make_tiny_model

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

pytestmark = [pytest.mark.one_database, pytest.mark.timeout(600)]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def _until_finished(hz: RunningBot, job_id: int) -> TrainingJob:
    for _ in range(1500):
        await hz.services.jobs.poll_once()
        job = await hz.services.jobs.get(job_id)
        if job.finished_at is not None:
            return job
        await asyncio.sleep(0.2)
    pytest.fail("the local job did not finish in time")


@pytest.mark.asyncio
async def test_a_local_job_monitored_and_its_best_checkpoint_registered(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    make_tiny_model(bot_settings.data_dir / "models" / "tiny", [f"What is {i} + {i}? {2 * i}" for i in range(16)])
    settings = bot_settings.model_copy(update={"job_chart_interval_s": 0.0})
    async with running_hypotez(settings, openai_fake) as hz:
        await seed_corrections(hz.services, 16)
        options = {
            "dataset": "corrections",
            "trainer": "local",
            "base_model": "local:tiny",
            "validation": 0.25,
            "max_steps": 10,
            "batch_size": 4,
        }
        started = await hz.send(slash("train", options, user=ADMIN_MEMBER))
        assert "Training job #1 started" in " ".join(str(c.json) for c in started.followups)
        job = await _until_finished(hz, 1)
        assert job.status == "succeeded", job.error

        # Elapsed counts from the worker's own start (status.json), not from when the bot first looked.
        work_dir = next(p for p in settings.data_dir.rglob("job-1") if (p / "request.json").is_file())
        status = read_json(work_dir / "status.json") or {}
        assert job.trainer_started_at == dt.datetime.fromisoformat(str(status["started_at"]))
        assert job.metrics["valid"], "the validation loss was stored as a series"

        edits = hz.rest.calls_to("PATCH", f"/channels/{CHANNEL_ID}/messages/{job.status_message_id}")
        final = edits[-1]
        assert final.json is not None
        assert final.json["components"] == []
        uploads = [e for e in edits if e.files]
        assert uploads
        assert [f.filename for f in uploads[-1].files] == [f"loss-{job.id}.png"]
        assert job.chart_points == chart_points(job)  # the chart on the message holds every point: it is complete
        fields = {f["name"]: f["value"] for f in final.json["embeds"][0]["fields"]}
        assert "Validation loss" in fields
        assert "Elapsed" in fields

        listed = await hz.send(slash("jobs", {"job": "1"}, subcommand="checkpoints", user=ADMIN_MEMBER))
        text = str(listed.content)
        [best_line] = [line for line in text.splitlines() if "★ best" in line]
        best_step = int(best_line.split("**")[1])
        best_valid = min(job.metrics["valid"], key=lambda p: (p[1], p[0]))
        assert best_step == int(best_valid[0])

        registered = await hz.send(
            slash("jobs", {"job": "1", "register": best_step}, subcommand="checkpoints", user=ADMIN_MEMBER)
        )
        name = f"local:job-1.step-{best_step}"
        assert f"is now the model `{name}`" in str(registered.content)
        async with hz.services.db.session() as session:
            model = (await session.scalars(select(RegisteredModel).where(RegisteredModel.name == name))).one()
        assert (model.backend, model.job_id) == ("local", 1)
        used = await hz.send(slash("model", {"name": name}, subcommand="use", user=ADMIN_MEMBER))
        assert any("now talks with" in str((c.json or {}).get("content")) for c in used.followups), used
        await hz.send(slash("chat", {"message": "What is 3 + 3?"}))
        async with hz.services.db.session() as session:
            reply = (await session.scalars(select(BotReply).order_by(BotReply.id.desc()).limit(1))).one()
        assert (reply.backend, reply.model) == ("local", name)
