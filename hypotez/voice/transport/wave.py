"""The hikari-wave voice adapter: Discord voice channels on ``hikari-wave`` 0.7.0a1, with its defects fixed here.

hikari-wave speaks voice gateway v8, the AEAD transport modes (``aead_aes256_gcm_rtpsize``,
``aead_xchacha20_poly1305_rtpsize``) and DAVE end-to-end encryption (through ``davey``).  This adapter is verified
against exactly one version, because it changes that version's internals:

* **Nonces.** Its player passes ``AudioPlayer._nonce`` to the cipher for every packet and never advances it (the
  cipher increments a local copy), so every RTP packet of a session is sealed with the same AES-GCM nonce, which
  gives away the keystream and the authentication key.  :class:`_SafePlayer` advances the counter once per RTP
  packet.
* **Playback.** Clips are encoded to 20 ms Opus frames with PyAV in a worker thread and handed to the player's
  frame store directly (no ffmpeg process); undecodable audio fails with a :class:`VoiceError` instead of stalling
  the player, which in memory-buffer mode never notices the end of a clip shorter than five frames.
* **A second clip.** The player never forgets its finished loop task, so nothing after the first clip would play,
  and a stop in mid-clip leaves it in a state it cannot leave; :class:`_SafePlayer` resets both.
* **Close codes.** A voice gateway closed by Discord during the handshake leaves ``VoiceClient.connect`` waiting
  forever, and its reconnect uses a malformed URL; here any close ends the connection with the close code, logged
  and turned into a :class:`VoiceError` (4017: DAVE required, 4016: encryption mode, 4014: disconnected).
* **Leaving.** It never tells the gateway that the bot left the channel (op 4 with no channel); this adapter does.

DAVE cannot be verified offline (it needs Discord's MLS external sender); the offline tests run the transport with
``dave_protocol_version`` 0, and the live smoke test covers DAVE against Discord itself.
"""
# The adapter reaches into the internals of one pinned hikari-wave version on purpose (see above).
# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import av
import hikari
import hikariwave
import hikariwave.client
import numpy as np
from av.error import FFmpegError
from hikariwave.audio.player import AudioPlaybackState, AudioPlayer
from hikariwave.audio.source.base import AudioSource
from hikariwave.connection import ConnectionState, VoiceConnection
from hikariwave.internal.encrypt import Encrypt
from hikariwave.internal.error import ClientError, GatewayError
from hikariwave.internal.signal import DisconnectSignal, ReconnectSignal, ResumeSignal
from hikariwave.internal.websocket import Websocket, WebsocketPacket, WebsocketState

from hypotez.errors import ConfigError
from hypotez.voice.transport.base import (
    NOT_CONNECTED_MESSAGE,
    TIMEOUT_MESSAGE,
    VoiceCapabilities,
    VoiceError,
    VoicePort,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from hypotez.voice.clip import AudioClip

__all__ = ["PINNED_VERSION", "WaveVoice", "encode_opus_frames"]

logger = logging.getLogger(__name__)

#: The one hikari-wave version this adapter has been checked against (pyproject pins it exactly).
PINNED_VERSION = "0.7.0a1"

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz: the Opus frame Discord expects, and the RTP timestamp step
#: An Opus frame of silence; Discord asks for five of them after the audio, so receivers do not interpolate.
OPUS_SILENCE = b"\xf8\xff\xfe"


def _library_problem() -> str | None:
    """Why this hikari-wave cannot be used with the fixes below, or ``None`` when it can."""
    if hikariwave.__version__ != PINNED_VERSION:
        return (
            f"hikari-wave {hikariwave.__version__} is installed, but the voice adapter is verified against "
            f"{PINNED_VERSION} only (it fixes that version's nonce reuse). Install hikari-wave=={PINNED_VERSION}."
        )
    names = set(AudioPlayer._play_internal.__code__.co_names)
    if not {"_generate_rtp", "_nonce", "_encryption_mode"} <= names:
        return "hikari-wave's player is not the one the voice adapter was written for."
    if vars(hikariwave.client).get("VoiceConnection") not in (VoiceConnection, _Connection):
        return "hikari-wave's voice client builds a connection type the voice adapter does not know."
    return None


def _field(obj: object, name: str) -> object:
    """An attribute the library annotates as never ``None`` but leaves ``None`` until it is set."""
    return getattr(obj, name, None)


# --- Audio ---------------------------------------------------------------------------------------------------


def encode_opus_frames(data: bytes, *, bitrate: int = 64_000) -> list[bytes]:
    """Decode any audio PyAV reads and encode it as 20 ms stereo 48 kHz Opus frames, one packet each.

    Blocking: run it in a worker thread.  Mono audio is copied to both channels at full level (a resampler's
    upmix would lower it by 3 dB); the last frame is padded with silence, and five silence frames follow.
    """
    frames: list[bytes] = []
    try:
        container: Any = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
        with container:
            if not container.streams.audio:
                msg = "That clip has no audio I can play."
                raise VoiceError(msg)
            stream: Any = container.streams.audio[0]
            mono = stream.codec_context.channels == 1
            resampler: Any = av.AudioResampler(format="s16", layout="mono" if mono else "stereo", rate=SAMPLE_RATE)
            encoder: Any = av.CodecContext.create("libopus", "w")
            encoder.sample_rate = SAMPLE_RATE
            encoder.layout = "stereo"
            encoder.format = "s16"
            encoder.bit_rate = bitrate
            encoder.time_base = Fraction(1, SAMPLE_RATE)
            encoder.options = {"application": "audio", "frame_duration": "20"}
            pending = np.zeros((0, 2), dtype=np.int16)  # interleaved stereo samples not yet encoded
            written = 0

            def encode(chunk: npt.NDArray[np.int16]) -> None:
                nonlocal written
                frame: Any = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = written
                frame.time_base = encoder.time_base
                written += FRAME_SAMPLES
                frames.extend(bytes(packet) for packet in encoder.encode(frame))

            def feed(decoded: Any) -> None:
                nonlocal pending
                for resampled in resampler.resample(decoded):
                    samples: npt.NDArray[np.int16] = resampled.to_ndarray().reshape(-1, 1 if mono else 2)
                    if mono:
                        samples = np.repeat(samples, 2, axis=1)
                    pending = np.concatenate([pending, samples])
                while len(pending) >= FRAME_SAMPLES:
                    encode(pending[:FRAME_SAMPLES])
                    pending = pending[FRAME_SAMPLES:]

            for decoded in container.decode(stream):
                feed(decoded)
            feed(None)
            if len(pending):
                encode(np.concatenate([pending, np.zeros((FRAME_SAMPLES - len(pending), 2), dtype=np.int16)]))
            frames.extend(bytes(packet) for packet in encoder.encode(None))
    except FFmpegError as error:
        msg = "I could not read that audio, so I cannot play it."
        raise VoiceError(msg) from error
    if not frames:
        msg = "That clip is silent: there is nothing to play."
        raise VoiceError(msg)
    frames.extend([OPUS_SILENCE] * 5)
    return frames


class _ClipSource(AudioSource):
    """A clip already encoded to Opus frames (hikari-wave's sources all go through ffmpeg)."""

    _content: object
    _duration: float | None
    _bitrate: str | None
    _channels: int | None
    _name: str | None
    _volume: float | str | None

    def __init__(self, frames: list[bytes], name: str) -> None:
        self.frames = frames
        self._content = object()  # identity: AudioSource compares and hashes sources by content
        self._duration = len(frames) * FRAME_SAMPLES / SAMPLE_RATE
        self._bitrate = None
        self._channels = 2
        self._name = name or "clip"
        self._volume = None


class _FrameFeeder:
    """Stands in for hikari-wave's ffmpeg pool: puts a clip's ready Opus frames into the connection's store."""

    async def submit(self, source: AudioSource, connection: VoiceConnection) -> None:
        if not isinstance(source, _ClipSource):
            msg = "the voice adapter plays only clips it encoded itself"
            raise TypeError(msg)
        store = connection._player._store
        generation = store._generation
        for frame in source.frames:
            await store.store_frame(frame, generation)
        await store.store_frame(None, generation)

    async def stop(self) -> None:
        return None


# --- The fixed player and connection -----------------------------------------------------------------------------


class _SafePlayer(AudioPlayer):
    """hikari-wave's player with a fresh AEAD nonce per packet, and able to play more than one clip."""

    def __init__(self, connection: VoiceConnection) -> None:
        super().__init__(connection)
        self._finished: dict[AudioSource, asyncio.Future[bool]] = {}

    def _generate_rtp(self) -> bytes:
        # Called exactly once per RTP packet, just before the packet is sealed with ``self._nonce``.
        header = super()._generate_rtp()
        self._nonce = (self._nonce + 1) & 0xFFFF_FFFF
        return header

    def expect(self, source: AudioSource) -> asyncio.Future[bool]:
        """A future set when ``source`` has finished (``True``) or was stopped or skipped (``False``)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._finished[source] = future
        return future

    def _settle(self, source: AudioSource, completed: bool) -> None:
        future = self._finished.pop(source, None)
        if future is not None and not future.done():
            future.set_result(completed)

    async def _play_internal(self, source: AudioSource, origin: Any) -> bool:
        completed = False
        try:
            completed = await super()._play_internal(source, origin)
        finally:
            self._settle(source, completed)
        return completed

    async def _player_loop(self) -> None:
        try:
            await super()._player_loop()
        finally:
            # The library keeps the finished task (so later clips never start) and, after a stop in mid-clip,
            # a PLAYING state no transition leaves.  Nothing plays once the loop is over.
            if _field(self, "_player_task") is asyncio.current_task():
                self._player_task = None  # pyright: ignore[reportAttributeAccessIssue]
            self._state = AudioPlaybackState.IDLE
            for source in list(self._finished):
                self._settle(source, False)


class _RecordingWebsocket(Websocket):
    """hikari-wave's websocket, reporting the close code when Discord closes the voice gateway."""

    def __init__(self, on_close: Callable[[int | None], None]) -> None:
        super().__init__()
        self._on_close = on_close

    async def receive(self) -> WebsocketPacket:
        remote = self._state is WebsocketState.CONNECTED
        connection: object = self._websocket
        try:
            return await super().receive()
        except (DisconnectSignal, ReconnectSignal, ResumeSignal):
            if remote:
                code: int | None = getattr(connection, "close_code", None)
                self._on_close(code)
            raise


class _Client(hikariwave.VoiceClient):
    """The voice client, knowing the adapter to tell when Discord drops a connection."""

    def __init__(self, bot: hikari.GatewayBot, adapter: WaveVoice) -> None:
        super().__init__(bot, config=hikariwave.Config())
        self.adapter = adapter


class _Connection(VoiceConnection):
    """A voice connection whose handshake ends with Discord's close code, and whose player is :class:`_SafePlayer`."""

    def __init__(self, client: hikariwave.VoiceClient, *args: Any) -> None:
        super().__init__(client, *args)
        self._player = _SafePlayer(self)
        self._gateway._websocket = _RecordingWebsocket(self._gateway_closed)
        #: Set (to the close code, if Discord sent one) when the voice gateway closed.
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._connected = False

    def _gateway_closed(self, code: int | None) -> None:
        if self.closed.done():
            return
        self.closed.set_result(code)
        logger.warning(
            "Voice gateway for guild %s closed by Discord with code %s: %s",
            self._guild_id,
            code,
            VoiceError.from_close_code(code),
        )
        adapter = getattr(self._client, "adapter", None)
        if self._connected and isinstance(adapter, WaveVoice):
            adapter._dropped(int(self._guild_id))

    # The library reconnects or resumes on some close codes and on a missed heartbeat, with a malformed URL and
    # holding the connection's lock for as long as that takes.  End the connection instead; the bot can rejoin.
    async def _VoiceConnection__gateway_reconnect(self) -> None:  # noqa: N802 - overrides a private method
        self._gateway_closed(None)
        await self._VoiceConnection__gateway_disconnect()  # type: ignore[attr-defined]

    async def _VoiceConnection__gateway_resume(self) -> None:  # noqa: N802 - overrides a private method
        self._gateway_closed(None)
        await self._VoiceConnection__gateway_disconnect()  # type: ignore[attr-defined]

    async def _connect(self) -> None:
        handshake = asyncio.ensure_future(super()._connect())
        try:
            await asyncio.wait([handshake, self.closed], return_when=asyncio.FIRST_COMPLETED)
            if not handshake.done():
                raise VoiceError.from_close_code(self.closed.result())
            handshake.result()
            if self.closed.done():
                raise VoiceError.from_close_code(self.closed.result())
            self._connected = True
        except BaseException:
            handshake.cancel()
            await asyncio.wait([handshake])
            await self._teardown()
            raise

    async def _teardown(self) -> None:
        await self._server.disconnect()
        await self._gateway.disconnect()
        reports = _field(self, "_report_task")
        if isinstance(reports, asyncio.Future) and not reports.done():
            reports.cancel()
            await asyncio.wait([cast("asyncio.Future[None]", reports)])
        self._state = ConnectionState.DISCONNECTED

    @property
    def safe_player(self) -> _SafePlayer:
        player = self._player
        assert isinstance(player, _SafePlayer)
        return player


def _install() -> None:
    problem = _library_problem()
    if problem is not None:
        raise ConfigError(problem, setting="voice_transport")
    setattr(hikariwave.client, "VoiceConnection", _Connection)  # noqa: B010 - the client builds connections by name


# --- The adapter ---------------------------------------------------------------------------------------------------


class WaveVoice(VoicePort):
    """Voice channels through hikari-wave, for a :class:`hikari.GatewayBot` (HTTP mode has no voice).

    Build it before the bot starts or after; it needs the ``GUILD_VOICE_STATES`` intent.  One per process (a
    hikari-wave rule); :meth:`close` frees the slot.
    """

    def __init__(self, bot: hikari.GatewayBot, *, connect_timeout: float = 15.0, bitrate: int = 64_000) -> None:
        if not bot.intents & hikari.Intents.GUILD_VOICE_STATES:
            msg = "Voice channels need the GUILD_VOICE_STATES gateway intent."
            raise ConfigError(msg, setting="voice_transport")
        _install()
        self._bot = bot
        self._connect_timeout = connect_timeout
        self._bitrate = bitrate
        self._client = _Client(bot, self)
        self._client._ffmpeg = _FrameFeeder()  # type: ignore[assignment]
        self._cleanups: set[asyncio.Task[None]] = set()
        self.capabilities = VoiceCapabilities(
            can_connect=True,
            can_play=True,
            encryption_modes=tuple(Encrypt.SUPPORTED),
            dave=True,
            name=f"hikari-wave {hikariwave.__version__}",
        )

    def _connection(self, guild_id: int) -> _Connection | None:
        connection = self._client.connections.get(hikari.Snowflake(guild_id))
        return connection if isinstance(connection, _Connection) else None

    def channel_of(self, guild_id: int) -> int | None:
        connection = self._connection(guild_id)
        if connection is None or connection.closed.done():
            return None
        return int(connection.channel_id)

    def end_to_end_encrypted(self, guild_id: int) -> bool:
        """Whether the connection on that server has a DAVE session ready: its audio is end-to-end encrypted."""
        connection = self._connection(guild_id)
        return connection is not None and bool(connection._gateway._dave.ready)

    def _ready_client(self) -> None:
        # hikari-wave learns the bot's id from StartedEvent; an adapter built after start-up never sees it.
        if _field(self._client, "_bot_id") is None:
            me = self._bot.get_me()
            if me is None:
                msg = "I'm not connected to Discord yet. Try again in a moment."
                raise VoiceError(msg)
            self._client._bot_id = me.id
            self._client._accepting = True

    async def connect(self, guild_id: int, channel_id: int) -> None:
        self._ready_client()
        existing = self._connection(guild_id)
        if existing is not None:
            if self.channel_of(guild_id) == channel_id:
                return
            await self._client.disconnect(guild_id=guild_id)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._client.connect(guild_id, channel_id, mute=False, deaf=True)
        except VoiceError:
            await self._leave_gateway(guild_id)
            raise
        except (TimeoutError, GatewayError) as error:
            logger.warning("Voice connection to channel %s in guild %s timed out: %s", channel_id, guild_id, error)
            await self._leave_gateway(guild_id)
            raise VoiceError(TIMEOUT_MESSAGE) from error
        except ClientError as error:
            msg = "I cannot join a voice channel right now. Try again in a moment."
            raise VoiceError(msg) from error
        logger.info("Voice connected to channel %s in guild %s", channel_id, guild_id)

    async def play(self, guild_id: int, clip: AudioClip) -> None:
        connection = self._connection(guild_id)
        if connection is None or connection.closed.done():
            raise VoiceError(NOT_CONNECTED_MESSAGE)
        frames = await asyncio.to_thread(encode_opus_frames, clip.data, bitrate=self._bitrate)
        source = _ClipSource(frames, clip.engine)
        player = connection.safe_player
        finished = player.expect(source)
        try:
            await player.play(source)
            # Generous: a stalled player must not hold the queue for ever.
            limit = len(frames) * FRAME_SAMPLES / SAMPLE_RATE + 10.0
            done, _ = await asyncio.wait([finished, connection.closed], timeout=limit, return_when="FIRST_COMPLETED")
            if finished in done:
                return
            if connection.closed.done():
                raise VoiceError.from_close_code(connection.closed.result())
            msg = "Playback stalled, so I stopped it."
            raise VoiceError(msg)
        finally:
            if not finished.done():
                finished.cancel()
                with contextlib.suppress(Exception):
                    await player.stop()

    async def stop(self, guild_id: int) -> None:
        connection = self._connection(guild_id)
        if connection is not None:
            await connection.safe_player.stop()

    async def disconnect(self, guild_id: int) -> None:
        connection = self._connection(guild_id)
        if connection is None:
            return
        with contextlib.suppress(ClientError):
            await self._client.disconnect(guild_id=guild_id)
        await self._leave_gateway(guild_id)
        logger.info("Voice disconnected in guild %s", guild_id)

    async def _leave_gateway(self, guild_id: int) -> None:
        """Tell Discord's gateway the bot left the channel (op 4 with no channel), which hikari-wave never does."""
        try:
            await self._bot.update_voice_state(guild_id, None)
        except (hikari.HikariError, RuntimeError) as error:
            logger.debug("Could not send the voice state update for guild %s: %s", guild_id, error)

    def _dropped(self, guild_id: int) -> None:
        """Discord ended a live connection (4014: kicked or channel deleted...): forget it."""

        async def forget() -> None:
            with contextlib.suppress(ClientError):
                await self._client.disconnect(guild_id=guild_id)

        task = asyncio.get_running_loop().create_task(forget(), name=f"voice-drop-{guild_id}")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def close(self) -> None:
        """Leave every voice channel and free hikari-wave's one-client-per-process slot."""
        guilds = [int(guild_id) for guild_id in self._client.connections]
        await self._client.close()
        for guild_id in guilds:
            await self._leave_gateway(guild_id)
        if self._cleanups:
            await asyncio.wait(self._cleanups)
        setattr(hikariwave.VoiceClient, "_VoiceClient__instance", None)  # noqa: B010 - a name-mangled class slot
