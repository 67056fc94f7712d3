"""The gateway stand-in against the real thing it stands in for: hypotez's assembled hikari.GatewayBot, started
and connected over a websocket (zlib-stream compressed, as hikari connects by default)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import aiohttp
import hikari
import pytest

from hypotez.app import INTENTS
from tests.fakes.discord_gateway import (
    IS_VOICE_MESSAGE,
    VOICE_CHANNEL_ID,
    FakeDiscordGateway,
    Op,
    VoiceGrant,
    guild_payload,
    message_create,
    voice_attachment,
    voice_message_create,
    voice_state_payload,
)
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.gateway_harness import BOT_TOKEN, running_gateway_bot, wait_for_event
from tests.fakes.interactions import (
    ADMIN_USER_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    DEFAULT_MEMBER,
    GUILD_ID,
    USER_ID,
)

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI


@pytest.mark.asyncio
async def test_the_bot_identifies_with_its_token_and_intents_and_its_heartbeats_are_acknowledged(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_gateway_bot(bot_settings, openai=openai_fake, heartbeat_interval=0.05) as hz:
        [identify] = hz.gateway.identifies
        assert identify["token"] == BOT_TOKEN
        intents = hikari.Intents(identify["intents"])
        assert intents == INTENTS
        assert hikari.Intents.MESSAGE_CONTENT in intents
        assert hikari.Intents.GUILD_VOICE_STATES in intents
        assert identify["shard"] == [0, 1]
        assert identify["properties"]["device"].startswith("hikari")
        # The bot found the gateway through GET /gateway/bot and connected with zlib-stream.
        assert hz.discord.calls_to("GET", "/gateway/bot")

        # Several heartbeats, each carrying the last sequence number seen, each acknowledged (a shard without
        # HEARTBEAT_ACK reconnects: still one connection and one IDENTIFY).
        heartbeats = await hz.gateway.wait_for_op(Op.HEARTBEAT, count=3)
        assert heartbeats[-1].d == hz.gateway.seq()
        assert {frame.connection for frame in hz.gateway.received} == {1}
        assert len(hz.gateway.identifies) == 1
        # hikari sends the next heartbeat only after the previous one was acknowledged: it has measured latency.
        assert not math.isnan(hz.bot.heartbeat_latency)
    assert hz.gateway.client_close_codes == [1001]  # closed for good: the session ends
    assert not hz.gateway.connected


@pytest.mark.asyncio
async def test_guild_create_fills_the_cache(bot_settings: Settings) -> None:
    voice = voice_state_payload(USER_ID, VOICE_CHANNEL_ID, member=DEFAULT_MEMBER)
    guild = guild_payload(name="Cached", voice_states=[voice])
    async with running_gateway_bot(bot_settings, guilds=[guild]) as hz:
        cache = hz.bot.cache
        cached = cache.get_guild(GUILD_ID)
        assert cached is not None
        assert cached.name == "Cached"
        me = cache.get_me()
        assert me is not None
        assert me.id == BOT_USER_ID
        channel = cache.get_guild_channel(CHANNEL_ID)
        assert isinstance(channel, hikari.GuildTextChannel)
        assert isinstance(cache.get_guild_channel(VOICE_CHANNEL_ID), hikari.GuildVoiceChannel)
        assert cache.get_member(GUILD_ID, ADMIN_USER_ID) is not None
        assert cache.get_member(GUILD_ID, BOT_USER_ID) is not None
        assert cache.get_role(GUILD_ID) is not None  # @everyone
        state = cache.get_voice_state(GUILD_ID, USER_ID)
        assert state is not None
        assert state.channel_id == VOICE_CHANNEL_ID


@pytest.mark.asyncio
async def test_a_dispatched_message_reaches_a_listener(bot_settings: Settings) -> None:
    async with running_gateway_bot(bot_settings) as hz:
        data = message_create("hello from the gateway")
        event = await hz.dispatch_and_wait("MESSAGE_CREATE", data, hikari.MessageCreateEvent)
        assert isinstance(event, hikari.GuildMessageCreateEvent)
        assert event.message.content == "hello from the gateway"
        assert event.message.author.id == USER_ID
        assert event.message.id == int(data["id"])
        assert event.member is not None
        assert event.member.id == USER_ID
        assert hz.gateway.sent()[-1]["s"] == hz.gateway.seq()


@pytest.mark.asyncio
async def test_a_voice_message_arrives_with_its_attachment_served_by_the_rest_fake(bot_settings: Settings) -> None:
    async with running_gateway_bot(bot_settings) as hz:
        attachment = voice_attachment(b"OggS-not-really", duration_secs=1.5, rest=hz.discord)
        data = voice_message_create(attachment)
        event = await hz.dispatch_and_wait("MESSAGE_CREATE", data, hikari.GuildMessageCreateEvent)
        message = event.message
        assert message.flags & IS_VOICE_MESSAGE
        [received] = message.attachments
        assert received.media_type == "audio/ogg"
        assert received.duration == 1.5
        assert received.waveform == attachment.waveform
        assert received.url.startswith(hz.discord.base_url)
        assert await received.read() == b"OggS-not-really"


@pytest.mark.asyncio
async def test_after_a_drop_the_bot_resumes_and_gets_what_it_missed(bot_settings: Settings) -> None:
    async with running_gateway_bot(bot_settings) as hz:
        [session_id] = hz.gateway.session_ids
        seen = hz.gateway.seq()
        ready_seqs = [p["s"] for p in hz.gateway.sent()]
        assert ready_seqs == list(range(1, seen + 1))

        await hz.gateway.drop(4000)
        missed = message_create("sent while you were away")
        async with wait_for_event(hz.bot, hikari.MessageCreateEvent) as arrived:
            await hz.gateway.dispatch("MESSAGE_CREATE", missed)  # kept for the session, replayed on RESUME
            resume = await hz.gateway.wait_for_resume()
            event = await arrived
        assert resume["session_id"] == session_id
        assert resume["seq"] == seen
        assert resume["token"] == BOT_TOKEN
        assert event.message.content == "sent while you were away"
        assert len(hz.gateway.identifies) == 1  # resumed, not identified anew
        assert hz.gateway.sent()[-1]["t"] == "RESUMED"

        # A plain disconnect (no close frame) resumes too, from the latest sequence number.
        seen = hz.gateway.seq()
        await hz.gateway.drop(None)
        second = await hz.gateway.wait_for_resume(count=2)
        assert second["session_id"] == session_id
        assert second["seq"] == seen
        after = await hz.dispatch_and_wait("MESSAGE_CREATE", message_create("still here"), hikari.MessageCreateEvent)
        assert after.message.content == "still here"


@pytest.mark.asyncio
async def test_reconnect_makes_the_bot_resume_and_an_invalid_session_identify_anew(bot_settings: Settings) -> None:
    async with running_gateway_bot(bot_settings) as hz:
        await hz.gateway.request_reconnect()  # op 7: the shard closes (3000, keeping its session) and resumes
        resume = await hz.gateway.wait_for_resume()
        assert resume["session_id"] == hz.gateway.session_ids[0]
        assert hz.gateway.client_close_codes == [3000]

        async with wait_for_event(hz.bot, hikari.ShardReadyEvent) as ready:
            await hz.gateway.invalidate_session(resumable=False)
            event = await ready
        assert len(hz.gateway.identifies) == 2
        assert event.session_id == hz.gateway.session_ids[-1] != hz.gateway.session_ids[0]


@pytest.mark.asyncio
async def test_joining_voice_is_answered_with_a_voice_state_and_a_voice_server(bot_settings: Settings) -> None:
    async with running_gateway_bot(bot_settings, voice_endpoint="127.0.0.1:50999") as hz:
        heard: list[VoiceGrant] = []
        hz.gateway.on_voice_grant = heard.append
        async with (
            wait_for_event(hz.bot, hikari.VoiceStateUpdateEvent) as state_update,
            wait_for_event(hz.bot, hikari.VoiceServerUpdateEvent) as server_update,
        ):
            await hz.bot.update_voice_state(GUILD_ID, VOICE_CHANNEL_ID, self_deaf=True)
            state = (await state_update).state
            server = await server_update
        request = await hz.gateway.wait_for_voice_state_request()
        assert request == {"guild_id": str(GUILD_ID), "channel_id": str(VOICE_CHANNEL_ID), "self_deaf": True}
        grant = hz.gateway.voice_grants[GUILD_ID]
        assert heard == [grant]
        assert (grant.channel_id, grant.user_id, grant.endpoint) == (VOICE_CHANNEL_ID, BOT_USER_ID, "127.0.0.1:50999")
        assert state.user_id == BOT_USER_ID
        assert state.channel_id == VOICE_CHANNEL_ID
        assert state.session_id == grant.session_id
        assert state.is_self_deafened
        assert server.guild_id == GUILD_ID
        assert server.token == grant.token
        assert server.raw_endpoint == "127.0.0.1:50999"
        cached = hz.bot.cache.get_voice_state(GUILD_ID, BOT_USER_ID)
        assert cached is not None
        assert cached.channel_id == VOICE_CHANNEL_ID

        async with wait_for_event(hz.bot, hikari.VoiceStateUpdateEvent) as left:
            await hz.bot.update_voice_state(GUILD_ID, None)
            gone = (await left).state
        assert gone.channel_id is None
        assert hz.gateway.voice_state_requests[-1]["channel_id"] is None
        assert GUILD_ID not in hz.gateway.voice_grants
        assert hz.bot.cache.get_voice_state(GUILD_ID, BOT_USER_ID) is None


@pytest.mark.asyncio
async def test_a_wrong_token_is_refused_with_4004() -> None:
    async with FakeDiscordGateway(token="not-the-bots-token") as gateway, FakeDiscordREST() as discord:
        discord.gateway_url = gateway.url
        bot = hikari.GatewayBot(BOT_TOKEN, intents=INTENTS, rest_url=discord.rest_url, banner=None, logs=None)
        with pytest.raises(hikari.GatewayServerClosedConnectionError) as refused:
            await bot.start(check_for_updates=False)
        try:
            assert refused.value.code == 4004
            assert not refused.value.can_reconnect
            assert gateway.identifies[0]["token"] == BOT_TOKEN
            assert not gateway.session_ids
        finally:
            if bot.is_alive:
                await bot.close()


@pytest.mark.asyncio
async def test_without_compression_the_protocol_is_plain_json_text_with_sequence_numbers() -> None:
    guild = guild_payload(name="Plain")
    async with (
        FakeDiscordGateway(token=BOT_TOKEN, guilds=[guild], heartbeat_interval=30) as gateway,
        aiohttp.ClientSession() as session,
        session.ws_connect(gateway.url + "/?v=10&encoding=json") as ws,
    ):
        hello = await ws.receive()
        assert hello.type == aiohttp.WSMsgType.TEXT
        assert json.loads(hello.data) == {"op": 10, "d": {"heartbeat_interval": 30000}, "s": None, "t": None}
        identify = {"token": BOT_TOKEN, "intents": int(INTENTS), "properties": {}, "shard": [0, 1]}
        await ws.send_json({"op": 2, "d": identify})
        ready = json.loads((await ws.receive()).data)
        created = json.loads((await ws.receive()).data)
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        assert ready["d"]["session_id"] == gateway.session_ids[0]
        assert ready["d"]["resume_gateway_url"] == gateway.url
        assert ready["d"]["guilds"] == [{"id": str(GUILD_ID), "unavailable": True}]
        assert (created["t"], created["s"], created["d"]["name"]) == ("GUILD_CREATE", 2, "Plain")

        await ws.send_json({"op": 1, "d": 2})
        assert json.loads((await ws.receive()).data)["op"] == 11
        assert await gateway.dispatch("TYPING_START", {"channel_id": str(CHANNEL_ID)}) == 3
        typing = json.loads((await ws.receive()).data)
        assert (typing["t"], typing["s"]) == ("TYPING_START", 3)
        assert [frame.op for frame in gateway.received] == [2, 1]
        assert gateway.identifies == [identify]


@pytest.mark.asyncio
async def test_a_resume_of_an_unknown_session_is_answered_with_invalid_session() -> None:
    async with (
        FakeDiscordGateway(token=BOT_TOKEN) as gateway,
        aiohttp.ClientSession() as session,
        session.ws_connect(gateway.url + "/?v=10&encoding=json") as ws,
    ):
        await ws.receive()  # HELLO
        await ws.send_json({"op": 6, "d": {"token": BOT_TOKEN, "session_id": "nope", "seq": 5}})
        assert json.loads((await ws.receive()).data) == {"op": 9, "d": False, "s": None, "t": None}
        assert gateway.resumes == [{"token": BOT_TOKEN, "session_id": "nope", "seq": 5}]
