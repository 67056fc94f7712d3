"""Ways to talk with the bot besides ``/chat`` (gateway mode): in a thread the bot opened every message continues the
conversation, a mention starts one, a direct message continues the last one; and every reply says, in a line under
it, which model answered.

The listener logic runs through ``message_to_bot`` on the HTTP harness (as the gateway listener calls it), and once
through a real GatewayBot connected to the gateway stand-in, so the wiring is proven too.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply
from tests.conftest import message_to_bot, running_hypotez
from tests.fakes.gateway_harness import running_gateway_bot
from tests.fakes.interactions import (
    BOT_USER,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    iso_timestamp,
    message_payload,
    next_snowflake,
    slash,
)

if TYPE_CHECKING:
    import hikari

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


def _count_user_turns(messages: list[dict[str, Any]], model: str) -> str:
    """A model that says how many user turns it was sent, and the last one."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return f"turn {len(users)}: {users[-1]}"


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _message(hz: RunningBot, content: str, **fields: Any) -> hikari.Message:
    payload = message_payload(content, author_bot=False, message_id=next_snowflake(), **fields)
    return hz.app.bot.entity_factory.deserialize_message(payload)


def _mention(hz: RunningBot, content: str, *, roles: list[int] | None = None, **fields: Any) -> hikari.Message:
    payload = message_payload(f"<@{BOT_USER_ID}> {content}", author_bot=False, message_id=next_snowflake(), **fields)
    payload["mentions"] = [BOT_USER]
    if roles is not None:
        payload["member"] = {
            "roles": [str(r) for r in roles],
            "joined_at": iso_timestamp(),
            "deaf": False,
            "mute": False,
        }
    return hz.app.bot.entity_factory.deserialize_message(payload)


def _in_channel(hz: RunningBot, channel_id: int) -> list[str]:
    """What the bot posted in a channel (message create calls), oldest first."""
    return [
        str(c.json.get("content"))
        for c in hz.rest.calls_to("POST", f"/channels/{channel_id}/messages")
        if isinstance(c.json, dict)
    ]


@pytest.mark.asyncio
async def test_in_a_thread_the_bot_opened_every_message_continues_the_conversation(hz: RunningBot) -> None:
    hz.openai.reply_with(_count_user_turns)
    started = await hz.send(slash("chat", {"message": "plan a trip", "thread": True}))
    assert started.original_message is not None
    thread_id = int(started.original_message["id"])  # a thread started on a message has the message's id
    assert thread_id in hz.rest.threads

    first = await message_to_bot(hz, _message(hz, "to Rome", channel_id=thread_id))
    assert first is not None
    assert first.content == "turn 2: to Rome"  # the opening turn came along
    second = await message_to_bot(hz, _message(hz, "in May", channel_id=thread_id))
    assert second is not None
    assert second.parent_id == first.id
    assert second.content == "turn 3: in May"
    assert _in_channel(hz, thread_id)[-1] == "turn 3: in May"


@pytest.mark.asyncio
async def test_a_thread_a_member_opened_is_theirs_until_they_mention_the_bot(hz: RunningBot) -> None:
    hz.openai.reply_with(_count_user_turns)
    thread_id = next_snowflake()
    hz.rest.add_thread(thread_id, parent_id=CHANNEL_ID, owner_id=USER_ID)
    assert await message_to_bot(hz, _message(hz, "just us humans here", channel_id=thread_id)) is None
    asked = await message_to_bot(hz, _mention(hz, "what do you think?", channel_id=thread_id))
    assert asked is not None
    assert asked.parent_id is None
    assert asked.content == "turn 1: what do you think?"  # the mention itself is not sent to the model


@pytest.mark.asyncio
async def test_a_mention_starts_a_conversation_and_plain_messages_are_left_alone(hz: RunningBot) -> None:
    hz.openai.reply_with(_count_user_turns)
    assert await message_to_bot(hz, _message(hz, "talking to a friend")) is None
    assert await message_to_bot(hz, _mention(hz, "")) is None  # a bare mention asks nothing
    asked = await message_to_bot(hz, _mention(hz, "what is a fjord?"))
    assert asked is not None
    assert asked.parent_id is None
    assert asked.user_text == "what is a fjord?"
    assert _in_channel(hz, CHANNEL_ID) == ["turn 1: what is a fjord?"]
    # A reply to that answer continues it, mention or not.
    [posted] = [m for m in hz.rest.messages.values() if m["content"] == "turn 1: what is a fjord?"]
    follow = await message_to_bot(hz, _message(hz, "and a skerry?", referenced_message=posted))
    assert follow is not None
    assert follow.parent_id == asked.id


@pytest.mark.asyncio
async def test_a_member_without_the_chat_capability_who_mentions_the_bot_is_told(hz: RunningBot) -> None:
    hz.openai.reply_with("an answer")
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"chat": [999]})
    assert await message_to_bot(hz, _mention(hz, "hello?", roles=[])) is None
    assert _in_channel(hz, CHANNEL_ID) == ["You may not chat with the model here."]
    assert await _replies(hz) == []
    answered = await message_to_bot(hz, _mention(hz, "hello?", roles=[999]))
    assert answered is not None
    assert answered.content == "an answer"


@pytest.mark.asyncio
async def test_direct_messages_are_one_conversation_until_it_goes_quiet(hz: RunningBot) -> None:
    hz.openai.reply_with(_count_user_turns)
    dm = next_snowflake()
    first = await message_to_bot(hz, _message(hz, "hi", channel_id=dm, guild=False))
    second = await message_to_bot(hz, _message(hz, "me again", channel_id=dm, guild=False))
    assert first is not None
    assert second is not None
    assert second.parent_id == first.id
    assert second.content == "turn 2: me again"
    # Long after the last reply, a DM starts anew.
    async with hz.services.db.session() as session, session.begin():
        stored = await session.get(BotReply, second.id)
        assert stored is not None
        stored.created_at = stored.created_at.replace(year=stored.created_at.year - 1)
    third = await message_to_bot(hz, _message(hz, "new topic", channel_id=dm, guild=False))
    assert third is not None
    assert third.parent_id is None
    assert third.content == "turn 1: new topic"


@pytest.mark.asyncio
async def test_messages_from_bots_and_webhooks_are_never_answered(hz: RunningBot) -> None:
    hz.openai.reply_with("an answer")
    dm = next_snowflake()
    from_bot = message_payload("hi", author_bot=True, channel_id=dm, guild=False, message_id=next_snowflake())
    assert await message_to_bot(hz, hz.app.bot.entity_factory.deserialize_message(from_bot)) is None
    hook = message_payload(f"<@{BOT_USER_ID}> hi", author_bot=False, message_id=next_snowflake())
    hook["mentions"] = [BOT_USER]
    hook["webhook_id"] = str(next_snowflake())
    assert await message_to_bot(hz, hz.app.bot.entity_factory.deserialize_message(hook)) is None
    assert await _replies(hz) == []


@pytest.mark.asyncio
async def test_every_reply_says_which_model_answered_under_it(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with("Paris.")
    async with running_hypotez(bot_settings.model_copy(update={"chat_footer": "usage"}), openai_fake) as hz:
        result = await hz.send(slash("chat", {"message": "capital of France?"}))
        assert result.original_message is not None
        text = result.original_message["content"]
        assert re.fullmatch(r"Paris\.\n-# gpt-4o-mini · [\d,]+ tokens · \d+\.\d s", text), text
        [stored] = await _replies(hz)
        assert stored.content == "Paris."  # the footer is not part of the answer
        tokens = (stored.prompt_tokens or 0) + (stored.completion_tokens or 0)
        assert tokens > 0
        assert f"· {tokens:,} tokens ·" in text

    # A long answer is split; the footer sits under the last part, and no part passes Discord's limit.
    openai_fake.reply_with("word " * 700)
    async with running_hypotez(bot_settings.model_copy(update={"chat_footer": "model"}), openai_fake) as hz:
        result = await hz.send(slash("chat", {"message": "talk a lot"}))
        assert result.original_message is not None
        # The messages as they stand at the end (Discord's copy, after the streamed edits).
        posted = sorted(
            (m for m in hz.rest.messages.values() if "word" in str(m["content"])), key=lambda m: int(m["id"])
        )
        texts = [str(m["content"]) for m in posted]
        assert len(texts) >= 2
        assert all(len(t) <= 2000 for t in texts)
        assert texts[-1].endswith("\n-# gpt-4o-mini")
        assert not any("-# " in t for t in texts[:-1])
        assert " ".join(t.removesuffix("\n-# gpt-4o-mini") for t in texts).split() == ["word"] * 700


@pytest.mark.asyncio
async def test_a_mention_through_the_gateway_is_answered_in_the_channel(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    openai_fake.reply_with(_count_user_turns)
    async with running_gateway_bot(bot_settings, openai=openai_fake) as gw:
        payload = message_payload(f"<@{BOT_USER_ID}> ping?", author_bot=False, message_id=next_snowflake())
        payload["mentions"] = [BOT_USER]
        await gw.gateway.dispatch("MESSAGE_CREATE", payload)
        async with asyncio.timeout(30):
            [posted] = await gw.discord.wait_for_calls("POST", f"/channels/{CHANNEL_ID}/messages", timeout=30)
        assert posted.json is not None
        assert posted.json["content"] == "turn 1: ping?"
        assert posted.json["message_reference"]["message_id"] == payload["id"]
