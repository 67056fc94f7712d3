"""``/test run`` and ``/test compare`` through Discord, and the scoring rules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from hypotez.errors import InvalidInputError
from hypotez.ml.evaluation import normalize, parse_test_data
from tests.fakes.interactions import ADMIN_MEMBER, Attachment, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Kenya": "Nairobi"}


def _capital_model(messages: list[dict[str, str]], model: str) -> str:
    """gpt-4.1-mini knows every capital; gpt-4o-mini only France's, and in lower case."""
    country = messages[-1]["content"].removeprefix("Capital of ").rstrip("?")
    if model == "gpt-4.1-mini":
        return CAPITALS.get(country, "?")
    return "paris." if country == "France" else "I am not sure."


def _jsonl() -> bytes:
    return "".join(
        json.dumps({"text": f"Capital of {country}?", "expected": city}) + "\n" for country, city in CAPITALS.items()
    ).encode()


@pytest.mark.asyncio
async def test_run_scores_and_keeps_a_report(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    file = hz.rest.host(Attachment("capitals.jsonl", _jsonl(), content_type="application/jsonl"))
    result = await hz.send(
        slash("test", {"file": file, "model": "gpt-4o-mini"}, subcommand="run", attachments=[file], user=ADMIN_MEMBER)
    )
    [answer] = [c for c in result.followups if c.files]
    assert answer.json is not None
    text = answer.json["content"]
    assert "**gpt-4o-mini** on 4 cases" in text
    assert "exact match 0% · normalized match 25%" in text
    [report] = answer.files
    lines = [json.loads(line) for line in report.content.decode().splitlines()]
    assert lines[0]["summary"]["normalized_match"] == 0.25
    assert [line["normalized_match"] for line in lines[1:]] == [True, False, False, False]
    assert lines[1]["output"] == "paris."
    from tests.fakes.interactions import GUILD_ID

    kept = list((hz.settings.data_dir / "guilds" / str(GUILD_ID) / "reports").glob("test-*.jsonl"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == report.content


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
    [answer] = [c for c in result.followups if c.files]
    assert answer.json is not None
    assert "**gpt-4.1-mini** on 2 cases" in answer.json["content"]
    assert "exact match 100%" in answer.json["content"]


@pytest.mark.asyncio
async def test_errors_are_recorded_not_fatal(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    hz.openai.fail_next(500, times=1, path_contains="/chat/completions")
    data = json.dumps({"text": "Capital of Italy?", "expected": "Rome"})
    result = await hz.send(slash("test", {"data": data, "model": "gpt-4.1-mini"}, subcommand="run", user=ADMIN_MEMBER))
    [answer] = [c for c in result.followups if c.files]
    assert answer.json is not None
    assert "errors 1" in answer.json["content"]
    record = json.loads(answer.files[0].content.decode().splitlines()[1])
    assert "HTTP 500" in record["error"]


@pytest.mark.asyncio
async def test_compare_two_models(hz: RunningBot) -> None:
    hz.openai.reply_with(_capital_model)
    file = hz.rest.host(Attachment("capitals.jsonl", _jsonl(), content_type="application/jsonl"))
    result = await hz.send(
        slash(
            "test",
            {"model_a": "gpt-4.1-mini", "model_b": "gpt-4o-mini", "file": file},
            subcommand="compare",
            attachments=[file],
            user=ADMIN_MEMBER,
        )
    )
    [answer] = [c for c in result.followups if c.files]
    assert answer.json is not None
    assert "`gpt-4.1-mini` better on 3, `gpt-4o-mini` better on 0, ties 1." in answer.json["content"]
    assert "comparison.png" in [f.filename for f in answer.files]
    chart = next(f for f in answer.files if f.filename == "comparison.png")
    assert chart.content.startswith(b"\x89PNG")
    report = next(f for f in answer.files if f.filename.endswith(".jsonl"))
    rows = [json.loads(line) for line in report.content.decode().splitlines()]
    assert rows[0]["summary"]["wins_a"] == 3
    assert [r["winner"] for r in rows[1:]] == ["tie", "a", "a", "a"]


@pytest.mark.asyncio
async def test_bad_test_data_is_refused_with_line_numbers(hz: RunningBot) -> None:
    file = hz.rest.host(
        Attachment("bad.jsonl", b'{"text": "ok"}\nnot json\n{"expected": "x"}\n', content_type="application/jsonl")
    )
    result = await hz.send(slash("test", {"file": file}, subcommand="run", attachments=[file], user=ADMIN_MEMBER))
    text = " ".join(str((c.json or {}).get("content")) for c in result.followups)
    assert "line 2: not valid JSON" in text
    assert "Line 3: give `text`" in text
    neither = await hz.send(slash("test", subcommand="run", user=ADMIN_MEMBER))
    assert any("either inline" in str((c.json or {}).get("content")) for c in neither.followups)


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
