"""Cooldowns on the costly commands: chat, transcription, speech and training.

``hooks=[require(...), cooldown(CooldownKind.CHAT)]`` on a command counts each use against its member (and its
server) in the database (:class:`~hypotez.storage.repositories.CooldownRepository`), so every replica sharing
the database enforces one limit together, and a restart does not reset it.  A refused use tells the member when
to try again.

Limits come from the settings: ``cooldown_chat_per_minute``, ``cooldown_transcribe_per_minute`` and
``cooldown_say_per_minute`` per member (each server gets ten times the member limit, across all its members),
``cooldown_train_per_hour`` per server.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Final

import lightbulb

from hypotez.config import Settings
from hypotez.errors import InvalidInputError
from hypotez.permissions import Caller
from hypotez.storage import Database
from hypotez.storage.models import utcnow
from hypotez.storage.repositories import CooldownRepository

__all__ = ["CooldownError", "CooldownKind", "Limit", "check_cooldown", "cooldown", "limits_for", "now"]

#: A server's limit on member-scoped kinds, as a multiple of one member's.
SERVER_FACTOR: Final = 10


class CooldownKind(enum.StrEnum):
    CHAT = "chat"
    TRANSCRIBE = "transcribe"
    SAY = "say"
    TRAIN = "train"


class CooldownError(InvalidInputError):
    """A use refused because its member or server used the command too often lately."""

    def __init__(self, kind: CooldownKind, retry_seconds: int, *, server: bool) -> None:
        who = "This server has" if server else "You have"
        super().__init__(
            f"{who} used {_WHAT[kind]} too often just now. Try again in {retry_seconds} s.",
        )
        self.kind = kind
        self.retry_seconds = retry_seconds
        self.server = server


_WHAT: Final = {
    CooldownKind.CHAT: "chat",
    CooldownKind.TRANSCRIBE: "transcription",
    CooldownKind.SAY: "speech",
    CooldownKind.TRAIN: "training",
}


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``uses`` per ``window`` for each member (``server=False``) or each server."""

    uses: int
    window: dt.timedelta
    server: bool


def limits_for(kind: CooldownKind, settings: Settings) -> list[Limit]:
    """The limits in force for ``kind``, member limits first."""
    minute = dt.timedelta(minutes=1)
    if kind is CooldownKind.TRAIN:
        return [Limit(settings.cooldown_train_per_hour, dt.timedelta(hours=1), server=True)]
    per_member = {
        CooldownKind.CHAT: settings.cooldown_chat_per_minute,
        CooldownKind.TRANSCRIBE: settings.cooldown_transcribe_per_minute,
        CooldownKind.SAY: settings.cooldown_say_per_minute,
    }[kind]
    return [Limit(per_member, minute, server=False), Limit(per_member * SERVER_FACTOR, minute, server=True)]


def now() -> dt.datetime:
    """The clock cooldowns read (tests replace it)."""
    return utcnow()


async def check_cooldown(
    kind: CooldownKind,
    caller: Caller,
    settings: Settings,
    cooldowns: CooldownRepository,
    *,
    at: dt.datetime | None = None,
) -> None:
    """Count one use of ``kind`` by ``caller``; :class:`CooldownError` when a limit is reached.  Server limits
    apply in servers only (in a direct message only the member's own limit counts)."""
    when = at or now()
    for limit in limits_for(kind, settings):
        if limit.server:
            if caller.guild_id is None:
                continue
            key = f"{kind.value}:guild:{caller.guild_id}"
        else:
            key = f"{kind.value}:user:{caller.user_id}"
        verdict = await cooldowns.hit(key, limit=limit.uses, window=limit.window, now=when)
        if not verdict.allowed:
            raise CooldownError(kind, verdict.retry_seconds, server=limit.server)


def cooldown(kind: CooldownKind | str) -> lightbulb.ExecutionHook:
    """A COOLDOWNS hook (after the permission checks) counting each use of the command against ``kind``'s
    limits, in the database; :class:`CooldownError` ("Try again in 12 s") once one is reached."""
    chosen = CooldownKind(kind)

    @lightbulb.hook(lightbulb.ExecutionSteps.COOLDOWNS, name=f"cooldown_{chosen.value}")
    async def _cooldown(
        _: lightbulb.ExecutionPipeline,
        __: lightbulb.Context,
        caller: Caller = lightbulb.di.INJECTED,
        settings: Settings = lightbulb.di.INJECTED,
        db: Database = lightbulb.di.INJECTED,
    ) -> None:
        await check_cooldown(chosen, caller, settings, CooldownRepository(db))

    return _cooldown
