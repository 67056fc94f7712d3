"""The OpenAI fake, exercised through the real `openai` SDK so that every answer parses into its types."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai.types import FileDeleted, FileObject, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from tests.fakes.openai_api import FINE_TUNING_FORBIDDEN_MESSAGE, FakeOpenAI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

UNICODE_TEXTS = [
    "Привет, мир! Как дела у бота сегодня?",
    "👋🏽 hello 👨‍👩‍👧‍👦 family 🎉🎉🎉 done",
    "שלום עולם, מה שלומך היום?",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "mixed: Ёлка 🌲 עץ شجرة tree\nsecond line\ttab",
    "🙂" * 40,  # one long "word", streamed in slices
]


def chat_line(user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are a test bot."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode() + b"\n"


TRAINING = jsonl([chat_line(f"вопрос {i}", f"ответ номер {i} 🙂") for i in range(10)])


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    try:
        yield sdk
    finally:
        await sdk.close()


def error_message(error: openai.APIStatusError) -> str:
    """The `message` of OpenAI's error body (the exception's own message is prefixed with the status)."""
    assert isinstance(error.body, dict)
    return str(error.body["message"])


async def upload_training(client: openai.AsyncOpenAI, content: bytes = TRAINING) -> FileObject:
    return await client.files.create(file=("train.jsonl", content), purpose="fine-tune")


# ---------------------------------------------------------------------------------------------- chat


@pytest.mark.asyncio
async def test_base_url_and_default_echo_reply(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    completion = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 7
    assert completion._request_id is not None

    (recorded,) = fake.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.json["messages"][1] == {"role": "user", "content": "hello there"}


@pytest.mark.asyncio
async def test_reply_with_constant_and_callable(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_with("fixed answer")
    completion = await client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "fixed answer"

    fake.reply_with(lambda messages, model: f"{model} saw {len(messages)} messages")
    completion = await client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
        ],
    )
    assert completion.choices[0].message.content == "gpt-4.1-mini saw 2 messages"


@pytest.mark.asyncio
async def test_max_completion_tokens_truncates_with_length(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_with("one two three four five")
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], max_completion_tokens=3
    )
    assert completion.choices[0].message.content == "one two three"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


@pytest.mark.asyncio
async def test_streaming_with_usage_chunk(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    reply = "The quick brown fox jumps over the lazy dog"
    fake.reply_with(reply)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks: list[ChatCompletionChunk] = []
    async with stream:
        async for chunk in stream:
            assert isinstance(chunk, ChatCompletionChunk)
            chunks.append(chunk)

    assert len({chunk.id for chunk in chunks}) == 1
    first, *middle, final, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    deltas = [chunk.choices[0].delta.content or "" for chunk in middle]
    assert len(deltas) >= 9
    assert "".join(deltas) == reply
    assert all(chunk.choices[0].finish_reason is None for chunk in middle)
    assert final.choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == 2
    assert usage_chunk.usage.completion_tokens == 9


@pytest.mark.asyncio
async def test_streaming_without_usage_and_with_chunk_delay(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_with("a b c")
    fake.stream_chunk_delay = 0.01
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert time.monotonic() - started >= 0.04  # 5 chunks, a delay between each
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "a b c"
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.asyncio
@pytest.mark.parametrize("text", UNICODE_TEXTS)
async def test_unicode_round_trips(fake: FakeOpenAI, client: openai.AsyncOpenAI, text: str) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    assert completion.choices[0].message.content == f"echo: {text}"
    assert fake.requests[-1].json["messages"][0]["content"] == text

    fake.reply_with(text)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True
    )
    deltas = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(deltas) == text
    assert len([d for d in deltas if d]) >= 2


@pytest.mark.asyncio
async def test_unknown_model_is_404_model_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.type == "invalid_request_error"
    assert "gpt-nope" in info.value.message


@pytest.mark.asyncio
async def test_missing_messages_is_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert info.value.param == "messages"


# -------------------------------------------------------------------------------------------- models


@pytest.mark.asyncio
async def test_models_list_and_retrieve(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [model.id for model in page.data] == ["gpt-4o-mini", "gpt-4.1-mini"]
    assert all(isinstance(model, Model) and model.owned_by == "system" for model in page.data)

    fake.models.append("gpt-4o")
    model = await client.models.retrieve("gpt-4o")
    assert model.id == "gpt-4o"
    assert model.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("gpt-missing")
    assert info.value.code == "model_not_found"


# --------------------------------------------------------------------------------------------- files


@pytest.mark.asyncio
async def test_file_upload_list_content_delete(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    uploaded = await upload_training(client)
    assert isinstance(uploaded, FileObject)
    assert uploaded.id.startswith("file-")
    assert uploaded.purpose == "fine-tune"
    assert uploaded.filename == "train.jsonl"
    assert uploaded.bytes == len(TRAINING)
    assert uploaded.status == "processed"
    assert fake.requests[-1].form == {"purpose": "fine-tune", "file": "train.jsonl"}
    assert fake.files[uploaded.id][1] == TRAINING

    other = await client.files.create(file=("notes.txt", "заметки".encode()), purpose="user_data")
    listed = await client.files.list()
    assert [f.id for f in listed.data] == [other.id, uploaded.id]
    only_fine_tune = await client.files.list(purpose="fine-tune")
    assert [f.id for f in only_fine_tune.data] == [uploaded.id]

    retrieved = await client.files.retrieve(uploaded.id)
    assert retrieved == uploaded
    content = await client.files.content(uploaded.id)
    assert content.read() == TRAINING
    assert content.text.splitlines()[0].startswith('{"messages"')

    deleted = await client.files.delete(uploaded.id)
    assert isinstance(deleted, FileDeleted)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(uploaded.id)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("filename", "content", "purpose", "expected"),
    [
        ("train.jsonl", b'{"messages": []}\nnot json\n', "fine-tune", "Line 2 is not valid JSON"),
        ("train.jsonl", b"[1, 2]\n", "fine-tune", "Line 1 is not a JSON object"),
        ("train.jsonl", b"\n\n", "fine-tune", "empty"),
        ("train.csv", b'{"messages": []}\n', "fine-tune", "Must be .jsonl"),
        ("train.jsonl", b'{"messages": []}\n', "fun", "'purpose'"),
    ],
)
async def test_file_upload_validation(
    client: openai.AsyncOpenAI, filename: str, content: bytes, purpose: Any, expected: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.files.create(file=(filename, content), purpose=purpose)
    assert expected in info.value.message
    assert info.value.type == "invalid_request_error"


# --------------------------------------------------------------------------------------- fine-tuning


@pytest.mark.asyncio
async def test_fine_tuning_job_full_lifecycle(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client)
    validation = await upload_training(client, jsonl([chat_line("q", "a")]))
    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=training.id,
        validation_file=validation.id,
        suffix="hypotez",
        seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    assert isinstance(job, FineTuningJob)
    assert job.id.startswith("ftjob-")
    assert job.status == "validating_files"
    assert job.model == "gpt-4o-mini-2024-07-18"
    assert job.seed == 7
    assert job.fine_tuned_model is None
    assert job.method is not None
    assert job.method.type == "supervised"
    assert job.method.supervised is not None
    assert job.method.supervised.hyperparameters is not None
    assert job.method.supervised.hyperparameters.n_epochs == 2
    assert job.method.supervised.hyperparameters.batch_size == "auto"
    assert fake.jobs[job.id]["training_file"] == training.id

    statuses = [(await client.fine_tuning.jobs.retrieve(job.id)).status for _ in range(4)]
    assert statuses == ["queued", "running", "succeeded", "succeeded"]

    done = await client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:fake-org:hypotez:")
    assert done.finished_at is not None
    assert done.trained_tokens is not None
    assert done.trained_tokens > 0
    assert done.error is None
    assert done.hyperparameters.n_epochs == 2
    assert isinstance(done.hyperparameters.batch_size, int)

    events: list[FineTuningJobEvent] = [event async for event in client.fine_tuning.jobs.list_events(job.id, limit=5)]
    assert all(isinstance(event, FineTuningJobEvent) for event in events)
    assert events[0].message == "The job has successfully completed"
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    assert len({event.id for event in events}) == len(events)
    metrics = [event for event in events if event.type == "metrics"]
    assert metrics
    steps = [cast("Any", event.data)["step"] for event in metrics]
    assert steps == sorted(steps, reverse=True)
    data: Any = metrics[0].data
    assert set(data) >= {"step", "train_loss", "total_steps", "train_mean_token_accuracy", "valid_loss"}
    assert data["step"] == data["total_steps"]

    first_page = await client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert len(first_page.data) == 3
    assert first_page.has_more is True

    checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id)
    assert len(checkpoints.data) == 2
    assert all(isinstance(checkpoint, FineTuningJobCheckpoint) for checkpoint in checkpoints.data)
    newest = checkpoints.data[0]
    assert newest.step_number == data["total_steps"]
    assert newest.fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-{newest.step_number}"
    assert newest.metrics.train_loss is not None
    assert newest.metrics.valid_loss is not None
    assert checkpoints.data[1].step_number < newest.step_number

    assert done.fine_tuned_model in fake.models
    listed = await client.models.list()
    tuned = next(model for model in listed.data if model.id == done.fine_tuned_model)
    assert tuned.owned_by == "org-fake"
    completion = await client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "как дела?"}]
    )
    assert completion.model == done.fine_tuned_model
    assert completion.choices[0].message.content == "echo: как дела?"
    checkpoint_chat = await client.chat.completions.create(
        model=newest.fine_tuned_model_checkpoint, messages=[{"role": "user", "content": "x"}]
    )
    assert checkpoint_chat.choices[0].message.content == "echo: x"

    (result_file_id,) = done.result_files
    result = await client.files.content(result_file_id)
    csv = base64.b64decode(result.read()).decode()
    assert csv.splitlines()[0].startswith("step,train_loss")


@pytest.mark.asyncio
async def test_dpo_job_and_manual_advance(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.auto_advance = False
    dpo_line = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    training = await upload_training(client, jsonl([dpo_line] * 10))
    job = await client.fine_tuning.jobs.create(
        model="gpt-4.1-mini",
        training_file=training.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "validating_files"

    fake.advance_job(job.id)
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "queued"
    fake.advance_job(job.id, to="succeeded")
    done = await client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.method is not None
    assert done.method.dpo is not None
    assert done.method.dpo.hyperparameters is not None
    assert done.method.dpo.hyperparameters.beta == 0.2
    assert done.method.dpo.hyperparameters.n_epochs == 3
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("ft:gpt-4.1-mini-2025-04-14:fake-org::")


@pytest.mark.asyncio
async def test_legacy_hyperparameters(client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client)
    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training.id, hyperparameters={"n_epochs": 4, "batch_size": 2}
    )
    assert job.hyperparameters.n_epochs == 4
    assert job.hyperparameters.batch_size == 2
    assert job.method is not None
    assert job.method.type == "supervised"


@pytest.mark.asyncio
async def test_cancel_job(client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client)
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    cancelled = await client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "cancelled"
    events = await client.fine_tuning.jobs.list_events(job.id)
    assert events.data[0].message == "Fine-tuning job cancelled"

    with pytest.raises(openai.BadRequestError) as info:
        await client.fine_tuning.jobs.cancel(job.id)
    assert "cancelled" in info.value.message


@pytest.mark.asyncio
async def test_failed_job_with_explicit_error(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client)
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    fake.advance_job(job.id, to="failed", error={"code": "quota_exceeded", "message": "Out of credits.", "param": None})
    failed = await client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "quota_exceeded"
    assert failed.error.message == "Out of credits."
    assert failed.fine_tuned_model is None
    events = await client.fine_tuning.jobs.list_events(job.id)
    assert events.data[0].level == "error"


@pytest.mark.asyncio
async def test_too_few_examples_fail_validation(client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client, jsonl([chat_line("q", "a")] * 3))
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    failed = await client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "invalid_training_file"
    assert failed.error.param == "training_file"
    assert "at least 10 examples" in failed.error.message


@pytest.mark.asyncio
async def test_create_job_validation(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-missing")
    assert info.value.param == "training_file"
    assert error_message(info.value) == "invalid training_file: file-missing"

    training = await upload_training(client)
    with pytest.raises(openai.BadRequestError) as info:
        await client.fine_tuning.jobs.create(model="gpt-unknown", training_file=training.id)
    assert info.value.param == "model"

    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.retrieve("ftjob-missing")


@pytest.mark.asyncio
async def test_list_jobs_pagination(client: openai.AsyncOpenAI) -> None:
    training = await upload_training(client)
    created = [
        (await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)).id for _ in range(3)
    ]
    page = await client.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in page.data] == created[::-1][:2]
    assert page.has_more is True
    everything = [job.id async for job in client.fine_tuning.jobs.list(limit=2)]
    assert everything == created[::-1]


@pytest.mark.asyncio
async def test_fine_tuning_forbidden(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.fine_tuning_forbidden = True
    training = await upload_training(client)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    assert info.value.status_code == 403
    assert info.value.type == "invalid_request_error"
    assert info.value.code == "permission_denied"
    assert error_message(info.value) == FINE_TUNING_FORBIDDEN_MESSAGE
    assert fake.jobs == {}


# -------------------------------------------------------------------------------- errors and timing


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "exception", "code", "error_type", "headers"),
    [
        (401, openai.AuthenticationError, "invalid_api_key", "invalid_request_error", None),
        (
            403,
            openai.PermissionDeniedError,
            "unsupported_country_region_territory",
            "request_forbidden",
            None,
        ),
        (429, openai.RateLimitError, "rate_limit_exceeded", "requests", {"retry-after": "1"}),
        (500, openai.InternalServerError, None, "server_error", None),
        (404, openai.NotFoundError, "model_not_found", "invalid_request_error", None),
    ],
)
async def test_fail_next_raises_sdk_errors(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    status: int,
    exception: type[openai.APIStatusError],
    code: str | None,
    error_type: str,
    headers: dict[str, str] | None,
) -> None:
    fake.fail_next(status, code=code, type=error_type if status == 403 else "", headers=headers)
    with pytest.raises(exception) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    error = info.value
    assert error.status_code == status
    assert error.code == code
    assert error.type == error_type
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    if headers:
        assert error.response.headers["retry-after"] == "1"

    # Only the next request failed.
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "echo: x"
    assert len(fake.requests) == 2


@pytest.mark.asyncio
async def test_fail_next_times_and_path_filter(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.fail_next(500, times=2, path_contains="/fine_tuning/", message="boom")
    assert (await client.models.list()).data  # a path that does not match
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            await client.fine_tuning.jobs.list()
        assert error_message(info.value) == "boom"
    assert (await client.fine_tuning.jobs.list()).data == []


@pytest.mark.asyncio
async def test_delay_next_makes_client_time_out(fake: FakeOpenAI) -> None:
    fake.delay_next(2.0)
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=0.2) as sdk:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await sdk.models.list()
        assert time.monotonic() - started < 1.5
        assert (await sdk.models.list()).data  # the delay applied only once


@pytest.mark.asyncio
async def test_api_key_check(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.api_key = "sk-right-key-123"
    with pytest.raises(openai.AuthenticationError) as info:
        await client.models.list()
    assert info.value.code == "invalid_api_key"

    async with aiohttp.ClientSession() as session, session.get(f"{fake.base_url}/models") as response:
        assert response.status == 401
        body = await response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert "didn't provide an API key" in body["error"]["message"]


@pytest.mark.asyncio
async def test_unknown_route_and_bad_json(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.post("/nothing/here", cast_to=object, body={})
    assert error_message(info.value) == "Invalid URL (POST /v1/nothing/here)"

    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer sk-test"}) as session,
        session.post(f"{fake.base_url}/chat/completions", data=b"{not json") as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "could not parse the JSON body" in body["error"]["message"]
    assert fake.requests[-1].json is None
