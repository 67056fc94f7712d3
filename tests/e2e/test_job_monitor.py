"""The job monitor through Discord, against the OpenAI stand-in reporting a long job a few steps per poll: times by
the trainer's clock, the chart's uploads bounded, Refresh debounced, Cancel confirmed, readable events, and
checkpoints listed and registered as models."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update

from hypotez.plugins._job_status import JobMessages
from hypotez.storage.models import RegisteredModel, TrainingJob
from tests.conftest import running_hypotez
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, button, in_other_guild, slash

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.discord_rest import RecordedCall
    from tests.fakes.openai_api import FakeOpenAI

OTHER_GUILD = 1_100_000_000_000_000_777
#: 12 training examples, batch size 1, 10 epochs: a 120-step job, reported 8 steps per poll.
LONG_JOB = {"dataset": "corrections", "trainer": "openai", "epochs": 10, "batch_size": 1}
STEPS_PER_POLL = 8


async def _start(hz: RunningBot, **options: Any) -> TrainingJob:
    # With a validation split of a quarter, 16 corrections leave 12 to train on.
    await seed_corrections(hz.services, 16 if options.get("validation") else 12)
    hz.openai.auto_advance = False
    hz.openai.steps_per_advance = STEPS_PER_POLL
    await hz.send(slash("train", {**LONG_JOB, **options}, user=ADMIN_MEMBER))
    async with hz.services.db.session() as session:
        job = (await session.scalars(select(TrainingJob))).one()
    assert job.external_id is not None
    assert job.status_message_id is not None
    return job


def _edits(hz: RunningBot, job: TrainingJob) -> list[RecordedCall]:
    return hz.rest.calls_to("PATCH", f"/channels/{CHANNEL_ID}/messages/{job.status_message_id}")


def _fields(call: RecordedCall) -> dict[str, str]:
    assert call.json is not None
    return {f["name"]: f["value"] for f in call.json["embeds"][0].get("fields", [])}


def _seconds(text: str) -> int:
    """``1h 05m`` / ``5m 03s`` / ``7s`` as seconds."""
    match = re.fullmatch(r"(?:(\d+)h )?(?:(\d+)m )?(\d+)s|(\d+)h (\d+)m", text)
    assert match, text
    if match.group(4):
        return int(match.group(4)) * 3600 + int(match.group(5)) * 60
    return int(match.group(1) or 0) * 3600 + int(match.group(2) or 0) * 60 + int(match.group(3))


async def _advance_and_poll(hz: RunningBot, job: TrainingJob) -> TrainingJob:
    assert job.external_id is not None
    hz.openai.advance_job(job.external_id)
    await hz.services.jobs.poll_once()
    return await hz.services.jobs.get(job.id)


def _shift_trainer_clock(hz: RunningBot, job: TrainingJob, seconds: int) -> None:
    """Make the stand-in say everything so far happened ``seconds`` earlier (a job the bot first sees late)."""
    assert job.external_id is not None
    for event in hz.openai.events(job.external_id):
        event["created_at"] -= seconds


@pytest.mark.asyncio
async def test_elapsed_and_remaining_come_from_the_trainers_clock(hz: RunningBot) -> None:
    job = await _start(hz)
    external_id = job.external_id
    assert external_id is not None
    hz.openai.advance_job(external_id, to="running")  # started, 8 of 120 steps reported
    # The trainer started the job 10 minutes before the bot first looks (the bot was down, or polls slowly).
    _shift_trainer_clock(hz, job, 600)
    hz.openai.jobs[external_id]["estimated_finish"] = None  # no estimate: the pace decides
    await hz.services.jobs.poll_once()
    job = await hz.services.jobs.get(job.id)
    started_event = next(e for e in hz.openai.events(external_id) if e["message"] == "Fine-tuning job started")
    assert job.trainer_started_at == dt.datetime.fromtimestamp(started_event["created_at"], dt.UTC)
    fields = _fields(_edits(hz, job)[-1])
    elapsed = _seconds(fields["Elapsed"])
    assert 600 <= elapsed <= 660, fields  # not "0s": counted from the trainer's start, not from the bot's look
    assert job.metrics["step"] == STEPS_PER_POLL
    # Remaining = elapsed / step × (total − step): 600 s for 8 steps, 112 to go.
    remaining = _seconds(fields["Remaining (estimate)"])
    assert remaining == pytest.approx(elapsed / 8 * 112, rel=0.02), fields

    # Where the trainer estimates the finish itself, that estimate is used.
    finish = int(dt.datetime.now(dt.UTC).timestamp()) + 1800
    hz.openai.jobs[external_id]["estimated_finish"] = finish
    job = await _advance_and_poll(hz, job)
    assert job.estimated_finish_at == dt.datetime.fromtimestamp(finish, dt.UTC)
    fields = _fields(_edits(hz, job)[-1])
    assert 1780 <= _seconds(fields["Remaining (trainer's estimate)"]) <= 1800, fields
    assert job.metrics["step"] == 2 * STEPS_PER_POLL

    # Finished: the elapsed time stops, and nothing remains.
    hz.openai.advance_job(external_id, to="succeeded")
    await hz.services.jobs.poll_once()
    job = await hz.services.jobs.get(job.id)
    assert job.status == "succeeded"
    assert job.estimated_finish_at is None
    fields = _fields(_edits(hz, job)[-1])
    assert _seconds(fields["Elapsed"]) >= 600
    assert not any(name.startswith("Remaining") for name in fields)


def _uploads(edits: list[RecordedCall]) -> list[RecordedCall]:
    return [e for e in edits if e.files]


async def _run_long_job(hz: RunningBot, job: TrainingJob) -> TrainingJob:
    for _ in range(40):
        job = await _advance_and_poll(hz, job)
        if job.finished_at is not None:
            return job
    pytest.fail("the job never finished")


@pytest.mark.asyncio
async def test_the_chart_is_uploaded_only_when_points_arrived_and_at_most_every_interval(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(update={"job_chart_interval_s": 3600.0})
    async with running_hypotez(settings, openai_fake) as hz:
        job = await _start(hz, validation=0.25)
        job = await _run_long_job(hz, job)
        assert job.status == "succeeded"
        edits = _edits(hz, job)
        polls_with_points = 120 // STEPS_PER_POLL
        assert len(edits) >= polls_with_points  # the text moved on at every poll...
        uploads = _uploads(edits)
        print(f"\n120-step job, {STEPS_PER_POLL} steps per poll: {len(edits)} edits, {len(uploads)} chart uploads")
        # ...but the chart went up twice: with the first points, and once more, complete, when the job ended.
        assert len(uploads) == 2, [len(e.files) for e in edits]
        for upload in uploads:
            [chart] = upload.files
            assert chart.filename == f"loss-{job.id}.png"
            assert chart.content.startswith(b"\x89PNG")
        assert uploads[-1] is [e for e in edits if e.json and e.json.get("components") == []][-1]
        first_upload = edits.index(uploads[0])
        assert first_upload > 0  # the edits before it (no points yet) carried no chart
        for position, edit in enumerate(edits):
            if edit.files:
                continue
            # A text-only edit attaches nothing; after the first upload it keeps the chart already there.
            assert edit.json is not None
            assert "attachments" not in edit.json
            image = edit.json["embeds"][0].get("image")
            if position < first_upload:
                assert image is None
            else:
                assert image == {"url": f"attachment://loss-{job.id}.png"}
        message = hz.rest.messages[job.status_message_id or 0]
        assert [a["filename"] for a in message["attachments"]] == [f"loss-{job.id}.png"]
        refreshed = await hz.services.jobs.get(job.id)
        assert refreshed.chart_points == len(job.metrics["loss"]) + len(job.metrics["valid"])
        # Validation loss is charted and shown.
        assert len(job.metrics["valid"]) == 120
        assert "Validation loss" in _fields(edits[-1])


@pytest.mark.asyncio
async def test_with_no_interval_each_new_point_uploads_and_nothing_new_uploads_nothing(hz: RunningBot) -> None:
    assert hz.settings.job_chart_interval_s == 30.0  # the default
    hz.app.get(JobMessages).chart_interval = 0.0
    job = await _start(hz)
    job = await _advance_and_poll(hz, job)  # files validated, queued: no points yet
    assert _uploads(_edits(hz, job)) == []
    for _ in range(3):
        job = await _advance_and_poll(hz, job)
    assert len(_uploads(_edits(hz, job))) == 3  # running with 8 steps, then 16, then 24
    # Refresh with nothing new: the text is edited, the chart is not uploaded again.
    message = hz.rest.messages[job.status_message_id or 0]
    before = len(_edits(hz, job))
    await hz.send(button("hz.jr", message, user=ADMIN_MEMBER))
    edits = _edits(hz, job)
    assert len(edits) == before + 1
    assert not edits[-1].files


@pytest.mark.asyncio
async def test_refresh_is_debounced_in_the_database(hz: RunningBot) -> None:
    job = await _start(hz)
    message = hz.rest.messages[job.status_message_id or 0]

    def retrieves() -> int:
        return len([r for r in hz.openai.requests if r.method == "GET" and r.path.endswith(job.external_id or "-")])

    before = retrieves()
    first = await hz.send(button("hz.jr", message, user=ADMIN_MEMBER))
    assert retrieves() == before + 1
    assert first.content is not None
    assert "just refreshed" not in first.content
    again = await hz.send(button("hz.jr", message, user=ADMIN_MEMBER))
    assert retrieves() == before + 1  # nothing asked of the trainer
    assert again.content is not None
    assert "just refreshed" in again.content
    # The last refresh is kept with the job, not in this process: once it is old, a press refreshes again.
    async with hz.services.db.session() as session, session.begin():
        await session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job.id)
            .values(refreshed_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=hz.settings.job_refresh_debounce_s))
        )
    await hz.send(button("hz.jr", message, user=ADMIN_MEMBER))
    assert retrieves() == before + 2


@pytest.mark.asyncio
async def test_cancel_asks_for_confirmation(hz: RunningBot) -> None:
    job = await _start(hz)
    message = hz.rest.messages[job.status_message_id or 0]
    asked = await hz.send(button("hz.jc", message, user=ADMIN_MEMBER))
    assert asked.ephemeral
    confirm, keep = [c["custom_id"] for row in asked.components for c in row["components"]]
    assert asked.original_message is not None
    prompt = asked.original_message

    kept = await hz.send(button(keep, prompt, user=ADMIN_MEMBER))
    assert "keeps going" in str(kept.content)
    assert kept.components == []
    assert (await hz.services.jobs.get(job.id)).status == "queued"

    # The ids name the job: pressed from another server, they reach nothing.
    outsider = in_other_guild(button(confirm, prompt, user=ADMIN_MEMBER), OTHER_GUILD)
    refused = await hz.send(outsider)
    assert f"no training job #{job.id} in this server" in str(refused.content)
    assert (await hz.services.jobs.get(job.id)).status == "queued"

    done = await hz.send(button(confirm, prompt, user=ADMIN_MEMBER))
    assert f"Cancelling training job #{job.id}" in str(done.content)
    assert done.components == []
    job = await hz.services.jobs.get(job.id)
    assert job.status == "cancelled"
    assert hz.openai.jobs[job.external_id or ""]["status"] == "cancelled"
    again = await hz.send(button(confirm, prompt, user=ADMIN_MEMBER))
    assert "already cancelled" in str(again.content)


@pytest.mark.asyncio
async def test_events_in_a_file_carry_plain_utc_times(hz: RunningBot) -> None:
    job = await _start(hz)
    job = await _run_long_job(hz, job)
    result = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="events", user=ADMIN_MEMBER))
    [file] = result.files
    text = file.content.decode()
    assert "<t:" not in text
    lines = text.splitlines()
    assert len(lines) == len(await hz.services.jobs.events(job.id))
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \[(info|warn|error)\] ", line) for line in lines), lines[:3]
    assert "times in the file are UTC" in str(result.content)
    assert "<t:" in str(result.content)  # Discord's markup in the message text, where it renders


@pytest.mark.asyncio
async def test_checkpoints_are_listed_and_one_registers_as_a_model(hz: RunningBot) -> None:
    job = await _start(hz, validation=0.25)
    job = await _run_long_job(hz, job)
    listed = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="checkpoints", user=ADMIN_MEMBER))
    text = str(listed.content)
    kept = hz.openai.checkpoints(job.external_id or "")
    assert len(kept) == 3  # OpenAI keeps the last three epochs'
    steps = [c["step_number"] for c in kept]
    for checkpoint in kept:
        assert f"step **{checkpoint['step_number']}**" in text
        assert f"`{checkpoint['fine_tuned_model_checkpoint']}`" in text
    # The stand-in's validation loss falls all along: the best is the last.
    best_line = next(line for line in text.splitlines() if "★ best" in line)
    assert f"step **{steps[-1]}**" in best_line

    first = kept[0]
    registered = await hz.send(
        slash(
            "jobs", {"job": str(job.id), "register": first["step_number"]}, subcommand="checkpoints", user=ADMIN_MEMBER
        )
    )
    name = first["fine_tuned_model_checkpoint"]
    assert f"is now the model `{name}`" in str(registered.content)
    async with hz.services.db.session() as session:
        models = {m.name: m for m in (await session.scalars(select(RegisteredModel))).all()}
    assert models[name].job_id == job.id
    relisted = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="checkpoints", user=ADMIN_MEMBER))
    assert f"registered as `{name}`" in str(relisted.content)
    used = await hz.send(slash("model", {"name": name}, subcommand="use", user=ADMIN_MEMBER))
    assert any("now talks with" in str((c.json or {}).get("content")) for c in used.followups)
    hz.openai.reply_with(lambda messages, model: f"{model} answers")
    answered = await hz.send(slash("chat", {"message": "What is 3 + 3?"}))
    assert answered.original_message is not None
    assert answered.original_message["content"] == f"{name} answers"

    missing = await hz.send(
        slash("jobs", {"job": str(job.id), "register": 5}, subcommand="checkpoints", user=ADMIN_MEMBER)
    )
    assert "no checkpoint at step 5" in str(missing.content)
    # Another server's administrator neither sees nor registers them.
    for options in ({"job": str(job.id)}, {"job": str(job.id), "register": first["step_number"]}):
        outsider = in_other_guild(slash("jobs", options, subcommand="checkpoints", user=ADMIN_MEMBER), OTHER_GUILD)
        answer = await hz.send(outsider)
        assert f"no training job #{job.id} in this server" in str(answer.content)


@pytest.mark.asyncio
async def test_a_job_without_checkpoints_says_so(hz: RunningBot) -> None:
    job = await _start(hz)
    listed = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="checkpoints", user=ADMIN_MEMBER))
    assert f"Job #{job.id} has no checkpoints: its trainer has reported none." == listed.content
    registered = await hz.send(
        slash("jobs", {"job": str(job.id), "register": 3}, subcommand="checkpoints", user=ADMIN_MEMBER)
    )
    assert "no checkpoint at step 3" in str(registered.content)
