"""VoiceSessions over an in-memory VoicePort: queue order and bound, idle leave, leaving an emptied channel."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from hypotez.voice.clip import AudioClip
from hypotez.voice.transport import NOT_CONNECTED_MESSAGE, VoiceCapabilities, VoiceError, VoicePort, VoiceSessions

if TYPE_CHECKING:
    from collections.abc import Callable

GUILD = 10
OTHER_GUILD = 11
CHANNEL = 20
OTHER_CHANNEL = 21


def clip(name: str) -> AudioClip:
    return AudioClip(b"", "wav", 1.0, name)


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


class MemoryVoice(VoicePort):
    """A voice port whose clips play until the test releases them (by name) or stops them."""

    def __init__(self) -> None:
        self.capabilities = VoiceCapabilities(
            can_connect=True, can_play=True, encryption_modes=("memory",), dave=False, name="memory"
        )
        self.channels: dict[int, int] = {}
        self.calls: list[tuple[object, ...]] = []
        self.played: list[str] = []
        self.playing: dict[int, str] = {}
        self._gates: dict[str, asyncio.Event] = {}
        #: Make the next play on a server fail with this error, as a dropped connection does.
        self.fail_next: VoiceError | None = None
        #: Whether that failure also ends the connection (4014) or is the clip's alone (undecodable audio).
        self.fail_drops = True

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    def release(self, name: str) -> None:
        self.gate(name).set()

    async def connect(self, guild_id: int, channel_id: int) -> None:
        self.calls.append(("connect", guild_id, channel_id))
        self.channels[guild_id] = channel_id

    async def play(self, guild_id: int, clip: AudioClip) -> None:
        assert guild_id in self.channels, "played while not connected"
        self.calls.append(("play", guild_id, clip.engine))
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            if self.fail_drops:
                self.channels.pop(guild_id, None)
            raise error
        self.playing[guild_id] = clip.engine
        try:
            await self.gate(clip.engine).wait()
            self.played.append(clip.engine)
        except asyncio.CancelledError:
            self.calls.append(("cancelled", guild_id, clip.engine))
            raise
        finally:
            self.playing.pop(guild_id, None)

    async def stop(self, guild_id: int) -> None:
        self.calls.append(("stop", guild_id))
        if guild_id in self.playing:
            self.release(self.playing[guild_id])

    async def disconnect(self, guild_id: int) -> None:
        self.calls.append(("disconnect", guild_id))
        self.channels.pop(guild_id, None)

    def channel_of(self, guild_id: int) -> int | None:
        return self.channels.get(guild_id)


@pytest.mark.asyncio
async def test_clips_play_in_order_and_positions_count_the_one_playing() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=5)
    await sessions.join(GUILD, CHANNEL)
    assert sessions.channel_of(GUILD) == CHANNEL
    assert await sessions.enqueue(GUILD, clip("a")) == 1
    await eventually(lambda: port.playing.get(GUILD) == "a")
    assert sessions.is_playing(GUILD)
    assert await sessions.enqueue(GUILD, clip("b")) == 2
    assert await sessions.enqueue(GUILD, clip("c")) == 3
    assert sessions.pending(GUILD) == 2
    for name in ("c", "b", "a"):  # released out of order: they still play in queue order
        port.release(name)
    await eventually(lambda: len(port.played) == 3)
    assert port.played == ["a", "b", "c"]
    await sessions.close()


@pytest.mark.asyncio
async def test_a_full_queue_is_refused_with_a_readable_error() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=2)
    await sessions.join(GUILD, CHANNEL)
    await sessions.enqueue(GUILD, clip("a"))
    await eventually(lambda: port.playing.get(GUILD) == "a")
    await sessions.enqueue(GUILD, clip("b"))
    await sessions.enqueue(GUILD, clip("c"))
    with pytest.raises(VoiceError, match="The playback queue is full"):
        await sessions.enqueue(GUILD, clip("d"))
    port.release("a")
    await eventually(lambda: port.playing.get(GUILD) == "b")
    assert await sessions.enqueue(GUILD, clip("d")) == 3  # room again
    await sessions.close()


@pytest.mark.asyncio
async def test_queues_are_per_server() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=1)
    await sessions.join(GUILD, CHANNEL)
    await sessions.join(OTHER_GUILD, OTHER_CHANNEL)
    await sessions.enqueue(GUILD, clip("a"))
    await sessions.enqueue(OTHER_GUILD, clip("x"))
    await eventually(lambda: port.playing == {GUILD: "a", OTHER_GUILD: "x"})
    await sessions.leave(GUILD)
    assert sessions.channel_of(GUILD) is None
    assert sessions.channel_of(OTHER_GUILD) == OTHER_CHANNEL
    assert port.playing == {OTHER_GUILD: "x"}
    await sessions.close()


@pytest.mark.asyncio
async def test_enqueue_without_joining_says_how_to_join() -> None:
    sessions = VoiceSessions(MemoryVoice(), idle_timeout=60, queue_size=2)
    with pytest.raises(VoiceError) as raised:
        await sessions.enqueue(GUILD, clip("a"))
    assert str(raised.value) == NOT_CONNECTED_MESSAGE
    assert "/voice join" in raised.value.user_message


@pytest.mark.asyncio
async def test_idle_sessions_leave_after_the_timeout_and_not_while_playing() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=0.2, queue_size=2)
    await sessions.join(GUILD, CHANNEL)
    await sessions.enqueue(GUILD, clip("long"))
    await eventually(lambda: port.playing.get(GUILD) == "long")
    await asyncio.sleep(0.5)  # longer than the idle timeout, but a clip is playing
    assert sessions.channel_of(GUILD) == CHANNEL
    assert ("disconnect", GUILD) not in port.calls
    port.release("long")
    await eventually(lambda: sessions.channel_of(GUILD) is None)
    assert port.calls[-1] == ("disconnect", GUILD)
    assert port.channel_of(GUILD) is None
    # A later join starts afresh.
    await sessions.join(GUILD, CHANNEL)
    assert sessions.channel_of(GUILD) == CHANNEL
    await sessions.close()


@pytest.mark.asyncio
async def test_an_emptied_channel_is_left_at_once_and_the_clip_stops() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=3)
    await sessions.join(GUILD, CHANNEL)
    await sessions.enqueue(GUILD, clip("a"))
    await sessions.enqueue(GUILD, clip("b"))
    await eventually(lambda: port.playing.get(GUILD) == "a")
    await sessions.channel_emptied(GUILD)
    assert sessions.channel_of(GUILD) is None
    assert port.channel_of(GUILD) is None
    assert ("cancelled", GUILD, "a") in port.calls
    assert ("play", GUILD, "b") not in port.calls
    assert port.calls[-2:] == [("stop", GUILD), ("disconnect", GUILD)]
    assert sessions.pending(GUILD) == 0


@pytest.mark.asyncio
async def test_joining_the_same_channel_is_a_no_op_and_another_moves() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=3)
    await sessions.join(GUILD, CHANNEL)
    await sessions.join(GUILD, CHANNEL)
    assert [c for c in port.calls if c[0] == "connect"] == [("connect", GUILD, CHANNEL)]
    await sessions.enqueue(GUILD, clip("a"))
    await eventually(lambda: port.playing.get(GUILD) == "a")
    await sessions.join(GUILD, OTHER_CHANNEL)
    assert sessions.channel_of(GUILD) == OTHER_CHANNEL
    assert ("cancelled", GUILD, "a") in port.calls
    assert await sessions.enqueue(GUILD, clip("b")) == 1
    await eventually(lambda: port.playing.get(GUILD) == "b")
    await sessions.close()


@pytest.mark.asyncio
async def test_a_dropped_connection_ends_the_session() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=3)
    await sessions.join(GUILD, CHANNEL)
    port.fail_next = VoiceError.from_close_code(4014)
    await sessions.enqueue(GUILD, clip("a"))
    await eventually(lambda: sessions.channel_of(GUILD) is None)
    with pytest.raises(VoiceError, match="not in a voice channel"):
        await sessions.enqueue(GUILD, clip("b"))
    assert port.calls[-1] == ("disconnect", GUILD)


@pytest.mark.asyncio
async def test_a_failing_clip_does_not_stop_the_queue() -> None:
    port = MemoryVoice()
    sessions = VoiceSessions(port, idle_timeout=60, queue_size=3)
    await sessions.join(GUILD, CHANNEL)
    port.fail_next = VoiceError("I could not read that audio, so I cannot play it.")
    port.fail_drops = False
    await sessions.enqueue(GUILD, clip("bad"))
    await sessions.enqueue(GUILD, clip("good"))
    port.release("good")
    await eventually(lambda: port.played == ["good"])
    assert sessions.channel_of(GUILD) == CHANNEL
    await sessions.close()
    assert sessions.channel_of(GUILD) is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        VoiceSessions(MemoryVoice(), idle_timeout=0, queue_size=1)
    with pytest.raises(ValueError, match="queue_size"):
        VoiceSessions(MemoryVoice(), idle_timeout=1, queue_size=0)
