"""``/test run`` and ``/test compare`` through Discord: scores, failures shown as expected vs got, comparisons
decided by exact then normalized match (similarity only between two wrong answers), the comparison chart, a
training job's held-out examples (generalisation) apart from its training examples (memorisation), and the LLM
judge against the OpenAI stand-in."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from PIL import Image
from sqlalchemy import select

from hypotez.errors import InvalidInputError
from hypotez.ml.charts import pair_colours
from hypotez.ml.evaluation import normalize, parse_test_data
from hypotez.storage.models import EvaluationRun
from hypotez.storage.repositories import EvaluationRepository
from tests.conftest import running_hypotez
from tests.e2e.test_isolation import elsewhere
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, GUILD_ID, Attachment, said, slash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.discord_rest import RecordedCall, RecordedFile
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Kenya": "Nairobi"}


def _capital_model(messages: list[dict[str, str]], model: str) -> str:
    """gpt-4.1-mini knows every capital; gpt-4o-mini only France's, and in lower case."""
    country = messages[-1]["content"].removeprefix("Capital of ").rstrip("?")
    if model == "gpt-4.1-mini":
        return CAPITALS.get(country, "?")
    return "paris." if country == "France" else "I am not sure."


def _jsonl(pairs: dict[str, str] = CAPITALS) -> bytes:
    return "".join(
        json.dumps({"text": f"Capital of {country}?", "expected": city}) + "\n" for country, city in pairs.items()
    ).encode()


def _answer(result: InteractionResult) -> RecordedCall:
    [answer] = [c for c in result.followups if c.files]
    assert answer.json is not None
    return answer


def _report(answer: RecordedCall) -> list[dict[str, Any]]:
    [report] = [f for f in answer.files if f.filename.endswith(".jsonl")]
    return [json.loads(line) for line in report.content.decode().splitlines()]


async def _runs(hz: RunningBot) -> list[EvaluationRun]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(EvaluationRun).order_by(EvaluationRun.id))).all())


# ------------------------------------------------------------------------------------------------ /test run


@pytest.mark.asyncio
async def test_run_scores_lists_expected_vs_got_and_keeps_a_report(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    file = hz.rest.host(Attachment("capitals.jsonl", _jsonl(), content_type="application/jsonl"))
    result = await hz.send(
        slash("test", {"file": file, "model": "gpt-4o-mini"}, subcommand="run", attachments=[file], user=ADMIN_MEMBER)
    )
    answer = _answer(result)
    text = answer.json["content"]  # type: ignore[index]
    assert "**gpt-4o-mini** on 4 cases" in text
    assert "exact match 0% · normalized match 25%" in text
    assert "**3 failures** (expected vs got):" in text
    assert "❌ line 2 · `Capital of Japan?` — expected `Tokyo` · got `I am not sure.`" in text
    assert "❌ line 3 · `Capital of Italy?` — expected `Rome` · got `I am not sure.`" in text
    assert "❌ line 4 · `Capital of Kenya?` — expected `Nairobi` · got `I am not sure.`" in text
    assert "France" not in text  # a normalized match is no failure
    lines = _report(answer)
    assert lines[0]["summary"]["normalized_match"] == 0.25
    assert lines[0]["summary"]["failures"] == 3
    assert [line["normalized_match"] for line in lines[1:]] == [True, False, False, False]
    assert [line["failed"] for line in lines[1:]] == [False, True, True, True]
    assert [(line["expected"], line["output"]) for line in lines[1:]] == [
        ("Paris", "paris."),
        ("Tokyo", "I am not sure."),
        ("Rome", "I am not sure."),
        ("Nairobi", "I am not sure."),
    ]
    [report] = [f for f in answer.files if f.filename.endswith(".jsonl")]
    kept = list((hz.settings.data_dir / "guilds" / str(GUILD_ID) / "reports").glob("test-*.jsonl"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == report.content
    [run] = await _runs(hz)
    assert (run.kind, run.model, run.scorer, run.guild_id) == ("run", "gpt-4o-mini", "match", GUILD_ID)
    assert run.summary["data"] == "capitals.jsonl"
    assert [case["expected"] for case in run.cases] == ["Paris", "Tokyo", "Rome", "Nairobi"]


@pytest.mark.asyncio
async def test_many_failures_are_cut_to_fit_and_all_kept_in_the_report(hz: RunningBot) -> None:
    hz.openai.reply_with("A long and wrong answer that goes on and on about something else entirely. " * 3)
    cases = [{"text": f"Question number {i}: " + "why? " * 30, "expected": f"Answer {i}."} for i in range(60)]
    result = await hz.send(
        slash("test", {"data": json.dumps(cases), "model": "gpt-4o-mini"}, subcommand="run", user=ADMIN_MEMBER)
    )
    answer = _answer(result)
    text: str = answer.json["content"]  # type: ignore[index]
    assert len(text) <= 2000
    assert "**60 failures** (expected vs got):" in text
    assert "❌ line 1 · `Question number 0: why? why?" in text
    assert "— expected `Answer 0.` · got `A long and wrong answer" in text
    shown = text.count("❌ line ")
    assert 3 <= shown < 60
    assert f"… and {60 - shown} more in the report" in text
    assert text.rstrip().endswith("what the model said).")
    records = _report(answer)[1:]
    assert len(records) == 60
    assert all(r["failed"] and r["expected"] == f"Answer {i}." and r["output"] for i, r in enumerate(records))


@pytest.mark.asyncio
async def test_run_with_inline_json_defaults_to_the_active_model(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    data = json.dumps(
        [
            {"text": "Capital of Japan?", "expected": "Tokyo"},
            {"messages": [{"role": "user", "content": "Capital of Kenya?"}], "expected": "Nairobi"},
        ]
    )
    await hz.send(slash("model", {"name": "gpt-4.1-mini"}, subcommand="use", user=ADMIN_MEMBER))
    result = await hz.send(slash("test", {"data": data}, subcommand="run", user=ADMIN_MEMBER))
    text = _answer(result).json["content"]  # type: ignore[index]
    assert "**gpt-4.1-mini** on 2 cases" in text
    assert "exact match 100%" in text
    assert "failures" not in text


@pytest.mark.asyncio
async def test_errors_are_recorded_not_fatal(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    hz.openai.fail_next(500, times=1, path_contains="/chat/completions")
    data = json.dumps({"text": "Capital of Italy?", "expected": "Rome"})
    result = await hz.send(slash("test", {"data": data, "model": "gpt-4.1-mini"}, subcommand="run", user=ADMIN_MEMBER))
    answer = _answer(result)
    assert "errors 1" in answer.json["content"]  # type: ignore[index]
    assert "⚠️ line 1 · `Capital of Italy?` — error: `" in answer.json["content"]  # type: ignore[index]
    record = _report(answer)[1]
    assert "HTTP 500" in record["error"]


@pytest.mark.asyncio
async def test_bad_test_data_is_refused_with_line_numbers(hz: RunningBot) -> None:
    file = hz.rest.host(
        Attachment("bad.jsonl", b'{"text": "ok"}\nnot json\n{"expected": "x"}\n', content_type="application/jsonl")
    )
    result = await hz.send(slash("test", {"file": file}, subcommand="run", attachments=[file], user=ADMIN_MEMBER))
    text = said(result)
    assert "line 2: not valid JSON" in text
    assert "Line 3: give `text`" in text
    neither = await hz.send(slash("test", subcommand="run", user=ADMIN_MEMBER))
    assert "one of the three" in said(neither)
    split_alone = await hz.send(
        slash("test", {"data": '{"text": "hi"}', "split": "held-out"}, subcommand="run", user=ADMIN_MEMBER)
    )
    assert "`split` chooses among a training job's examples" in said(split_alone)
    rubric_alone = await hz.send(
        slash("test", {"data": '{"text": "hi"}', "rubric": "Be kind."}, subcommand="run", user=ADMIN_MEMBER)
    )
    assert "A `rubric` is for the judge" in said(rubric_alone)
    assert await _runs(hz) == []


def test_parse_and_normalize() -> None:
    cases = parse_test_data(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
    )
    assert cases[0].expected == "hello"
    assert cases[0].messages == [{"role": "user", "content": "hi"}]
    with pytest.raises(InvalidInputError, match="end with the user's turn"):
        parse_test_data('{"messages": [{"role": "system", "content": "x"}]}')
    assert normalize("  Paris!! ") == normalize("paris")
    assert normalize("Ｔｏｋｙｏ") == "tokyo"
    assert normalize("Привет, МИР") == "привет мир"


# -------------------------------------------------------------------------------------------- /test compare

#: Five cases: both right (tie), exact beats normalized, normalized beats wrong, two wrong (the closer wins),
#: two equally wrong (tie).
TIERED = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Kenya": "Nairobi", "Peru": "Lima"}
_ANSWERS = {
    "gpt-4.1-mini": {"France": "Paris", "Japan": "Tokyo", "Italy": "rome!", "Kenya": "I am not sure.", "Peru": "Lama"},
    "gpt-4o-mini": {"France": "Paris", "Japan": "tokyo.", "Italy": "Milan", "Kenya": "Nairob", "Peru": "Lama"},
}


def _tiered_model(messages: list[dict[str, str]], model: str) -> str:
    return _ANSWERS[model][messages[-1]["content"].removeprefix("Capital of ").rstrip("?")]


async def _compare(hz: RunningBot, model_a: str, model_b: str) -> RecordedCall:
    file = hz.rest.host(Attachment("capitals.jsonl", _jsonl(TIERED), content_type="application/jsonl"))
    options = {"model_a": model_a, "model_b": model_b, "file": file}
    return _answer(await hz.send(slash("test", options, subcommand="compare", attachments=[file], user=ADMIN_MEMBER)))


@pytest.mark.asyncio
async def test_compare_decides_by_exact_then_normalized_match_then_similarity(hz: RunningBot) -> None:
    hz.openai.reply_with(_tiered_model)
    answer = await _compare(hz, "gpt-4.1-mini", "gpt-4o-mini")
    text = answer.json["content"]  # type: ignore[index]
    assert "On capitals.jsonl:" in text
    assert "`gpt-4.1-mini` better on 2 (exact 1 · normalized 1), `gpt-4o-mini` better on 1 (closer 1), ties 2." in text
    rows = _report(answer)
    summary = rows[0]["summary"]
    assert (summary["wins_a"], summary["wins_b"], summary["ties"]) == (2, 1, 2)
    assert summary["wins_by_tier"]["a"] == {"error": 0, "exact": 1, "normalized": 1, "similarity": 0}
    assert summary["wins_by_tier"]["b"] == {"error": 0, "exact": 0, "normalized": 0, "similarity": 1}
    assert [(r["winner"], r["tier"], r["tie"]) for r in rows[1:]] == [
        ("tie", None, "both right"),
        ("a", "exact", None),
        ("a", "normalized", None),
        ("b", "similarity", None),
        ("tie", None, "equally close"),
    ]
    [run] = await _runs(hz)
    assert run.kind == "compare"
    assert run.summary["wins_by_tier"] == summary["wins_by_tier"]


def _chart(answer: RecordedCall) -> RecordedFile:
    [chart] = [f for f in answer.files if f.filename == "comparison.png"]
    assert chart.content.startswith(b"\x89PNG")
    return chart


def _pixels(png: bytes, colour: str) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    wanted = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, rgb in image.getcolors(maxcolors=1 << 20) or [] if rgb == wanted)


@pytest.mark.asyncio
async def test_the_chart_colours_each_model_alike_in_either_position_with_legend_and_title(hz: RunningBot) -> None:
    hz.openai.reply_with(_tiered_model)
    first = _chart(await _compare(hz, "gpt-4.1-mini", "gpt-4o-mini")).content
    swapped = _chart(await _compare(hz, "gpt-4o-mini", "gpt-4.1-mini")).content
    colour_41, colour_4o = pair_colours("gpt-4.1-mini", "gpt-4o-mini")
    assert colour_41 != colour_4o
    assert pair_colours("gpt-4o-mini", "gpt-4.1-mini") == (colour_4o, colour_41)
    for png in (first, swapped):
        # gpt-4.1-mini's exact win is drawn solid in its colour (besides its legend patch); gpt-4o-mini won by
        # similarity alone (drawn lighter), so its pure colour is its legend patch only.
        assert _pixels(png, colour_41) > _pixels(png, colour_4o) > 0
        assert _pixels(png, "#ED4245") == 0  # no model is drawn red for losing (or for winning)
    meta = Image.open(io.BytesIO(first)).text  # type: ignore[attr-defined]
    assert meta["Title"] == "gpt-4.1-mini vs gpt-4o-mini · capitals.jsonl (5 cases)"
    assert meta["Description"] == (
        "gpt-4.1-mini: 2 won; gpt-4o-mini: 1 won; tie: 2; won by exact match; won by normalized match; "
        "won by closer (neither matched)"
    )
    assert Image.open(io.BytesIO(swapped)).text["Title"].startswith("gpt-4o-mini vs gpt-4.1-mini")  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- a job's held-out split


def _memorising_model(hz: RunningBot) -> Any:
    """The fine-tuned model answers exactly what it was trained on, and nothing else: perfect memorisation,
    no generalisation.  What it learned is read from the training file uploaded to the stand-in."""

    def reply(messages: list[dict[str, str]], model: str) -> str:
        if model.startswith("ft:"):
            for meta, content in hz.openai.files.values():
                if meta["filename"].endswith("-train.jsonl"):
                    for line in content.decode().splitlines():
                        record = json.loads(line)
                        if record["messages"][:-1] == messages:
                            return record["messages"][-1]["content"]
        return "I don't know."

    return reply


async def _trained_job(hz: RunningBot, validation: float) -> int:
    await seed_corrections(hz.services, 12 if validation else 10)
    options: dict[str, Any] = {"dataset": "corrections", "trainer": "openai"}
    if validation:
        options["validation"] = validation
    started = await hz.send(slash("train", options, user=ADMIN_MEMBER))
    assert "Training job #" in said(started), said(started)
    [job] = await hz.services.jobs.list(GUILD_ID)
    for _ in range(10):
        await hz.services.jobs.poll_once()
        job = await hz.services.jobs.get(job.id)
        if job.finished_at is not None:
            break
    assert job.status == "succeeded"
    return job.id


@pytest.mark.asyncio
async def test_a_jobs_held_out_examples_measure_generalisation_apart_from_memorisation(hz: RunningBot) -> None:
    job_id = await _trained_job(hz, 0.2)
    assert await EvaluationRepository(hz.services.db).job_example_counts(job_id) == {"train": 10, "validation": 2}
    hz.openai.reply_with(_memorising_model(hz))
    result = await hz.send(slash("test", {"job": str(job_id)}, subcommand="run", user=ADMIN_MEMBER))
    answer = _answer(result)
    text = answer.json["content"]  # type: ignore[index]
    job = await hz.services.jobs.get(job_id)
    assert f"**{job.result_model}** on 12 cases" in text
    assert "Generalisation — held-out examples (2): exact match 0% · normalized match 0%" in text
    assert "Memorisation — training examples (10): exact match 100% · normalized match 100%" in text
    assert "Gap (training − held-out, normalized match): +100 points" in text
    assert "(held-out) · `What is" in text  # the held-out failures, expected vs got
    lines = _report(answer)
    splits = lines[0]["summary"]["splits"]
    assert splits["held-out"]["cases"] == 2
    assert splits["held-out"]["normalized_match"] == 0
    assert splits["training"]["normalized_match"] == 1
    held = [r for r in lines[1:] if r["split"] == "held-out"]
    assert len(held) == 2
    assert all(r["output"] == "I don't know." and r["expected"] for r in held)
    [run] = await _runs(hz)
    assert run.job_id == job_id
    # One part alone.
    only = await hz.send(slash("test", {"job": f"#{job_id}", "split": "held-out"}, subcommand="run", user=ADMIN_MEMBER))
    assert "on 2 cases" in _answer(only).json["content"]  # type: ignore[index]
    # The base model on the same held-out examples, side by side.
    compared = await hz.send(
        slash(
            "test",
            {"model_a": str(job.result_model), "model_b": "gpt-4.1-mini", "job": str(job_id)},
            subcommand="compare",
            user=ADMIN_MEMBER,
        )
    )
    assert f"On job #{job_id} held-out examples:" in _answer(compared).json["content"]  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_job_without_a_held_out_split_says_how_to_get_one(hz: RunningBot) -> None:
    job_id = await _trained_job(hz, 0.0)
    hz.openai.reply_with(_memorising_model(hz))
    held_out = await hz.send(
        slash("test", {"job": str(job_id), "split": "held-out"}, subcommand="run", user=ADMIN_MEMBER)
    )
    assert f"Training job #{job_id} held out no examples: start it with `/train validation:`" in said(held_out)
    both = await hz.send(slash("test", {"job": str(job_id)}, subcommand="run", user=ADMIN_MEMBER))
    text = _answer(both).json["content"]  # type: ignore[index]
    assert "this measures memorisation only" in text
    assert "Memorisation — training examples (10): exact match 100%" in text
    # Another server's job is not reachable, nor a job that does not exist.
    other = await hz.send(elsewhere(slash("test", {"job": str(job_id)}, subcommand="run", user=ADMIN_MEMBER)))
    assert f"There is no training job #{job_id} in this server." in said(other)
    missing = await hz.send(slash("test", {"job": "999"}, subcommand="run", user=ADMIN_MEMBER))
    assert "There is no training job #999 in this server." in said(missing)
    assert len(await _runs(hz)) == 1


# ------------------------------------------------------------------------------------------------ the judge


@pytest_asyncio.fixture
async def judged_hz(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    """hypotez with a judge: gpt-4.1-mini on the chat backend's server (the OpenAI stand-in), two at a time."""
    settings = bot_settings.model_copy(update={"judge_model": "gpt-4.1-mini", "judge_concurrency": 2})
    async with running_hypotez(settings, openai_fake) as running:
        yield running


def _judge_and_answer(messages: list[dict[str, str]], model: str) -> str:
    """gpt-4o-mini answers; gpt-4.1-mini judges: Tokyo's answer gets text instead of JSON, the rest a score."""
    if model == "gpt-4o-mini":
        return _capital_model(messages, model)
    graded = messages[-1]["content"]
    if "Capital of Japan?" in graded:
        return "Looks fine to me!"
    if "paris." in graded:
        return '```json\n{"score": 9, "reason": "Right city, lower case."}\n```'
    return '{"score": 2, "reason": "It does not name the capital."}'


@pytest.mark.asyncio
async def test_the_judge_scores_each_answer_with_a_reason_and_survives_a_malformed_verdict(
    judged_hz: RunningBot,
) -> None:
    hz = judged_hz
    hz.openai.reply_with(_judge_and_answer)
    hz.openai.chat_reply_delay = 0.05
    file = hz.rest.host(Attachment("capitals.jsonl", _jsonl(), content_type="application/jsonl"))
    rubric = "Only the city's name matters."
    options = {"file": file, "model": "gpt-4o-mini", "scorer": "judge", "rubric": rubric}
    answer = _answer(await hz.send(slash("test", options, subcommand="run", attachments=[file], user=ADMIN_MEMBER)))
    text = answer.json["content"]  # type: ignore[index]
    assert "judge 4.3/10 (1 unscored)" in text
    assert "⚖️ line 3 · 2/10 · It does not name the capital." in text
    lines = _report(answer)
    summary = lines[0]["summary"]
    assert summary["scorer"] == "judge"
    assert summary["judge"] == {"model": "gpt-4.1-mini", "rubric": rubric, "scale": [1, 10]}
    assert (summary["judged"], summary["judge_errors"]) == (3, 1)
    by_line = {r["line"]: r for r in lines[1:]}
    assert (by_line[1]["judge_score"], by_line[1]["judge_reason"]) == (9, "Right city, lower case.")
    assert by_line[3]["judge_score"] == 2
    assert by_line[2]["judge_score"] is None
    assert (
        by_line[2]["judge_error"] == "the judge did not answer with the JSON asked for (it said: “Looks fine to me!”)"
    )
    # What the judge was sent: the rubric, the conversation, the reference answer and the answer to grade.
    judge_calls = [r.json for r in hz.openai.requests if r.json and r.json.get("model") == "gpt-4.1-mini"]
    assert len(judge_calls) == 4
    system, user = judge_calls[0]["messages"]
    assert rubric in system["content"]
    assert '"score"' in system["content"]
    assert "## Reference answer" in user["content"]
    assert "## Answer to grade" in user["content"]
    assert hz.openai.max_chat_in_flight["gpt-4.1-mini"] == 2  # judge_concurrency
    # Stored with the run; no secret anywhere.
    [run] = await _runs(hz)
    assert run.scorer == "judge"
    assert [c.get("judge_score") for c in run.cases] == [9, None, 2, 2]
    key = hz.settings.openai_api_key
    assert key is not None
    assert key.get_secret_value() not in json.dumps(lines)
    assert key.get_secret_value() not in text


@pytest.mark.asyncio
async def test_without_a_judge_model_the_judge_is_refused_with_the_setting_to_set(hz: RunningBot) -> None:
    result = await hz.send(
        slash("test", {"data": '{"text": "hi"}', "scorer": "judge"}, subcommand="run", user=ADMIN_MEMBER)
    )
    assert "No judge model is set: set `judge_model` (HYPOTEZ_JUDGE_MODEL)" in said(result)
    assert not [r for r in hz.openai.requests if r.path.endswith("/chat/completions")]


@pytest.mark.asyncio
async def test_a_judge_on_its_own_server_never_gets_the_chat_key(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(update={"judge_model": "gpt-4.1-mini", "judge_base_url": openai_fake.base_url})
    async with running_hypotez(settings, openai_fake) as hz:
        hz.openai.reply_with(_judge_and_answer)
        data = json.dumps({"text": "Capital of France?", "expected": "Paris"})
        options = {"data": data, "model": "gpt-4o-mini", "scorer": "judge"}
        answer = _answer(await hz.send(slash("test", options, subcommand="run", user=ADMIN_MEMBER)))
        assert "judge 9.0/10" in answer.json["content"]  # type: ignore[index]
        [judge_call] = [r for r in hz.openai.requests if r.json and r.json.get("model") == "gpt-4.1-mini"]
        key = settings.openai_api_key
        assert key is not None
        assert key.get_secret_value() not in judge_call.headers["authorization"]
