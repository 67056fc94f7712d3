"""Conversations continue from the database: in a thread the bot opened, and by replying to the bot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.ml.conversation import Turn, build_messages
from hypotez.ml.tokens import estimate_tokens
from hypotez.storage.models import BotReply
from tests.conftest import message_to_bot, running_hypotez
from tests.fakes.interactions import CHANNEL_ID, message_payload, next_snowflake, slash

if TYPE_CHECKING:
    import hikari

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _numbered(messages: list[dict[str, Any]], model: str) -> str:
    """A deterministic model: says how many user turns it was sent."""
    return f"turn {sum(1 for m in messages if m['role'] == 'user')}"


@pytest.mark.asyncio
async def test_chat_in_a_thread_the_bot_opened_continues_the_conversation(hz: RunningBot) -> None:
    hz.openai.reply_with(_numbered)
    await hz.send(slash("chat", {"message": "My name is Ада.", "thread": True}))
    [first] = await _replies(hz)
    threads = hz.rest.calls_to("POST", "/threads")
    assert len(threads) == 1
    assert threads[0].path == f"/channels/{CHANNEL_ID}/messages/{first.message_id}/threads"
    assert threads[0].json is not None
    assert threads[0].json["name"] == "My name is Ада."

    # Discord gives the thread the id of the message it was opened on.
    in_thread = slash("chat", {"message": "What is my name?"}, channel_id=int(first.message_id or 0))
    in_thread["channel"]["type"] = 11
    in_thread["channel"]["parent_id"] = str(CHANNEL_ID)
    await hz.send(in_thread)
    second = (await _replies(hz))[-1]
    assert second.parent_id == first.id
    assert second.prompt_messages == [
        {"role": "user", "content": "My name is Ада."},
        {"role": "assistant", "content": "turn 1"},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.content == "turn 2"

    # A third message in the thread continues from the second.
    third_payload = slash("chat", {"message": "And again?"}, channel_id=int(first.message_id or 0))
    third_payload["channel"]["type"] = 11
    await hz.send(third_payload)
    third = (await _replies(hz))[-1]
    assert third.parent_id == second.id
    assert third.content == "turn 3"


@pytest.mark.asyncio
async def test_chat_outside_threads_starts_fresh(hz: RunningBot) -> None:
    hz.openai.reply_with(_numbered)
    await hz.send(slash("chat", {"message": "one"}))
    await hz.send(slash("chat", {"message": "two"}))
    second = (await _replies(hz))[-1]
    assert second.parent_id is None
    assert second.content == "turn 1"


async def _continue(hz: RunningBot, message: hikari.Message) -> BotReply | None:
    """What the gateway listener does with ``message`` (HTTP mode receives no messages)."""
    return await message_to_bot(hz, message)


@pytest.mark.asyncio
async def test_replying_to_the_bot_continues_after_a_restart(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with(_numbered)
    async with running_hypotez(bot_settings, openai_fake) as first:
        result = await first.send(slash("chat", {"message": "Remember: the code is 4217."}))
        reply_message = result.original_message
        assert reply_message is not None

    # A new process: nothing in memory, the context comes from the database.
    async with running_hypotez(bot_settings, openai_fake) as second:
        payload = message_payload(
            "What was the code?", author_bot=False, message_id=next_snowflake(), referenced_message=reply_message
        )
        message = second.app.bot.entity_factory.deserialize_message(payload)
        reply = await _continue(second, message)
        assert reply is not None
        assert reply.prompt_messages == [
            {"role": "user", "content": "Remember: the code is 4217."},
            {"role": "assistant", "content": "turn 1"},
            {"role": "user", "content": "What was the code?"},
        ]
        posted = second.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")
        assert posted
        assert posted[-1].json is not None
        assert posted[-1].json["content"] == "turn 2"
        assert posted[-1].json["message_reference"]["message_id"] == payload["id"]
        assert [c["custom_id"] for row in posted[-1].json["components"] for c in row["components"]] == [
            "hz.up",
            "hz.down",
            "hz.correct",
            "hz.rg",
        ]
        assert reply.message_id is not None

        # Messages that are not replies to the bot are ignored.
        unrelated = second.app.bot.entity_factory.deserialize_message(
            message_payload("hello all", author_bot=False, message_id=next_snowflake())
        )
        assert await _continue(second, unrelated) is None
        from_a_bot = second.app.bot.entity_factory.deserialize_message(
            message_payload("beep", author_bot=True, message_id=next_snowflake(), referenced_message=reply_message)
        )
        assert await _continue(second, from_a_bot) is None


@pytest.mark.asyncio
async def test_reply_in_channel_reports_backend_errors_and_keeps_the_question(hz: RunningBot) -> None:
    hz.openai.reply_with("first")
    result = await hz.send(slash("chat", {"message": "hi"}))
    reply_message = result.original_message
    assert reply_message is not None
    hz.openai.fail_next(500, times=3, path_contains="/chat/completions")
    message = hz.app.bot.entity_factory.deserialize_message(
        message_payload("more", author_bot=False, message_id=next_snowflake(), referenced_message=reply_message)
    )
    assert await _continue(hz, message) is None
    posted = hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")
    assert posted[-1].json is not None
    assert "failed (HTTP 500)" in posted[-1].json["content"]
    # The question the model could not answer is kept, marked failed, to be corrected.
    first, failed = await _replies(hz)
    assert first.outcome == "ok"
    assert (failed.outcome, failed.content, failed.parent_id) == ("failed", "", first.id)


def test_context_budget_drops_oldest_turns_first() -> None:
    history = [Turn(user=f"question {i} " + "x" * 200, assistant=f"answer {i} " + "y" * 200) for i in range(10)]
    full = build_messages("now?", history=history, system_prompt="Be kind.", budget=100_000)
    assert len(full) == 1 + 20 + 1
    budget = 400
    bounded = build_messages("now?", history=history, system_prompt="Be kind.", budget=budget)
    assert bounded[0] == {"role": "system", "content": "Be kind."}
    assert bounded[-1] == {"role": "user", "content": "now?"}
    kept = bounded[1:-1]
    assert 0 < len(kept) < 20
    assert len(kept) % 2 == 0  # whole turns only
    assert kept[-1]["content"].startswith("answer 9")  # the newest survive
    assert kept[0]["content"].startswith(f"question {10 - len(kept) // 2}")
    assert sum(estimate_tokens(m["content"]) + 4 for m in bounded) <= budget
    # Even a tiny budget keeps the system prompt and the new message.
    assert build_messages("now?", history=history, system_prompt="Be kind.", budget=1) == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "now?"},
    ]


@pytest.mark.asyncio
async def test_token_budget_applies_end_to_end(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with("ok " * 50)
    small = bot_settings.model_copy(update={"chat_context_tokens": 150})
    async with running_hypotez(small, openai_fake) as hz:
        await hz.send(slash("chat", {"message": "start", "thread": True}))
        [first] = await _replies(hz)
        for i in range(4):
            payload = slash("chat", {"message": f"next {i}"}, channel_id=int(first.message_id or 0))
            payload["channel"]["type"] = 11
            await hz.send(payload)
        last = (await _replies(hz))[-1]
    users = [m["content"] for m in last.prompt_messages if m["role"] == "user"]
    assert users[-1] == "next 3"
    assert "start" not in users  # the oldest turns were dropped to fit
    assert sum(estimate_tokens(m["content"]) + 4 for m in last.prompt_messages) <= 150


@pytest.mark.asyncio
async def test_replies_to_the_bot_follow_the_servers_grants(hz: RunningBot) -> None:
    from tests.fakes.interactions import GUILD_ID, iso_timestamp

    hz.openai.reply_with("first")
    result = await hz.send(slash("chat", {"message": "hi"}))
    reply_message = result.original_message
    assert reply_message is not None
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"chat": [999]})  # stored in the database

    def reply_from(roles: list[int]) -> Any:
        payload = message_payload(
            "more", author_bot=False, message_id=next_snowflake(), referenced_message=reply_message
        )
        payload["member"] = {
            "roles": [str(r) for r in roles],
            "joined_at": iso_timestamp(),
            "deaf": False,
            "mute": False,
        }
        return hz.app.bot.entity_factory.deserialize_message(payload)

    assert await _continue(hz, reply_from([])) is None
    answered = await _continue(hz, reply_from([999]))
    assert answered is not None
    assert answered.parent_id is not None
