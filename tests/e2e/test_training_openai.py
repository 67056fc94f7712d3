"""The ``openai`` trainer end to end: ``/train`` through Discord, the job tracker, live status messages,
resume after a restart, idempotency and the permission error — against the local OpenAI stand-in."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.storage.models import BotReply, RegisteredModel, TrainingJob
from tests.conftest import running_hypotez
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, USER_ID, button, slash

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot, ServiceView
    from tests.fakes.discord_rest import RecordedCall
    from tests.fakes.openai_api import FakeOpenAI


async def seed_corrections(services: ServiceView, count: int) -> None:
    """``count`` replies corrected by a trusted member (approved on arrival): the guild's ``corrections``
    dataset."""
    for i in range(count):
        reply = BotReply(
            guild_id=GUILD_ID,
            channel_id=CHANNEL_ID,
            author_id=USER_ID,
            backend="openai",
            model="gpt-4o-mini",
            prompt_messages=[{"role": "user", "content": f"What is {i} + {i}?"}],
            user_text=f"What is {i} + {i}?",
            content="I don't know.",
        )
        await services.replies.add(reply, [])
        await services.corrections.upsert(
            reply,
            author_id=USER_ID,
            corrected_text=str(2 * i),
            source="test",
            examples=examples_from_correction,
            trusted=True,
        )


def _status_posts(hz: RunningBot) -> list[RecordedCall]:
    return [c for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages") if c.json and c.json.get("embeds")]


def _status_edits(hz: RunningBot, message_id: int) -> list[RecordedCall]:
    return hz.rest.calls_to("PATCH", f"/channels/{CHANNEL_ID}/messages/{message_id}")


def _embed(call: RecordedCall) -> dict[str, Any]:
    assert call.json is not None
    return call.json["embeds"][0]


async def _job(services: ServiceView) -> TrainingJob:
    async with services.db.session() as session:
        return (await session.scalars(select(TrainingJob))).one()


async def _run_to_end(services: ServiceView, job_id: int, rounds: int = 10) -> TrainingJob:
    for _ in range(rounds):
        await services.jobs.poll_once()
        job = await services.jobs.get(job_id)
        if job.finished_at is not None:
            return job
    pytest.fail("the job never finished")


@pytest.mark.asyncio
async def test_openai_lifecycle_through_discord(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 12)
    started = await hz.send(
        slash(
            "train", {"dataset": "corrections", "trainer": "openai", "epochs": 2, "suffix": "arith"}, user=ADMIN_MEMBER
        )
    )
    reply = " ".join(str((c.json or {}).get("content", "")) for c in started.followups)
    assert "Training job #1 started on `gpt-4.1-mini-2025-04-14` with 12 examples" in reply

    # The data went up as a fine-tuning file in OpenAI's chat format, and the job was created with it.
    [upload] = [r for r in hz.openai.requests if r.method == "POST" and r.path == "/v1/files"]
    [file_id] = list(hz.openai.files)
    meta, content = hz.openai.files[file_id]
    assert meta["purpose"] == "fine-tune"
    lines = content.decode().splitlines()
    assert len(lines) == 12
    assert '"messages"' in lines[0]
    [create] = [r for r in hz.openai.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"]
    assert create.json is not None
    assert create.json["training_file"] == file_id
    # OpenAI's own method object: what was given, "auto" for the rest (OpenAI decides).
    assert create.json["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}},
    }
    assert "`n_epochs` = 2 (given)" in reply
    assert "`batch_size` = auto (auto" in reply
    assert create.json["suffix"] == "arith"
    _ = upload

    # A live status message with Refresh / Cancel buttons.
    [post] = _status_posts(hz)
    assert _embed(post)["title"] == "Training job #1 · openai"
    assert [c["custom_id"] for row in post.json["components"] for c in row["components"]] == ["hz.jr", "hz.jc"]  # type: ignore[index]
    job = await _job(hz.services)
    assert job.status_message_id is not None
    assert job.external_id in hz.openai.jobs

    job = await _run_to_end(hz.services, job.id)
    assert job.status == "succeeded"
    assert job.result_model is not None
    assert job.result_model.startswith("ft:gpt-4.1-mini")
    events = await hz.services.jobs.events(job.id)
    assert any(e.data.get("kind") == "metrics" for e in events)
    checkpoints = [e for e in events if e.data.get("kind") == "checkpoint"]
    assert checkpoints
    assert str(checkpoints[-1].data["model"]).startswith("ft:gpt-4.1-mini")
    assert job.metrics["loss"], "metrics were collected into a loss series"

    assert job.status_message_id is not None
    edits = _status_edits(hz, job.status_message_id)
    assert edits, "the status message was edited as the job progressed"
    final = edits[-1]
    assert "**succeeded**" in _embed(final)["description"]
    assert final.json is not None
    assert final.json["components"] == []  # no buttons on a finished job
    assert any(f.filename.startswith("loss-") and f.content.startswith(b"\x89PNG") for e in edits for f in e.files)
    # The requester is told, by mention.
    mentions = [
        c
        for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")
        if f"<@{job.requested_by}>" in str((c.json or {}).get("content"))
    ]
    assert mentions
    assert "succeeded" in mentions[-1].json["content"]  # type: ignore[index]

    # The model is registered, and the bot can switch to it.
    async with hz.services.db.session() as session:
        registered = (await session.scalars(select(RegisteredModel))).one()
    assert registered.name == job.result_model
    assert registered.job_id == job.id
    assert registered.dataset_id == job.dataset_id
    switched = await hz.send(slash("model", {"name": job.result_model}, subcommand="use", user=ADMIN_MEMBER))
    assert any("now talks with" in str((c.json or {}).get("content")) for c in switched.followups)
    hz.openai.reply_with(lambda messages, model: f"{model} answers")
    answered = await hz.send(slash("chat", {"message": "What is 3 + 3?"}))
    assert answered.original_message is not None
    assert answered.original_message["content"] == f"{job.result_model} answers"
    listed = await hz.send(slash("model", subcommand="list"))
    listing = " ".join(str((c.json or {}).get("content")) for c in listed.followups)
    assert f"`{job.result_model}` · openai" in listing
    assert f"Active here: `{job.result_model}`" in listing


@pytest.mark.asyncio
async def test_jobs_commands(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    job = await _run_to_end(hz.services, (await _job(hz.services)).id)
    listed = await hz.send(slash("jobs", subcommand="list", user=ADMIN_MEMBER))
    assert listed.content is not None
    assert f"`#{job.id}` **succeeded** · openai" in listed.content
    choices = await hz.send(autocomplete_jobs())
    assert choices.choices[0]["value"] == str(job.id)
    events = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="events", user=ADMIN_MEMBER))
    assert events.content is not None
    assert "Events of job" in events.content
    status = await hz.send(slash("jobs", {"job": f"#{job.id}"}, subcommand="status", user=ADMIN_MEMBER))
    assert any("succeeded" in str(c.json) for c in status.followups)
    finished = await hz.send(slash("jobs", {"job": str(job.id)}, subcommand="cancel", user=ADMIN_MEMBER))
    assert any("already succeeded" in str(c.json) for c in finished.followups)
    unknown = await hz.send(slash("jobs", {"job": "999"}, subcommand="status", user=ADMIN_MEMBER))
    assert unknown.content is not None
    assert "no training job #999" in unknown.content
    refused = await hz.send(slash("jobs", subcommand="list"))
    assert refused.content is not None
    assert "`train` capability" in refused.content


def autocomplete_jobs() -> dict[str, Any]:
    from tests.fakes.interactions import autocomplete

    return autocomplete("jobs", {"job": ""}, "job", subcommand="status", user=ADMIN_MEMBER)


@pytest.mark.asyncio
async def test_failure_is_reported_with_its_reason(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    job = await _job(hz.services)
    assert job.external_id is not None
    hz.openai.advance_job(
        job.external_id, to="failed", error={"code": "invalid_training_file", "message": "Line 3 is too long."}
    )
    job = await _run_to_end(hz.services, job.id)
    assert job.status == "failed"
    assert job.error == "Line 3 is too long."
    notices = [str((c.json or {}).get("content")) for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")]
    assert any("failed: Line 3 is too long." in n for n in notices)


@pytest.mark.asyncio
async def test_cancel_button_on_the_status_message(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    hz.openai.auto_advance = False
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    job = await _job(hz.services)
    assert job.status_message_id is not None
    message = hz.rest.messages[job.status_message_id]
    refused = await hz.send(button("hz.jc", message))
    assert refused.content is not None
    assert "`train` capability" in refused.content
    # Cancel asks first, on a message only the member who pressed sees; the job runs on meanwhile.
    asked = await hz.send(button("hz.jc", message, user=ADMIN_MEMBER))
    assert asked.ephemeral
    assert "Cancel training job #1" in str(asked.content)
    confirm, keep = [c["custom_id"] for row in asked.components for c in row["components"]]
    assert (confirm, keep) == (f"hz.jcy:{job.id}", f"hz.jck:{job.id}")
    assert (await hz.services.jobs.get(job.id)).status == "queued"
    assert asked.original_message is not None
    await hz.send(button(confirm, asked.original_message, user=ADMIN_MEMBER))
    job = await hz.services.jobs.get(job.id)
    assert job.status == "cancelled"
    assert hz.openai.jobs[job.external_id or ""]["status"] == "cancelled"
    assert job.status_message_id is not None
    assert "**cancelled**" in _embed(_status_edits(hz, job.status_message_id)[-1])["description"]


@pytest.mark.asyncio
async def test_a_job_is_resumed_after_a_restart(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    await_later: dict[str, int] = {}
    openai_fake.auto_advance = False
    async with running_hypotez(bot_settings, openai_fake) as first:
        await seed_corrections(first.services, 10)
        await first.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
        job = await _job(first.services)
        assert job.status_message_id is not None
        await_later["job"] = job.id
        await_later["message"] = job.status_message_id
        message = first.rest.messages[job.status_message_id]
    # While the bot is down the job finishes at OpenAI.
    assert job.external_id is not None
    openai_fake.advance_job(job.external_id, to="succeeded")
    # A new process on the same database picks the job up at start-up and updates the same message.
    from tests.fakes.discord_rest import FakeDiscordREST

    async with FakeDiscordREST() as discord:
        discord.messages[await_later["message"]] = message  # Discord still has the status message
        async with running_hypotez(bot_settings, openai_fake, rest=discord) as second:
            job = await _run_to_end(second.services, await_later["job"])
            assert job.status == "succeeded"
            await second.rest.wait_for(lambda: bool(_status_edits(second, await_later["message"])))
            edits = _status_edits(second, await_later["message"])
            assert "**succeeded**" in _embed(edits[-1])["description"]


@pytest.mark.asyncio
async def test_the_same_request_starts_one_job(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    hz.openai.auto_advance = False
    payload = slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER)
    await hz.send(payload)
    again = await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    assert any("identical training job #1 is already" in str(c.json) for c in again.followups)
    assert len(hz.openai.jobs) == 1
    async with hz.services.db.session() as session:
        assert len((await session.scalars(select(TrainingJob))).all()) == 1


@pytest.mark.asyncio
async def test_forbidden_fine_tuning_names_the_local_trainer(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    hz.openai.fine_tuning_forbidden = True
    result = await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    text = " ".join(str((c.json or {}).get("content")) for c in result.followups)
    assert "cannot create fine-tuning jobs" in text
    assert "2027-01-06" in text
    assert "`trainer:local`" in text
    job = await _job(hz.services)
    assert job.status == "failed"
    assert _status_posts(hz) == []


@pytest.mark.asyncio
async def test_options_the_trainer_does_not_take_are_refused_before_upload(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 12)
    base = {"dataset": "corrections", "trainer": "openai"}
    for options, message in (
        ({"max_steps": 5}, "`max_steps` applies to the local trainer only."),
        ({"lora": False}, "`lora` applies to the local trainer only."),
        ({"beta": 0.2}, "`beta` applies to preference training only"),
        ({"method": "supervised+preference"}, "`method:supervised+preference` runs on the local trainer"),
        ({"epochs": 2.5}, "OpenAI trains whole epochs"),
    ):
        result = await hz.send(slash("train", {**base, **options}, user=ADMIN_MEMBER))
        assert message in str(result.content), (options, result.content)
    assert hz.openai.files == {}
    assert hz.openai.jobs == {}


@pytest.mark.asyncio
async def test_too_little_data_is_refused_before_upload(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 4)
    result = await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    assert result.content is not None
    assert "at least 10 examples" in result.content
    assert hz.openai.files == {}
    missing = await hz.send(slash("train", {"dataset": "nope", "trainer": "openai"}, user=ADMIN_MEMBER))
    assert missing.content is not None
    assert "No dataset called `nope`" in missing.content


@pytest.mark.asyncio
async def test_train_straight_from_a_file(hz: RunningBot) -> None:
    from tests.fakes.interactions import Attachment

    hz.openai.auto_advance = False
    lines = "".join(
        json.dumps({"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": str(i)}]})
        + "\n"
        for i in range(12)
    ).encode()
    file = hz.rest.host(Attachment("numbers.jsonl", lines, content_type="application/jsonl"))
    started = await hz.send(slash("train", {"file": file, "trainer": "openai"}, attachments=[file], user=ADMIN_MEMBER))
    assert any("started on" in str(c.json) and "with 12 examples" in str(c.json) for c in started.followups)
    job = await _job(hz.services)
    assert job.dataset_id is not None
    dataset = await hz.services.datasets.get(job.dataset_id)
    assert dataset is not None
    assert dataset.name.startswith("upload-numbers-")
    # The same file again is the same dataset and the same request: no second job.
    file_again = hz.rest.host(Attachment("numbers.jsonl", lines, content_type="application/jsonl"))
    again = await hz.send(
        slash("train", {"file": file_again, "trainer": "openai"}, attachments=[file_again], user=ADMIN_MEMBER)
    )
    assert any("identical training job #1" in str(c.json) for c in again.followups)
    assert len(hz.openai.jobs) == 1

    bad = hz.rest.host(Attachment("bad.jsonl", b'{"messages": []}\nnot json\n', content_type="application/jsonl"))
    refused = await hz.send(slash("train", {"file": bad, "trainer": "openai"}, attachments=[bad], user=ADMIN_MEMBER))
    text = " ".join(str(c.json) for c in refused.followups)
    assert "line 2" in text.lower()
    assert len(hz.openai.jobs) == 1
    both = await hz.send(
        slash("train", {"dataset": "x", "file": file, "trainer": "openai"}, attachments=[file], user=ADMIN_MEMBER)
    )
    assert both.content is not None
    assert "one of the two" in both.content


@pytest.mark.asyncio
async def test_a_job_interrupted_while_starting_is_failed_and_does_not_block(hz: RunningBot) -> None:
    import datetime as dt

    from hypotez.ml.jobs import JobSpec, request_hash
    from hypotez.storage.models import utcnow

    await seed_corrections(hz.services, 10)
    hz.openai.auto_advance = False
    spec = JobSpec(
        trainer="openai", base_model="gpt-4o-mini", method="supervised", hyperparameters={}, data_fingerprint="x",
        guild_id=GUILD_ID, requested_by=USER_ID,
    )  # fmt: skip
    async with hz.services.db.session() as session, session.begin():
        session.add(
            TrainingJob(
                guild_id=GUILD_ID,
                requested_by=USER_ID,
                idempotency_key="crashed",
                request_hash=request_hash(spec),
                trainer="openai",
                base_model="gpt-4o-mini",
                status="pending",
                created_at=utcnow() - dt.timedelta(hours=1),
            )
        )
    assert await hz.services.jobs.find_duplicate(spec) is None  # a stale start blocks nothing
    assert await hz.services.jobs.fail_interrupted() == 1
    job = await _job(hz.services)
    assert job.status == "failed"
    assert "stopped while this job was starting" in (job.error or "")


@pytest.mark.asyncio
async def test_an_unrelated_job_with_the_same_number_is_not_reused(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    hz.openai.auto_advance = False
    # Another installation sharing the API key once created its own job-1.
    foreign = hz.openai.add_file(b'{"messages": []}\n' * 10, filename="x.jsonl", purpose="fine-tune")
    _ = foreign
    async with FakeClient(hz) as client:
        created = await client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=foreign["id"], metadata={"hypotez_job": "job-1", "hypotez_data": "other"}
        )
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    job = await _job(hz.services)
    assert job.external_id is not None
    assert job.external_id != created.id
    assert len(hz.openai.jobs) == 2


class FakeClient:
    """The real SDK pointed at the stand-in, as another installation would use it."""

    def __init__(self, hz: RunningBot) -> None:
        import openai

        self.client = openai.AsyncOpenAI(base_url=hz.openai.base_url, api_key="sk-other", max_retries=0)

    async def __aenter__(self) -> Any:
        return self.client

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()


@pytest.mark.asyncio
async def test_polling_fetches_only_new_events(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 10)
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    job = await _run_to_end(hz.services, (await _job(hz.services)).id)
    stored = await hz.services.jobs.events(job.id)
    trainer = hz.services.jobs.trainer("openai")
    assert job.external_id is not None
    before = len([r for r in hz.openai.requests if r.path.endswith("/events")])
    again = await trainer.events(job.external_id)
    assert [e for e in again if e.kind != "checkpoint"] == []  # nothing new since the last poll
    assert len([r for r in hz.openai.requests if r.path.endswith("/events")]) == before + 1  # one page read
    assert len(stored) == len({e.external_id for e in stored})  # and nothing was stored twice


@pytest.mark.asyncio
async def test_two_replicas_racing_identical_requests_start_one_job(hz: RunningBot) -> None:
    import asyncio

    from hypotez.ml.jobs import JobSpec, JobTracker
    from hypotez.ml.trainers.base import TrainingMethod, TrainingRequest
    from hypotez.storage.repositories import JobRepository

    hz.openai.auto_advance = False
    trainer = hz.services.jobs.trainer("openai")
    # Two processes sharing the database: separate trackers, no lock in common.
    replicas = [JobTracker(JobRepository(hz.services.db), {"openai": trainer}) for _ in range(2)]
    spec = JobSpec(
        trainer="openai",
        base_model="gpt-4o-mini",
        method="supervised",
        hyperparameters={},
        data_fingerprint="same-data",
        guild_id=GUILD_ID,
        requested_by=USER_ID,
    )
    examples = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]} for i in range(10)
    ]

    async def request(job_key: str) -> TrainingRequest:
        return TrainingRequest(job_key, "gpt-4o-mini", TrainingMethod.SUPERVISED, examples)

    results = await asyncio.gather(
        *(replica.submit(spec, request, idempotency_key=f"interaction:{i}") for i, replica in enumerate(replicas))
    )
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].id == results[1][0].id
    assert len(hz.openai.jobs) == 1
