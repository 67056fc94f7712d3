"""Voice channels: the :class:`VoicePort` interface, per-server playback queues, and (in ``wave.py``, the one
module here that imports hikari) the hikari-wave adapter."""

from __future__ import annotations

from hypotez.voice.transport.base import (
    CLOSE_CODE_MESSAGES,
    MISSING_PERMISSIONS_MESSAGE,
    NOT_CONNECTED_MESSAGE,
    TIMEOUT_MESSAGE,
    NoVoice,
    VoiceCapabilities,
    VoiceError,
    VoicePort,
)
from hypotez.voice.transport.sessions import VoiceSessions

__all__ = [
    "CLOSE_CODE_MESSAGES",
    "MISSING_PERMISSIONS_MESSAGE",
    "NOT_CONNECTED_MESSAGE",
    "TIMEOUT_MESSAGE",
    "NoVoice",
    "VoiceCapabilities",
    "VoiceError",
    "VoicePort",
    "VoiceSessions",
]
