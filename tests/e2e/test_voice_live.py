"""Live smoke test of voice channels against Discord itself: the only test of DAVE end-to-end encryption.

DAVE cannot be verified offline (its MLS group needs Discord's external sender), so this joins a real voice
channel, waits for the DAVE session, plays a short tone and leaves.  It skips unless these are set:

- ``HYPOTEZ_LIVE_DISCORD_TOKEN``: a bot token (the bot must be in the server, with Connect and Speak there);
- ``HYPOTEZ_LIVE_VOICE_GUILD``: the server id;
- ``HYPOTEZ_LIVE_VOICE_CHANNEL``: the voice channel id.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import wave as wav

import hikari
import numpy as np
import pytest

from hypotez.voice.clip import AudioClip
from hypotez.voice.transport.wave import WaveVoice

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not all(
            os.environ.get(name)
            for name in ("HYPOTEZ_LIVE_DISCORD_TOKEN", "HYPOTEZ_LIVE_VOICE_GUILD", "HYPOTEZ_LIVE_VOICE_CHANNEL")
        ),
        reason="live voice test: set HYPOTEZ_LIVE_DISCORD_TOKEN, HYPOTEZ_LIVE_VOICE_GUILD, HYPOTEZ_LIVE_VOICE_CHANNEL",
    ),
]


def _tone(seconds: float = 1.5, rate: int = 48_000) -> AudioClip:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * math.pi * 440.0 * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wav.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return AudioClip(buffer.getvalue(), "wav", seconds, "live-test-tone")


@pytest.mark.asyncio
async def test_join_play_and_leave_a_real_voice_channel_with_dave() -> None:
    guild_id = int(os.environ["HYPOTEZ_LIVE_VOICE_GUILD"])
    channel_id = int(os.environ["HYPOTEZ_LIVE_VOICE_CHANNEL"])
    bot = hikari.GatewayBot(
        os.environ["HYPOTEZ_LIVE_DISCORD_TOKEN"],
        intents=hikari.Intents.GUILDS | hikari.Intents.GUILD_VOICE_STATES,
        banner=None,
        suppress_optimization_warning=True,
    )
    voice = WaveVoice(bot)
    await bot.start(check_for_updates=False)
    try:
        await voice.connect(guild_id, channel_id)
        assert voice.channel_of(guild_id) == channel_id
        # Discord requires DAVE in voice channels since 2026-03-01: the MLS handshake follows the session
        # description, so give it a moment.
        for _ in range(300):
            if voice.end_to_end_encrypted(guild_id):
                break
            await asyncio.sleep(0.05)
        assert voice.end_to_end_encrypted(guild_id), "the DAVE session never became ready"
        await voice.play(guild_id, _tone())
        assert voice.channel_of(guild_id) == channel_id, "Discord dropped the connection while playing"
        await voice.disconnect(guild_id)
        assert voice.channel_of(guild_id) is None
    finally:
        await voice.close()
        await bot.close()
