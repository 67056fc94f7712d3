"""Gateway mode (the default): the same component handlers answer interactions that arrive as gateway events, and
a reply to the bot continues the conversation through the message listener, with the per-message caller.

No gateway is connected: events are dispatched to the bot's event manager as the gateway would, and every REST
call goes to the Discord stand-in."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import hikari
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from hypotez.app import assemble, build_bot
from hypotez.storage import Database
from hypotez.storage.models import BotReply, Feedback
from hypotez.storage.repositories import MessagePart, ReplyRepository
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import CHANNEL_ID, USER_ID, button, message_payload, next_snowflake

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI

#: The shape of a bot token (hikari reads the application id out of it).
TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxAbCd.0123456789abcdefghijklmnopqrstuvwxyzAB"


async def _replies(db: Database) -> list[BotReply]:
    async with db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


@pytest.mark.asyncio
async def test_gateway_events_reach_the_component_router_and_the_message_listener(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(update={"discord_token": SecretStr(TOKEN)})
    async with FakeDiscordREST() as discord:
        bot = build_bot(settings, rest_url=discord.rest_url)
        assert isinstance(bot, hikari.GatewayBot)
        app = await assemble(bot, settings, sync_commands=False)
        shard = cast("hikari.api.GatewayShard", object())
        rest = cast("hikari.impl.RESTClientImpl", bot.rest)
        rest.start()  # what bot.start() does before connecting the gateway
        try:
            await app.get(Database).upgrade()
            await app.client.start()

            # A stored reply in the channel, as /chat leaves it.
            openai_fake.reply_with("turn 1")
            first = message_payload("turn 1", author_bot=True, message_id=next_snowflake())
            db = app.get(Database)
            stored = await app.get(ReplyRepository).add(
                BotReply(
                    guild_id=int(first["guild_id"]),
                    channel_id=CHANNEL_ID,
                    author_id=USER_ID,
                    backend="openai",
                    model="gpt-4o-mini",
                    prompt_messages=[{"role": "user", "content": "hello"}],
                    user_text="hello",
                    content="turn 1",
                ),
                [MessagePart(int(first["id"]), 0, 6)],
            )

            # 👍 arrives as an INTERACTION_CREATE event: answered over REST by the same handler as in HTTP mode.
            press: dict[str, Any] = button("hz.up", first)
            discord.register_interaction(press)
            interaction = bot.entity_factory.deserialize_component_interaction(press)
            bot.dispatch(hikari.InteractionCreateEvent(shard=shard, interaction=interaction))
            [callback] = await discord.wait_for_calls("POST", f"/interactions/{press['id']}/", timeout=10)
            assert callback.json is not None
            assert "👍" in callback.json["data"]["content"]
            async with db.session() as session:
                [thumb] = (await session.scalars(select(Feedback))).all()
            assert thumb.author_id == USER_ID

            # A member replies to the bot: the listener resolves the caller from the message and answers.
            openai_fake.reply_with("turn 2")
            reply = message_payload(
                "and then?", author_bot=False, message_id=next_snowflake(), referenced_message=first
            )
            message = bot.entity_factory.deserialize_message(reply)
            bot.dispatch(hikari.GuildMessageCreateEvent(message=message, shard=shard))
            async with asyncio.timeout(10):
                while len(await _replies(db)) < 2:  # noqa: ASYNC110 - the reply is stored once delivered
                    await asyncio.sleep(0.05)
            first_reply, second_reply = await _replies(db)
            assert second_reply.content == "turn 2"
            assert second_reply.parent_id == first_reply.id == stored.id
            assert second_reply.message_id is not None
            answer = discord.messages[second_reply.message_id]
            assert answer["content"] == "turn 2"
            placeholder = discord.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")[0].json
            assert placeholder is not None
            assert placeholder["message_reference"]["message_id"] == reply["id"]  # an answer to the member
        finally:
            await app.client.stop()
            await app.close()
            await rest.close()
        discord.assert_deadlines_met()
