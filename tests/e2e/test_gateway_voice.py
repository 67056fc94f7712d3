"""Voice in gateway mode, end to end: the assembled bot is a started `hikari.GatewayBot` connected to the gateway
stand-in; voice messages arrive as MESSAGE_CREATE, slash commands as INTERACTION_CREATE, and ``/voice join``
connects through the loopback voice gateway and UDP server, where the spoken clip arrives encrypted.

Real faster-whisper, espeak-ng, hikari-wave (with the adapter), PyAV and AEAD; only Discord is a stand-in (and
Microsoft's speech service is unreachable, so the local voice speaks)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage import Database
from hypotez.storage.models import BotReply, Transcript
from hypotez.storage.repositories import AuditFilter, AuditLog, GuildSettingsRepository
from hypotez.voice.transport.base import MISSING_PERMISSIONS_MESSAGE
from hypotez.voice.transport.sessions import VoiceSessions
from tests.fakes.discord_gateway import (
    VOICE_CHANNEL_ID,
    guild_payload,
    role_payload,
    voice_attachment,
    voice_message_create,
    voice_state_payload,
)
from tests.fakes.discord_voice import FakeDiscordVoice
from tests.fakes.gateway_harness import running_gateway_bot
from tests.fakes.interactions import (
    ADMIN_ROLE_ID,
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    CHANNEL_ID,
    DEFAULT_PERMISSIONS,
    GUILD_ID,
    USER_ID,
    slash,
)
from tests.fixtures.audio import SENTENCE_WORDS, VOICE_OGG

if TYPE_CHECKING:
    from pathlib import Path

    from hypotez.config import Settings
    from tests.fakes.gateway_harness import RunningGatewayBot
    from tests.fakes.openai_api import FakeOpenAI

pytestmark = pytest.mark.timeout(600)

CONNECT_AND_SPEAK = (1 << 20) | (1 << 21)
OTHER_CHANNEL_ID = CHANNEL_ID + 1


def _guild(*, everyone: int, in_voice: bool = True) -> dict[str, Any]:
    """The test server: the member sits in the voice channel; @everyone has ``everyone`` permissions."""
    return guild_payload(
        roles=[
            role_payload(GUILD_ID, "@everyone", permissions=everyone),
            role_payload(ADMIN_ROLE_ID, "admin", permissions=ALL_PERMISSIONS | ADMINISTRATOR, position=1),
        ],
        voice_states=[voice_state_payload(USER_ID, VOICE_CHANNEL_ID)] if in_voice else (),
    )


async def _command(hz: RunningGatewayBot, payload: dict[str, Any], *, expect: str) -> str:
    """Send a slash command as an INTERACTION_CREATE event; returns its final (edited) answer once it says
    ``expect``."""
    hz.discord.register_interaction(payload)
    await hz.gateway.dispatch("INTERACTION_CREATE", payload)

    def answer() -> str:
        message = hz.discord.original_message(payload["token"])
        return str((message or {}).get("content") or "")

    await hz.discord.wait_for(lambda: expect in answer(), timeout=120)
    return answer()


@pytest.mark.asyncio
async def test_a_voice_message_in_an_enabled_channel_is_transcribed_and_answered(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_gateway_bot(bot_settings, openai=openai_fake) as hz:
        db_settings = hz.app.get(GuildSettingsRepository)
        await db_settings.update(GUILD_ID, CHANNEL_ID, voice_transcribe=True, voice_answer=True)
        # Off by default: in another channel a voice message is left alone (its recording is never downloaded).
        ignored = voice_attachment(
            VOICE_OGG.read_bytes(), duration_secs=4.3, rest=hz.discord, channel_id=OTHER_CHANNEL_ID
        )
        await hz.gateway.dispatch("MESSAGE_CREATE", voice_message_create(ignored))
        openai_fake.reply_with("The meeting is at nine, as planned.")
        attachment = voice_attachment(VOICE_OGG.read_bytes(), duration_secs=4.3, rest=hz.discord)
        data = voice_message_create(attachment)
        await hz.gateway.dispatch("MESSAGE_CREATE", data)

        def posted(prefix: str) -> list[dict[str, Any]]:
            return [m for m in hz.discord.messages.values() if str(m.get("content", "")).startswith(prefix)]

        await hz.discord.wait_for(lambda: bool(posted("🗣️ **Transcript**")), timeout=180)
        [transcript_message] = posted("🗣️ **Transcript**")
        assert all(word in transcript_message["content"].lower() for word in SENTENCE_WORDS)
        [post] = [
            c
            for c in hz.discord.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")
            if "Transcript" in str((c.json or {}).get("content"))
        ]
        assert post.json is not None
        assert post.json["allowed_mentions"]["parse"] == []  # whatever was said, nobody is pinged
        assert post.json["message_reference"]["message_id"] == data["id"]
        await hz.discord.wait_for(lambda: bool(posted("The meeting is at nine")), timeout=60)

        db = hz.app.get(Database)

        async def stored_replies() -> list[BotReply]:
            async with db.session() as session:
                return list((await session.scalars(select(BotReply))).all())

        async with asyncio.timeout(60):
            while not await stored_replies():  # noqa: ASYNC110 - the reply is stored once delivered
                await asyncio.sleep(0.05)
        [reply] = await stored_replies()
        async with db.session() as session:
            [row] = (await session.scalars(select(Transcript))).all()
        assert row.source == "auto"
        assert row.message_id == int(data["id"])
        assert row.reply_message_id == int(transcript_message["id"])
        assert reply.user_text == row.text  # the model answered what was said
        assert reply.message_id is not None  # a stored reply: rated and corrected like any other
        assert not hz.discord.calls_to("GET", f"/attachments/{ignored.id}")
        # The model was asked with the transcript as the member's turn.
        [chat] = [r for r in openai_fake.requests if r.path.endswith("/chat/completions")]
        assert chat.json["messages"][-1]["content"] == row.text


@pytest.mark.asyncio
async def test_voice_join_say_and_leave_through_the_voice_gateway(
    bot_settings: Settings, openai_fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = bot_settings.model_copy(update={"voice_transport": "hikari-wave", "tts_retries": 0, "tts_timeout": 3.0})
    async with FakeDiscordVoice(tmp_path) as voice:
        monkeypatch.setenv("SSL_CERT_FILE", str(voice.ca_file))  # trust the stand-in as the bot trusts Discord
        guild = _guild(everyone=DEFAULT_PERMISSIONS | CONNECT_AND_SPEAK)
        async with running_gateway_bot(
            settings, openai=openai_fake, guilds=[guild], voice_endpoint=voice.endpoint
        ) as hz:

            def grant(g: Any) -> None:
                voice.expected_session_id = g.session_id
                voice.expected_token = g.token

            hz.gateway.on_voice_grant = grant
            joined = await _command(hz, slash("voice", subcommand="join"), expect="Joined")
            assert f"<#{VOICE_CHANNEL_ID}>" in joined
            request = hz.gateway.voice_state_requests[-1]
            assert int(request["channel_id"]) == VOICE_CHANNEL_ID

            said = await _command(hz, slash("say", {"text": "Hello from the bot."}), expect="Speaking in")
            assert "local voice" in said  # edge-tts is unreachable: espeak-ng spoke, and the member is told
            await voice.wait_for_packets(40)
            assert voice.repeated_nonces() == {}

            # /chat speak:true: the answer is posted and also spoken in the bot's channel.
            spoken_before = len(voice.packets)
            openai_fake.reply_with("Nine o'clock, in the big room.")
            chat = slash("chat", {"message": "When is the meeting?", "speak": True})
            answer = await _command(hz, chat, expect="Nine o'clock")
            assert "big room" in answer
            await voice.wait_for_packets(spoken_before + 40)

            left = await _command(hz, slash("voice", subcommand="leave"), expect="Left")
            assert f"<#{VOICE_CHANNEL_ID}>" in left
            await hz.gateway.wait_for(lambda: hz.gateway.voice_state_requests[-1]["channel_id"] is None)

            actions = [
                e.action for e in await hz.app.get(AuditLog).page(AuditFilter(guild_id=GUILD_ID), offset=0, limit=50)
            ]
            assert {"voice.join", "voice.leave"} <= set(actions)

            # Back in, then the last member leaves the channel: the bot leaves at once.
            await _command(hz, slash("voice", subcommand="join"), expect="Joined")
            requests = len(hz.gateway.voice_state_requests)
            await hz.gateway.dispatch("VOICE_STATE_UPDATE", voice_state_payload(USER_ID, None))
            await hz.gateway.wait_for(
                lambda: (
                    len(hz.gateway.voice_state_requests) > requests
                    and hz.gateway.voice_state_requests[-1]["channel_id"] is None
                )
            )
            assert hz.app.get(VoiceSessions).channel_of(GUILD_ID) is None


@pytest.mark.asyncio
async def test_voice_join_is_refused_clearly_without_connect_and_speak(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(update={"voice_transport": "hikari-wave"})
    async with running_gateway_bot(settings, openai=openai_fake, guilds=[_guild(everyone=DEFAULT_PERMISSIONS)]) as hz:
        payload = slash("voice", subcommand="join")
        hz.discord.register_interaction(payload)
        await hz.gateway.dispatch("INTERACTION_CREATE", payload)
        [callback] = await hz.discord.wait_for_calls("POST", f"/interactions/{payload['id']}/", timeout=30)
        assert callback.json is not None
        assert callback.json["data"]["content"] == MISSING_PERMISSIONS_MESSAGE
        assert hz.gateway.voice_state_requests == []
