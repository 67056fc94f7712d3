"""The voice transport interface: how the bot joins a voice channel and plays a clip there, whatever library does it.

Nothing here imports hikari: the adapters (``wave.py`` for hikari-wave) do, and :class:`NoVoice` stands in where
no voice connection is possible (``voice_transport = "none"``, or HTTP interactions mode, which has no gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hypotez.errors import InvalidInputError

if TYPE_CHECKING:
    from hypotez.voice.clip import AudioClip

__all__ = [
    "CLOSE_CODE_MESSAGES",
    "MISSING_PERMISSIONS_MESSAGE",
    "NOT_CONNECTED_MESSAGE",
    "TIMEOUT_MESSAGE",
    "NoVoice",
    "VoiceCapabilities",
    "VoiceError",
    "VoicePort",
]

#: What a member reads when the bot lacks Connect or Speak in the channel (the plugin checks before joining).
MISSING_PERMISSIONS_MESSAGE = (
    "I need the **Connect** and **Speak** permissions in that voice channel. Ask a server administrator to grant them."
)
#: What a member reads when the bot is asked to play on a server where it is in no voice channel.
NOT_CONNECTED_MESSAGE = "I'm not in a voice channel on this server. Use `/voice join` first."
#: What a member reads when Discord's voice servers did not finish the handshake in time.
TIMEOUT_MESSAGE = "Discord's voice server did not answer in time, so I could not join the voice channel. Try again."

#: Discord's voice gateway close codes, in the words a member reads.  The numbers are Discord's documented codes.
CLOSE_CODE_MESSAGES: dict[int, str] = {
    4004: "Discord rejected my voice connection (authentication failed). Try again in a moment.",
    4006: "My voice session expired before it started. Try again.",
    4009: "My voice session timed out. Try again.",
    4011: "Discord could not find the voice server for this channel. Try again.",
    4014: "I was disconnected from the voice channel (moved or kicked, or the channel was deleted).",
    4015: "Discord's voice server crashed. Try again.",
    4016: "Discord did not accept the voice encryption mode I offered, so I could not join the voice channel.",
    4017: ("Discord requires end-to-end encryption (DAVE) in this channel and the connection could not negotiate it."),
    4020: "Discord rejected a malformed voice request. This is a bug: please report it.",
    4021: "Discord is rate limiting my voice connections. Try again in a minute.",
    4022: "The call in this voice channel was ended.",
}


class VoiceError(InvalidInputError):
    """Joining or playing in a voice channel failed; the message says why in a member's words.

    ``close_code`` is the voice gateway's close code when Discord closed the connection, else ``None``.
    """

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code

    @classmethod
    def from_close_code(cls, code: int | None) -> VoiceError:
        """The error for a voice gateway close code (a generic message for codes without one)."""
        if code is not None and code in CLOSE_CODE_MESSAGES:
            return cls(CLOSE_CODE_MESSAGES[code], close_code=code)
        suffix = f" (close code {code})" if code is not None else ""
        return cls(f"Discord closed my voice connection{suffix}. Try again.", close_code=code)


@dataclass(frozen=True, slots=True)
class VoiceCapabilities:
    """What a transport can do: shown by ``/about`` and checked by the voice commands before they try."""

    can_connect: bool
    can_play: bool
    #: The voice encryption modes it offers to Discord, most preferred first.
    encryption_modes: tuple[str, ...]
    #: Whether it implements Discord's end-to-end encryption (DAVE), required in voice channels since 2026-03-01.
    dave: bool
    name: str


class VoicePort(Protocol):
    """One bot's voice connections, at most one per server."""

    capabilities: VoiceCapabilities

    async def connect(self, guild_id: int, channel_id: int) -> None:
        """Join a voice channel (moving there if already in another on that server); :class:`VoiceError` if not."""
        ...

    async def play(self, guild_id: int, clip: AudioClip) -> None:
        """Play a clip in the server's voice channel; returns when it has finished playing (or was stopped)."""
        ...

    async def stop(self, guild_id: int) -> None:
        """Stop what is playing now, if anything; a :meth:`play` waiting on it returns."""
        ...

    async def disconnect(self, guild_id: int) -> None:
        """Leave the server's voice channel; nothing happens if the bot is in none."""
        ...

    def channel_of(self, guild_id: int) -> int | None:
        """The voice channel the bot is connected to on that server, or ``None``."""
        ...


class NoVoice(VoicePort):
    """The transport when voice channels are off (``voice_transport = "none"``) or impossible (HTTP mode)."""

    def __init__(
        self,
        reason: str = 'Voice channels are turned off on this bot (voice_transport is "none").',
    ) -> None:
        self.reason = reason
        self.capabilities = VoiceCapabilities(
            can_connect=False, can_play=False, encryption_modes=(), dave=False, name="none"
        )

    async def connect(self, guild_id: int, channel_id: int) -> None:
        raise VoiceError(self.reason)

    async def play(self, guild_id: int, clip: AudioClip) -> None:
        raise VoiceError(self.reason)

    async def stop(self, guild_id: int) -> None:
        return None

    async def disconnect(self, guild_id: int) -> None:
        return None

    def channel_of(self, guild_id: int) -> int | None:
        return None
