"""Per-guild and per-channel settings, and the settings in force in one channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hypotez.storage.models import GuildSettings

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["EffectiveSettings", "GuildSettingsRepository"]


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Settings in force in one channel: the channel's override, else the guild's, else ``None``."""

    active_model: str | None
    system_prompt: str | None
    capability_roles: dict[str, list[int]]
    #: Voice messages are transcribed automatically / answered by the model / chat replies spoken.
    voice_transcribe: bool = False
    voice_answer: bool = False
    voice_speak: bool = False


class GuildSettingsRepository:
    """Per-guild and per-channel settings (``channel_id=0`` is the guild itself)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def effective(self, guild_id: int | None, channel_id: int) -> EffectiveSettings:
        if guild_id is None:
            return EffectiveSettings(None, None, {})
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(GuildSettings).where(
                        GuildSettings.guild_id == guild_id, GuildSettings.channel_id.in_((0, channel_id))
                    )
                )
            ).all()
        guild = next((r for r in rows if r.channel_id == 0), None)
        channel = next((r for r in rows if r.channel_id == channel_id and channel_id != 0), None)

        def pick(attr: str) -> Any:
            for row in (channel, guild):
                if row is not None and getattr(row, attr) is not None:
                    return getattr(row, attr)
            return None

        roles: dict[str, list[int]] = dict(guild.capability_roles) if guild else {}
        return EffectiveSettings(
            pick("active_model"),
            pick("system_prompt"),
            roles,
            voice_transcribe=bool(pick("voice_transcribe")),
            voice_answer=bool(pick("voice_answer")),
            voice_speak=bool(pick("voice_speak")),
        )

    async def update(self, guild_id: int, channel_id: int = 0, **values: Any) -> None:
        """Set fields (``active_model``, ``system_prompt``, ``capability_roles``, ``voice_transcribe``,
        ``voice_answer``, ``voice_speak``) on a scope; ``None`` clears (inherits)."""
        allowed = {
            "active_model",
            "system_prompt",
            "capability_roles",
            "voice_transcribe",
            "voice_answer",
            "voice_speak",
        }
        if unknown := set(values) - allowed:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        async with self._db.session() as session, session.begin():
            row = await session.get(GuildSettings, (guild_id, channel_id))
            if row is None:
                row = GuildSettings(guild_id=guild_id, channel_id=channel_id, capability_roles={})
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
