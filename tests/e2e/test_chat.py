"""``/chat`` end to end: the local OpenAI-compatible server answers through the real SDK."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from hypotez.plugins._delivery import FAILED_TEXT
from hypotez.storage.models import BotReply, ReplyMessage
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, USER_ID, autocomplete, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _texts_of_token(hz: RunningBot, token: str) -> list[str]:
    texts: list[str] = []
    for call in hz.rest.calls:
        if token in call.path and call.method in {"PATCH", "POST"} and isinstance(call.json, dict):
            body: dict[str, Any] = call.json
            data = body.get("data", body)
            if isinstance(data, dict) and data.get("content"):
                texts.append(str(data["content"]))
    return texts


@pytest.mark.asyncio
async def test_chat_reply_is_delivered_and_stored(hz: RunningBot) -> None:
    hz.openai.reply_with("Paris is the capital of France.")
    result = await hz.send(slash("chat", {"message": "What is the capital of France?"}))
    assert result.response_type == 5  # deferred
    assert not result.ephemeral
    original = result.original_message
    assert original is not None
    assert original["content"] == "Paris is the capital of France."
    buttons = [c["custom_id"] for row in original["components"] for c in row["components"]]
    assert buttons == ["hz.up", "hz.down", "hz.correct", "hz.rg"]

    [reply] = await _replies(hz)
    assert reply.content == "Paris is the capital of France."
    assert reply.user_text == "What is the capital of France?"
    assert reply.guild_id == GUILD_ID
    assert reply.channel_id == CHANNEL_ID
    assert reply.author_id == USER_ID
    assert reply.model == "gpt-4o-mini"
    assert reply.message_id == int(original["id"])
    assert reply.prompt_messages == [{"role": "user", "content": "What is the capital of France?"}]
    assert reply.completion_tokens == 6  # the stand-in counts words
    assert reply.prompt_tokens is not None
    assert reply.latency_ms >= 0
    # The model saw exactly what was stored.
    sent = [r for r in hz.openai.requests if r.path.endswith("/chat/completions")][-1]
    assert sent.json is not None
    assert sent.json["messages"] == reply.prompt_messages
    assert sent.json["stream"] is True


@pytest.mark.asyncio
async def test_private_chat_is_ephemeral_and_model_option_is_used(hz: RunningBot) -> None:
    hz.openai.reply_with(lambda messages, model: f"{model} says hi")
    result = await hz.send(slash("chat", {"message": "hi", "private": True, "model": "gpt-4.1-mini"}))
    assert result.ephemeral
    original = result.original_message
    assert original is not None
    assert original["content"] == "gpt-4.1-mini says hi"
    [reply] = await _replies(hz)
    assert reply.model == "gpt-4.1-mini"


@pytest.mark.asyncio
async def test_system_prompt_channel_overrides_guild(hz: RunningBot) -> None:
    await hz.send(slash("prompt", {"text": "Be brief."}, subcommand="set", user=ADMIN_MEMBER))
    await hz.send(
        slash("prompt", {"text": "Answer like a pirate.", "channel": True}, subcommand="set", user=ADMIN_MEMBER)
    )
    shown = await hz.send(slash("prompt", subcommand="show"))
    assert shown.content is not None
    assert "Answer like a pirate." in shown.content
    await hz.send(slash("chat", {"message": "hello"}))
    [reply] = await _replies(hz)
    assert reply.prompt_messages[0] == {"role": "system", "content": "Answer like a pirate."}
    await hz.send(slash("prompt", {"channel": True}, subcommand="clear", user=ADMIN_MEMBER))
    await hz.send(slash("chat", {"message": "hello again"}))
    latest = (await _replies(hz))[-1]
    assert latest.prompt_messages[0] == {"role": "system", "content": "Be brief."}


@pytest.mark.asyncio
async def test_setting_the_prompt_needs_the_train_capability(hz: RunningBot) -> None:
    refused = await hz.send(slash("prompt", {"text": "Be evil."}, subcommand="set"))
    assert refused.ephemeral
    assert refused.content is not None
    assert "`train` capability" in refused.content
    effective = await hz.services.guild_settings.effective(GUILD_ID, CHANNEL_ID)
    assert effective.system_prompt is None


@pytest.mark.asyncio
async def test_streaming_edits_are_observed_and_throttled(hz: RunningBot) -> None:
    words = " ".join(f"word{i}" for i in range(60))
    hz.openai.reply_with(words)
    hz.openai.stream_chunk_delay = 0.01  # 60+ chunks over ~0.7 s, edits at most every 0.05 s
    result = await hz.send(slash("chat", {"message": "count"}))
    edits = [c for c in hz.rest.calls_to("PATCH", "/messages/@original") if result.token and result.token in c.path]
    streamed = [c.json["content"] for c in edits if isinstance(c.json, dict) and c.json.get("content")]
    assert len(streamed) >= 3, streamed
    assert len(streamed) < 40  # throttled: far fewer edits than chunks
    assert all(t.endswith(" ▌") for t in streamed[:-1])
    assert all(words.startswith(t.removesuffix(" ▌")) for t in streamed[:-1])
    assert streamed[-1] == words


@pytest.mark.asyncio
async def test_long_reply_is_split_without_losing_a_character(hz: RunningBot) -> None:
    paragraph = "Это предложение на русском языке, с эмодзи 🙂 и עברית. " * 10
    text = "\n\n".join([paragraph] * 8)[:3500]
    assert len(text) == 3500
    hz.openai.reply_with(text)
    result = await hz.send(slash("chat", {"message": "long please"}))
    original = result.original_message
    assert original is not None
    posted = [c.json for c in result.followups if c.method == "POST" and isinstance(c.json, dict)]
    parts = [original["content"], *(p["content"] for p in posted)]
    assert len(parts) == 2
    assert all(len(p) <= 2000 for p in parts)
    assert "".join(parts) == text
    assert parts[0].endswith((" ", "\n"))  # cut on a boundary, not mid-word
    # Buttons only under the last part.
    assert not original["components"]
    assert posted[-1]["components"]
    [reply] = await _replies(hz)
    assert reply.content == text
    async with hz.services.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(ReplyMessage).where(ReplyMessage.reply_id == reply.id)
        )
    assert count == 2


@pytest.mark.asyncio
async def test_very_long_reply_is_attached_as_a_file(hz: RunningBot) -> None:
    text = ("A long line of text that keeps going. " * 300).strip()
    assert len(text) > 8000
    hz.openai.reply_with(text)
    result = await hz.send(slash("chat", {"message": "essay"}))
    edits = [c for c in hz.rest.calls_to("PATCH", "/messages/@original") if c.files]
    assert edits, "the final edit carries the file"
    [file] = edits[-1].files
    assert file.filename == "reply.md"
    assert file.content.decode("utf-8") == text
    original = result.original_message
    assert original is not None
    assert "attached" in original["content"]
    assert len(original["content"]) <= 2000
    [reply] = await _replies(hz)
    assert reply.delivery == "file"
    assert reply.content == text


@pytest.mark.asyncio
async def test_unicode_round_trips_unchanged(hz: RunningBot) -> None:
    question = "Привет! 👋🏽 מה שלומך? كيف حالك؟ 👨‍👩‍👧‍👦"
    hz.openai.reply_with(lambda messages, model: "Ответ: " + messages[-1]["content"])
    result = await hz.send(slash("chat", {"message": question}))
    original = result.original_message
    assert original is not None
    assert original["content"] == "Ответ: " + question
    [reply] = await _replies(hz)
    assert reply.user_text == question
    assert reply.content == "Ответ: " + question
    assert reply.prompt_messages[-1]["content"] == question


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, "rate limiting"),
        (500, "failed (HTTP 500)"),
        (401, "rejected the API key"),
        (404, "is not available"),
    ],
)
@pytest.mark.asyncio
async def test_backend_errors_tell_the_member_why_and_keep_the_question_to_be_answered(
    hz: RunningBot, status: int, expected: str
) -> None:
    hz.openai.fail_next(
        status, times=5, path_contains="/chat/completions", headers={"retry-after": "0"} if status == 429 else None
    )
    result = await hz.send(slash("chat", {"message": "hello"}))
    # The channel sees a neutral note with the reply buttons (the answer can be taught); only the member sees why.
    original = result.original_message
    assert original is not None
    assert original["content"] == FAILED_TEXT
    custom_ids = [c["custom_id"] for row in original["components"] for c in row["components"]]
    assert custom_ids == ["hz.up", "hz.down", "hz.correct", "hz.rg"]
    posted = [c.json for c in result.followups if c.method == "POST" and isinstance(c.json, dict)]
    assert posted[-1]["flags"] & 64
    assert expected in posted[-1]["content"]
    assert "sk-test-key" not in posted[-1]["content"]
    [stored] = await _replies(hz)
    assert (stored.outcome, stored.content, stored.user_text) == ("failed", "", "hello")


@pytest.mark.asyncio
async def test_backend_timeout_ends_in_an_ephemeral_message(hz: RunningBot) -> None:
    hz.openai.delay_next(10, times=5)  # the bot gives up after 1 s
    result = await hz.send(slash("chat", {"message": "hello", "private": True}))
    assert any("did not answer in time" in t for t in _texts_of_token(hz, result.token or ""))
    assert result.original_message is not None
    assert "did not answer in time" in result.original_message["content"]
    assert [r.outcome for r in await _replies(hz)] == ["failed"]


@pytest.mark.asyncio
async def test_model_autocomplete_offers_trained_local_and_backend_models(hz: RunningBot) -> None:
    from hypotez.storage.models import RegisteredModel
    from tests.fakes.interactions import autocomplete

    async with hz.services.db.session() as session, session.begin():
        session.add(
            RegisteredModel(
                guild_id=GUILD_ID, name="ft:gpt-4o-mini:acme:support:x1", backend="openai", origin="fine-tune"
            )
        )
    (hz.settings.data_dir / "models" / "tiny-base").mkdir(parents=True)
    offered = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    values = [c["value"] for c in offered.choices]
    assert values == ["ft:gpt-4o-mini:acme:support:x1", "local:tiny-base", "gpt-4.1-mini", "gpt-4o-mini"]
    narrowed = await hz.send(autocomplete("chat", {"message": "hi", "model": "4.1"}, "model"))
    assert [c["value"] for c in narrowed.choices] == ["gpt-4.1-mini"]


@pytest.mark.asyncio
async def test_a_slow_model_list_does_not_break_autocomplete(hz: RunningBot) -> None:
    """The model server takes 4 s to list its models: autocomplete still answers within Discord's 3 s (the
    harness fails the test otherwise), and offers them once the background refresh has them."""
    hz.openai.delay_next(4.0, path_contains="/models")
    first = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    assert [c["value"] for c in first.choices] == []  # nothing cached yet, nothing invented
    values: list[str] = []
    async with asyncio.timeout(30):
        while "gpt-4o-mini" not in values:
            await asyncio.sleep(0.25)
            values = [
                c["value"]
                for c in (await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))).choices
            ]
    assert values == ["gpt-4.1-mini", "gpt-4o-mini"]


@pytest.mark.asyncio
async def test_a_failed_model_list_is_not_cached_as_no_models(hz: RunningBot) -> None:
    hz.openai.fail_next(500, path_contains="/models")
    failed = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    assert failed.choices == []
    later = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    assert [c["value"] for c in later.choices] == ["gpt-4.1-mini", "gpt-4o-mini"]


@pytest.mark.asyncio
async def test_a_reply_pings_nobody_whatever_the_model_says(hz: RunningBot) -> None:
    """A model (or a member steering it) writing ``@everyone`` or a mention pings no one: every message the reply
    is posted with allows no mentions."""
    hz.openai.reply_with("@everyone look, <@1100000000000000301> and <@&1100000000000000400> too")
    result = await hz.send(slash("chat", {"message": "Ping everyone"}))
    message = result.original_message
    assert message is not None
    assert "@everyone" in message["content"]
    edits = [c for c in result.followups if c.json is not None and "content" in c.json]
    assert edits
    for call in edits:
        assert call.json is not None
        assert call.json["allowed_mentions"]["parse"] == [], call.json
