"""Two export fixes end to end: an uploaded assistant turn's ``weight: 0`` survives import → dataset → export →
the fine-tuning upload (and is excluded from the loss-bearing turns); U+2028/U+2029 in members' text reach
OpenAI's stand-in inside one JSONL line (it splits lines there, as Unicode-aware readers do)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.ml.datasets import load_examples
from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.ml.datasets.formats import loss_bearing_turns, trainable_prefix
from hypotez.storage.models import BotReply
from tests.e2e.test_datasets import dataset_rows, jsonl, parse_jsonl, sent_files, upload
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, USER_ID, said, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot

#: A two-turn conversation whose first answer is context only (OpenAI's ``weight: 0``).
WEIGHTED = {
    "messages": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hello there, friend!", "weight": 0},
        {"role": "user", "content": "Shorter."},
        {"role": "assistant", "content": "Hi.", "weight": 1},
    ]
}


def _uploaded_training_file(hz: RunningBot) -> list[dict[str, Any]]:
    [(meta, content)] = [f for f in hz.openai.files.values() if f[0]["purpose"] == "fine-tune"]
    assert meta["filename"].endswith("-train.jsonl")
    text = content.decode("utf-8")
    # Read as the stand-in reads it: Unicode line breaks split lines.
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.asyncio
async def test_weight_zero_survives_import_export_and_training(hz: RunningBot) -> None:
    plain = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(10)]
    result = await upload(hz, "weighted.jsonl", jsonl([WEIGHTED, *plain]), name="weighted")
    assert "11" in said(result)
    [stored] = [r for r in await dataset_rows(hz, "weighted") if len(r.messages) == 4]
    assert stored.messages[1]["weight"] == 0
    assert stored.messages[3]["weight"] == 1

    exported = await hz.send(
        slash("dataset", {"name": "weighted", "format": "openai-chat"}, subcommand="export", user=ADMIN_MEMBER)
    )
    [file] = [f for f in sent_files(exported) if f.filename.endswith(".jsonl")]
    [line] = [r for r in parse_jsonl(file.content) if len(r["messages"]) == 4]
    assert line == WEIGHTED
    assert loss_bearing_turns(line["messages"]) == [3]

    records = await load_examples(hz.services.db, "weighted", "supervised", guild_id=GUILD_ID)
    assert WEIGHTED in records

    await hz.send(slash("train", {"dataset": "weighted", "trainer": "openai"}, user=ADMIN_MEMBER))
    uploaded = _uploaded_training_file(hz)
    assert len(uploaded) == 11
    [sent] = [r for r in uploaded if len(r["messages"]) == 4]
    assert sent["messages"][1] == {"role": "assistant", "content": "Hello there, friend!", "weight": 0}


def test_loss_bearing_turns_follow_openais_rule() -> None:
    messages: list[dict[str, Any]] = WEIGHTED["messages"]
    assert loss_bearing_turns(messages) == [3]
    assert loss_bearing_turns([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == [1]
    # The last turn at weight 0: a trainer that learns from the last turn learns from the earlier one instead.
    first = {"role": "assistant", "content": "Hello there, friend!"}
    last_zero = [messages[0], first, messages[2], {"role": "assistant", "content": "Hi.", "weight": 0}]
    assert loss_bearing_turns(last_zero) == [1]
    assert trainable_prefix(last_zero) == [messages[0], first]
    assert trainable_prefix(messages) == messages
    assert trainable_prefix([messages[0], messages[1]]) is None


@pytest.mark.asyncio
async def test_weights_are_checked_on_upload(hz: RunningBot) -> None:
    bad = [
        {"messages": [{"role": "user", "content": "q", "weight": 0}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
    ]
    text = said(await upload(hz, "bad.jsonl", jsonl(bad), name="bad"))
    assert "line 1: messages: message 1 (user): `weight` applies to assistant messages only" in text
    assert "line 2: messages: message 2 (assistant): `weight` must be 0 (not learned) or 1" in text
    assert "line 3: every assistant message has `weight` 0" in text


@pytest.mark.asyncio
async def test_line_separators_in_a_correction_reach_openai_in_one_line(hz: RunningBot) -> None:
    await seed_corrections(hz.services, 9)
    separated = "first line\u2028second line\u2029third"
    reply = BotReply(
        guild_id=GUILD_ID,
        channel_id=CHANNEL_ID,
        author_id=USER_ID,
        backend="openai",
        model="gpt-4o-mini",
        prompt_messages=[{"role": "user", "content": "Three lines, please."}],
        user_text="Three lines, please.",
        content="One line.",
    )
    await hz.services.replies.add(reply, [])
    await hz.services.corrections.upsert(
        reply,
        author_id=USER_ID,
        corrected_text=separated,
        source="test",
        examples=examples_from_correction,
        trusted=True,
    )
    started = await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    assert "Training job #1 started" in said(started), said(started)
    uploaded = _uploaded_training_file(hz)
    assert len(uploaded) == 10
    assert [r["messages"][-1]["content"] for r in uploaded].count(separated) == 1
