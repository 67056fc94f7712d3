"""The hikari-wave adapter against a loopback stand-in of Discord's voice gateway (v8) and UDP voice server.

Real hikari GatewayBot, real hikari-wave, real TLS, real AEAD, real Opus (PyAV) on both ends.  No main gateway
is connected: the bot's op 4 (``update_voice_state``) is stubbed, and the VOICE_STATE_UPDATE and
VOICE_SERVER_UPDATE events Discord would answer with are dispatched to the bot's event manager, pointing at the
stand-in.  DAVE cannot be verified offline (the stand-in offers ``dave_protocol_version`` 0); see
tests/e2e/test_voice_live.py.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import math
import wave as wav
from typing import TYPE_CHECKING, Any, cast

import hikari
import hikariwave
import numpy as np
import pytest
import pytest_asyncio
from hikariwave.audio.player import AudioPlayer

from hypotez.errors import ConfigError, InvalidInputError
from hypotez.voice.clip import AudioClip
from hypotez.voice.transport import NOT_CONNECTED_MESSAGE, NoVoice, VoiceError, VoiceSessions
from hypotez.voice.transport import wave as wave_adapter
from hypotez.voice.transport.wave import WaveVoice
from tests.fakes.discord_voice import AEAD_MODES, OPUS_SILENCE, FakeDiscordVoice, Script, decode_opus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

pytestmark = pytest.mark.timeout(600)

TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxAbCd.0123456789abcdefghijklmnopqrstuvwxyzAB"
BOT_ID = 1100000000000000001  # the id a bot token starts with
GUILD_ID = 4100000000000000001
CHANNEL_ID = 4100000000000000002
OTHER_CHANNEL_ID = 4100000000000000003
SESSION_ID = "f0e1d2c3b4a59687"
VOICE_TOKEN = "voice-token-0123"
FRAME = 960
RATE = 48_000


def tone_clip(seconds: float, frequency: float = 440.0, amplitude: float = 0.5, rate: int = 24_000) -> AudioClip:
    """A mono 16-bit WAV sine, the kind of file espeak-ng writes."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * np.sin(2 * math.pi * frequency * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wav.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return AudioClip(buffer.getvalue(), "wav", seconds, "test-tone")


async def eventually(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until ``predicate()`` holds (the condition is the assertion; the limit only stops a hang)."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


class VoiceHarness:
    """A GatewayBot that is 'running' without a gateway: Discord's main-gateway answers are dispatched by hand."""

    def __init__(self, fake: FakeDiscordVoice, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = fake
        fake.expected_session_id = SESSION_ID
        fake.expected_token = VOICE_TOKEN
        self.bot = hikari.GatewayBot(
            TOKEN,
            intents=hikari.Intents.GUILDS | hikari.Intents.GUILD_VOICE_STATES,
            rest_url=fake.rest_url,
            banner=None,
            suppress_optimization_warning=True,
        )
        #: Every op 4 the bot sent: (guild, channel, self_mute, self_deaf).
        self.voice_state_updates: list[tuple[int, int | None, object, object]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        harness = self

        async def update_voice_state(
            bot: hikari.GatewayBot,
            guild: hikari.SnowflakeishOr[hikari.PartialGuild],
            channel: hikari.SnowflakeishOr[hikari.GuildVoiceChannel] | None,
            *,
            self_mute: object = hikari.UNDEFINED,
            self_deaf: object = hikari.UNDEFINED,
        ) -> None:
            assert bot is harness.bot
            channel_id = int(channel) if channel is not None else None
            harness.voice_state_updates.append((int(guild), channel_id, self_mute, self_deaf))
            task = asyncio.get_running_loop().create_task(harness._answer_op4(int(guild), channel_id))
            harness._tasks.add(task)
            task.add_done_callback(harness._tasks.discard)

        monkeypatch.setattr(hikari.GatewayBot, "update_voice_state", update_voice_state)

    async def start(self) -> None:
        # What bot.start() does before it opens the shards: the REST client runs, the bot counts as alive, and
        # READY has filled the cache with the bot's own user.
        cast("hikari.impl.RESTClientImpl", self.bot.rest).start()
        self.bot._closed_event = asyncio.Event()
        me = self.bot.entity_factory.deserialize_my_user(
            {
                "id": str(BOT_ID),
                "username": "hypotez",
                "discriminator": "0",
                "global_name": None,
                "avatar": None,
                "bot": True,
                "mfa_enabled": False,
                "locale": "en-US",
                "verified": True,
                "flags": 0,
                "premium_type": 0,
                "public_flags": 0,
            }
        )
        self.bot._cache.set_me(me)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await cast("hikari.impl.RESTClientImpl", self.bot.rest).close()

    async def _answer_op4(self, guild_id: int, channel_id: int | None) -> None:
        """Discord answers op 4 with VOICE_STATE_UPDATE and (when joining) VOICE_SERVER_UPDATE."""
        if channel_id is not None:
            # hikari-wave starts waiting for both events right after sending op 4.
            waiters = cast("hikari.impl.EventManagerImpl", self.bot.event_manager)._waiters
            await eventually(lambda: {hikari.VoiceServerUpdateEvent, hikari.VoiceStateUpdateEvent} <= waiters.keys())
        shard = cast("Any", object())
        state = self.bot.event_factory.deserialize_voice_state_update_event(
            shard,
            {
                "guild_id": str(guild_id),
                "channel_id": str(channel_id) if channel_id is not None else None,
                "user_id": str(BOT_ID),
                "member": {
                    "user": {"id": str(BOT_ID), "username": "hypotez", "discriminator": "0", "avatar": None},
                    "roles": [],
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                },
                "session_id": SESSION_ID,
                "deaf": False,
                "mute": False,
                "self_deaf": True,
                "self_mute": False,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            },
        )
        self.bot.dispatch(state)
        if channel_id is not None:
            server = self.bot.event_factory.deserialize_voice_server_update_event(
                shard, {"token": VOICE_TOKEN, "guild_id": str(guild_id), "endpoint": self.fake.endpoint}
            )
            self.bot.dispatch(server)


@pytest_asyncio.fixture
async def voice_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[FakeDiscordVoice, VoiceHarness, WaveVoice]]:
    script: Script = getattr(request, "param", None) or Script()
    async with FakeDiscordVoice(tmp_path, script=script) as fake:
        monkeypatch.setenv("SSL_CERT_FILE", str(fake.ca_file))  # trust the stand-in's certificate, as for Discord's
        harness = VoiceHarness(fake, monkeypatch)
        await harness.start()
        voice = WaveVoice(harness.bot, connect_timeout=20.0)
        try:
            yield fake, harness, voice
        finally:
            await voice.close()
            await harness.close()


def _speech_frames(frames: list[bytes]) -> list[bytes]:
    """The frames before the trailing silence Discord asks senders to end with."""
    end = len(frames)
    while end and frames[end - 1] == OPUS_SILENCE:
        end -= 1
    return frames[:end]


def _check_stream(fake: FakeDiscordVoice, *, first_sequence: int | None = None) -> None:
    packets = fake.packets
    assert packets, "no RTP packets arrived"
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) % 2**16
        assert after.timestamp == (before.timestamp + FRAME) % 2**32
    if first_sequence is not None:
        assert packets[0].sequence == first_sequence
    assert {p.ssrc for p in packets} == {fake.ssrc}
    assert {p.version for p in packets} == {2}
    assert {p.payload_type for p in packets} == {0x78}
    assert fake.repeated_nonces() == {}, "an AEAD nonce sealed more than one packet"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "voice_env",
    [Script(modes=AEAD_MODES), Script(modes=tuple(reversed(AEAD_MODES)))],
    ids=["aes256-gcm", "xchacha20"],
    indirect=True,
)
async def test_a_tone_reaches_the_voice_server_encrypted_with_fresh_nonces(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, harness, voice = voice_env
    assert voice.capabilities.can_play
    assert voice.capabilities.dave
    assert set(voice.capabilities.encryption_modes) == set(AEAD_MODES)

    await voice.connect(GUILD_ID, CHANNEL_ID)
    assert voice.channel_of(GUILD_ID) == CHANNEL_ID
    assert not voice.end_to_end_encrypted(GUILD_ID)  # the stand-in offers no DAVE (it cannot, offline)
    assert harness.voice_state_updates == [(GUILD_ID, CHANNEL_ID, False, True)]
    assert fake.guilds_fetched == [str(GUILD_ID)]

    [session] = fake.sessions
    assert session.query.get("v") == "8"
    assert session.identify is not None
    assert session.identify["server_id"] == str(GUILD_ID)
    assert session.identify["user_id"] == str(BOT_ID)
    assert session.identify["session_id"] == SESSION_ID
    assert session.identify["token"] == VOICE_TOKEN
    assert session.identify["max_dave_protocol_version"] >= 1  # offered; this stand-in declines (0)
    assert fake.discoveries == [(70, fake.ssrc)]
    assert session.select_protocol is not None
    assert session.select_protocol["protocol"] == "udp"
    data = session.select_protocol["data"]
    assert data["mode"] == fake.script.modes[0]
    assert data["address"] == "127.0.0.1"
    assert isinstance(data["port"], int)
    assert data["port"] > 0

    clip = tone_clip(1.0)
    await voice.play(GUILD_ID, clip)

    _check_stream(fake)
    frames = fake.opus_frames()  # every packet authenticates with the session key, or this raises
    speech = _speech_frames(frames)
    assert len(frames) - len(speech) >= 5  # Discord's five frames of silence after the audio
    # 50 frames of audio, plus the encoder's look-ahead: within two frames.
    assert abs(len(speech) - 50) <= 2
    heard = decode_opus(frames)
    assert abs(len(heard) / RATE - (len(frames) * FRAME) / RATE) < 0.001
    # The tone: its frequency, its energy and its shape.
    body = heard[int(0.1 * RATE) : int(0.9 * RATE)]
    spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
    peak = np.fft.rfftfreq(len(body), 1 / RATE)[int(np.argmax(spectrum))]
    assert abs(peak - 440.0) < 5.0
    rms = float(np.sqrt(np.mean(body**2)))
    assert 0.5 / math.sqrt(2) * 0.8 < rms < 0.5 / math.sqrt(2) * 1.2
    t = np.arange(len(body)) / RATE
    reference = np.exp(2j * math.pi * 440.0 * t)
    coherence = abs(np.dot(body, reference)) / (np.linalg.norm(body) * np.linalg.norm(reference))
    assert coherence > 0.65  # a pure sine projects ~1/sqrt(2) onto one complex exponential
    # Speaking was announced and withdrawn.
    await eventually(lambda: len(session.speaking) >= 2)
    flags = [s["speaking"] for s in session.speaking]
    assert flags[0] & 1
    assert flags[-1] == 0
    assert all(s["ssrc"] == fake.ssrc for s in session.speaking)
    # v8: heartbeats acknowledge the server's sequence numbers.
    await eventually(lambda: any(hb.get("seq_ack", -1) >= 2 for hb in session.heartbeats))
    assert all(hb["seq_ack"] <= session.sent_seq for hb in session.heartbeats)


@pytest.mark.asyncio
async def test_without_the_fix_the_library_seals_every_packet_with_one_nonce(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _, voice = voice_env
    monkeypatch.setattr(wave_adapter._SafePlayer, "_generate_rtp", AudioPlayer._generate_rtp)
    await voice.connect(GUILD_ID, CHANNEL_ID)
    await voice.play(GUILD_ID, tone_clip(0.3))
    assert len(fake.packets) >= 15
    assert fake.repeated_nonces() == {fake.packets[0].nonce: len(fake.packets)}
    fake.opus_frames()  # ...and each packet still authenticates: nothing but the nonce check notices


@pytest.mark.asyncio
async def test_a_second_clip_plays_and_continues_the_stream(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, harness, voice = voice_env
    await voice.connect(GUILD_ID, CHANNEL_ID)
    await voice.play(GUILD_ID, tone_clip(0.3, 330.0))
    first = len(fake.packets)
    await voice.play(GUILD_ID, tone_clip(0.3, 660.0))
    assert len(fake.packets) > first + 15
    _check_stream(fake)
    frames = fake.opus_frames()
    second = decode_opus(_speech_frames(frames[first:]))
    spectrum = np.abs(np.fft.rfft(second))
    assert abs(np.fft.rfftfreq(len(second), 1 / RATE)[int(np.argmax(spectrum))] - 660.0) < 10.0

    await voice.disconnect(GUILD_ID)
    assert voice.channel_of(GUILD_ID) is None
    assert harness.voice_state_updates[-1] == (GUILD_ID, None, hikari.UNDEFINED, hikari.UNDEFINED)
    # Joining again works after leaving.
    await voice.connect(GUILD_ID, OTHER_CHANNEL_ID)
    assert voice.channel_of(GUILD_ID) == OTHER_CHANNEL_ID
    assert len(fake.sessions) == 2


@pytest.mark.asyncio
async def test_stop_ends_a_clip_and_the_next_one_plays(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, _, voice = voice_env
    await voice.connect(GUILD_ID, CHANNEL_ID)
    playing = asyncio.create_task(voice.play(GUILD_ID, tone_clip(20.0)))
    await fake.wait_for_packets(10)
    await voice.stop(GUILD_ID)
    await playing  # returns once stopped
    stopped_at = len(fake.packets)
    assert stopped_at < 20 * 50
    await voice.play(GUILD_ID, tone_clip(0.3))
    assert len(fake.packets) > stopped_at + 15
    assert fake.repeated_nonces() == {}
    fake.opus_frames()


@pytest.mark.asyncio
@pytest.mark.parametrize("voice_env", [Script(close_after_identify=4017)], indirect=True)
async def test_close_4017_dave_required_is_reported(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice], caplog: pytest.LogCaptureFixture
) -> None:
    _, harness, voice = voice_env
    caplog.set_level(logging.WARNING, logger="hypotez.voice.transport.wave")
    with pytest.raises(VoiceError) as raised:
        await voice.connect(GUILD_ID, CHANNEL_ID)
    assert raised.value.close_code == 4017
    assert isinstance(raised.value, InvalidInputError)
    assert "end-to-end encryption (DAVE)" in raised.value.user_message
    assert any("4017" in r.getMessage() and "DAVE" in r.getMessage() for r in caplog.records)
    assert voice.channel_of(GUILD_ID) is None
    assert harness.voice_state_updates[-1][:2] == (GUILD_ID, None)  # told Discord it is not in the channel


@pytest.mark.asyncio
@pytest.mark.parametrize("voice_env", [Script(close_after_select=4016)], indirect=True)
async def test_close_4016_unknown_encryption_mode_is_reported(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _, voice = voice_env
    caplog.set_level(logging.WARNING, logger="hypotez.voice.transport.wave")
    with pytest.raises(VoiceError) as raised:
        await voice.connect(GUILD_ID, CHANNEL_ID)
    assert raised.value.close_code == 4016
    assert "encryption mode" in str(raised.value)
    assert any("4016" in r.getMessage() for r in caplog.records)
    assert fake.sessions[0].closed_with == 4016
    # The failed attempt left nothing behind: the next join works.
    fake.script.close_after_select = None
    await voice.connect(GUILD_ID, CHANNEL_ID)
    assert voice.channel_of(GUILD_ID) == CHANNEL_ID


@pytest.mark.asyncio
async def test_close_4014_while_playing_ends_the_clip_and_the_connection(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _, voice = voice_env
    caplog.set_level(logging.WARNING, logger="hypotez.voice.transport.wave")
    await voice.connect(GUILD_ID, CHANNEL_ID)
    playing = asyncio.create_task(voice.play(GUILD_ID, tone_clip(20.0)))
    await fake.wait_for_packets(5)
    await fake.disconnect_all(4014)
    with pytest.raises(VoiceError) as raised:
        await playing
    assert raised.value.close_code == 4014
    assert "disconnected" in str(raised.value)
    assert any("4014" in r.getMessage() for r in caplog.records)
    assert voice.channel_of(GUILD_ID) is None
    with pytest.raises(VoiceError, match="not in a voice channel"):
        await voice.play(GUILD_ID, tone_clip(0.2))


@pytest.mark.asyncio
async def test_sessions_queue_plays_in_order_over_the_real_transport(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, _, voice = voice_env
    sessions = VoiceSessions(voice, idle_timeout=30.0, queue_size=5)
    await sessions.join(GUILD_ID, CHANNEL_ID)
    assert await sessions.enqueue(GUILD_ID, tone_clip(0.3, 330.0)) == 1
    await sessions.enqueue(GUILD_ID, tone_clip(0.3, 880.0))
    await eventually(
        lambda: not sessions.is_playing(GUILD_ID) and not sessions.pending(GUILD_ID) and len(fake.packets) >= 30
    )
    _check_stream(fake)
    frames = fake.opus_frames()
    boundary = next(i for i in range(len(frames) - 1) if frames[i] == OPUS_SILENCE and frames[i + 1] != OPUS_SILENCE)
    tones: list[float] = []
    for part in (frames[: boundary + 1], frames[boundary + 1 :]):
        audio = decode_opus(_speech_frames(part))
        spectrum = np.abs(np.fft.rfft(audio))
        tones.append(float(np.fft.rfftfreq(len(audio), 1 / RATE)[int(np.argmax(spectrum))]))
    assert abs(tones[0] - 330.0) < 10.0
    assert abs(tones[1] - 880.0) < 10.0
    await sessions.close()
    assert voice.channel_of(GUILD_ID) is None


@pytest.mark.asyncio
async def test_undecodable_audio_is_a_member_readable_error(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, _, voice = voice_env
    await voice.connect(GUILD_ID, CHANNEL_ID)
    with pytest.raises(VoiceError, match="could not read that audio"):
        await voice.play(GUILD_ID, AudioClip(b"definitely not audio" * 50, "mp3", 1.0, "upload"))
    assert fake.packets == []
    await voice.play(GUILD_ID, tone_clip(0.2))  # the player is still usable
    assert fake.packets


@pytest.mark.asyncio
async def test_the_adapter_refuses_another_hikari_wave_version(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = hikari.GatewayBot(
        TOKEN, intents=hikari.Intents.GUILD_VOICE_STATES, banner=None, suppress_optimization_warning=True
    )
    monkeypatch.setattr(hikariwave, "__version__", "0.7.0")
    with pytest.raises(ConfigError, match=r"verified against 0\.7\.0a1"):
        WaveVoice(bot)


@pytest.mark.asyncio
async def test_the_adapter_needs_the_voice_states_intent() -> None:
    bot = hikari.GatewayBot(TOKEN, intents=hikari.Intents.GUILDS, banner=None, suppress_optimization_warning=True)
    with pytest.raises(ConfigError, match="GUILD_VOICE_STATES"):
        WaveVoice(bot)


@pytest.mark.asyncio
async def test_no_voice_says_why() -> None:
    port = NoVoice("Voice channels need gateway mode; this bot runs as an interactions endpoint.")
    assert not port.capabilities.can_connect
    assert not port.capabilities.can_play
    with pytest.raises(VoiceError, match="gateway mode"):
        await port.connect(GUILD_ID, CHANNEL_ID)
    with pytest.raises(VoiceError, match="gateway mode"):
        await port.play(GUILD_ID, tone_clip(0.1))
    assert port.channel_of(GUILD_ID) is None
    await port.stop(GUILD_ID)
    await port.disconnect(GUILD_ID)
    sessions = VoiceSessions(port, idle_timeout=1.0, queue_size=1)
    with pytest.raises(VoiceError, match=NOT_CONNECTED_MESSAGE[:20]):
        await sessions.enqueue(GUILD_ID, tone_clip(0.1))


@pytest.mark.asyncio
@pytest.mark.parametrize("voice_env", [Script(modes=("aead_unknown_rtpsize",))], indirect=True)
async def test_a_handshake_that_never_completes_times_out_readably(
    voice_env: tuple[FakeDiscordVoice, VoiceHarness, WaveVoice],
) -> None:
    fake, harness, voice = voice_env
    voice._connect_timeout = 2.0  # the library finds no mode it supports and waits for ever
    with pytest.raises(VoiceError) as raised:
        await voice.connect(GUILD_ID, CHANNEL_ID)
    assert raised.value.close_code is None
    assert "did not answer in time" in str(raised.value)
    assert fake.sessions[0].select_protocol is None
    assert voice.channel_of(GUILD_ID) is None
    assert harness.voice_state_updates[-1][:2] == (GUILD_ID, None)
