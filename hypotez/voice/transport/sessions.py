"""Per-server playback over any :class:`~hypotez.voice.transport.base.VoicePort`.

One queue and one player task per server: clips play in the order they were queued, one at a time.  The bot leaves
a voice channel after ``idle_timeout`` seconds with nothing played, at once when no member is left in it
(:meth:`VoiceSessions.channel_emptied`), and when Discord drops the connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypotez.voice.transport.base import NOT_CONNECTED_MESSAGE, VoiceError

if TYPE_CHECKING:
    from hypotez.voice.clip import AudioClip
    from hypotez.voice.transport.base import VoicePort

__all__ = ["VoiceSessions"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Session:
    channel_id: int
    queue: asyncio.Queue[AudioClip]
    playing: bool = False
    worker: asyncio.Task[None] | None = field(default=None, repr=False)


class VoiceSessions:
    """The bot's voice channels, one per server, each with a bounded playback queue."""

    def __init__(self, port: VoicePort, *, idle_timeout: float, queue_size: int) -> None:
        if idle_timeout <= 0:
            msg = "idle_timeout must be positive"
            raise ValueError(msg)
        if queue_size < 1:
            msg = "queue_size must be at least 1"
            raise ValueError(msg)
        self._port = port
        self._idle_timeout = idle_timeout
        self._queue_size = queue_size
        self._sessions: dict[int, _Session] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def port(self) -> VoicePort:
        """The transport the clips are played through."""
        return self._port

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    def channel_of(self, guild_id: int) -> int | None:
        """The voice channel the bot is in on that server, or ``None``."""
        if guild_id not in self._sessions:
            return None
        return self._port.channel_of(guild_id)

    def pending(self, guild_id: int) -> int:
        """How many clips wait on that server, not counting the one playing."""
        session = self._sessions.get(guild_id)
        return session.queue.qsize() if session else 0

    def is_playing(self, guild_id: int) -> bool:
        """Whether a clip is playing on that server now."""
        session = self._sessions.get(guild_id)
        return bool(session and session.playing)

    async def join(self, guild_id: int, channel_id: int) -> None:
        """Join a voice channel, or move there (dropping what was queued) from another on the same server."""
        async with self._lock(guild_id):
            session = self._sessions.get(guild_id)
            if session is not None:
                if self._port.channel_of(guild_id) == channel_id:
                    return
                del self._sessions[guild_id]
                await self._stop_worker(session)
            await self._port.connect(guild_id, channel_id)
            session = _Session(channel_id, asyncio.Queue(maxsize=self._queue_size))
            session.worker = asyncio.create_task(self._run(guild_id, session), name=f"voice-session-{guild_id}")
            self._sessions[guild_id] = session
            logger.info("voice: joined channel %s in guild %s", channel_id, guild_id)

    async def leave(self, guild_id: int) -> None:
        """Stop playing, drop the queue and leave the server's voice channel (nothing happens if in none)."""
        async with self._lock(guild_id):
            session = self._sessions.pop(guild_id, None)
            if session is not None:
                await self._stop_worker(session)
            await self._port.stop(guild_id)
            await self._port.disconnect(guild_id)
            if session is not None:
                logger.info("voice: left channel %s in guild %s", session.channel_id, guild_id)

    async def enqueue(self, guild_id: int, clip: AudioClip) -> int:
        """Queue a clip; returns its place in line, the clip playing now counted (1: it plays next or now).

        :class:`VoiceError` when the bot is in no voice channel on that server or the queue is full.
        """
        session = self._sessions.get(guild_id)
        if session is not None and self._port.channel_of(guild_id) is None:
            # Discord dropped the connection and the player has not noticed yet.
            await self._forget(guild_id, session)
            session = None
        if session is None:
            raise VoiceError(NOT_CONNECTED_MESSAGE)
        try:
            session.queue.put_nowait(clip)
        except asyncio.QueueFull:
            msg = (
                f"The playback queue is full ({self._queue_size} clips waiting). "
                "Try again when some of them have played."
            )
            raise VoiceError(msg) from None
        return session.queue.qsize() + (1 if session.playing else 0)

    async def channel_emptied(self, guild_id: int) -> None:
        """No member is left in the bot's voice channel: leave at once."""
        if guild_id in self._sessions:
            logger.info("voice: channel emptied in guild %s, leaving", guild_id)
        await self.leave(guild_id)

    async def close(self) -> None:
        """Stop everything and leave every voice channel."""
        for guild_id in list(self._sessions):
            await self.leave(guild_id)

    async def _stop_worker(self, session: _Session) -> None:
        worker = session.worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            # asyncio.wait, unlike awaiting the task, does not turn the worker's cancellation into ours.
            await asyncio.wait([worker])

    async def _forget(self, guild_id: int, session: _Session) -> None:
        async with self._lock(guild_id):
            if self._sessions.get(guild_id) is session:
                del self._sessions[guild_id]
                await self._stop_worker(session)

    async def _run(self, guild_id: int, session: _Session) -> None:
        while True:
            try:
                clip = await asyncio.wait_for(session.queue.get(), self._idle_timeout)
            except TimeoutError:
                logger.info("voice: nothing played for %.0f s in guild %s, leaving", self._idle_timeout, guild_id)
                break
            session.playing = True
            try:
                await self._port.play(guild_id, clip)
            except VoiceError as error:
                logger.warning("voice: playing in guild %s failed: %s", guild_id, error)
                if error.close_code is not None or self._port.channel_of(guild_id) is None:
                    break
            except Exception:
                logger.exception("voice: unexpected error while playing in guild %s", guild_id)
            finally:
                session.playing = False
        # Idle, or the connection is gone: leave, unless leave() or join() already took the session away.
        async with self._lock(guild_id):
            if self._sessions.get(guild_id) is not session:
                return
            del self._sessions[guild_id]
            try:
                await self._port.disconnect(guild_id)
            except Exception:
                logger.exception("voice: leaving guild %s failed", guild_id)
