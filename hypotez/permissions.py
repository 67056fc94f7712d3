"""Capability checks, done on the server for every command, component and modal.

A guild grants a capability to role ids (settings file, or ``/admin grant`` stored in the database).  Without a
grant, ``chat``, ``correct`` and ``feedback`` are open to everyone and the rest need Administrator (or the
``admin`` capability).  In direct messages only the open capabilities exist.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hikari

from hypotez.config import OPEN_BY_DEFAULT, Capability, Settings
from hypotez.errors import PermissionDeniedError
from hypotez.storage.repositories import EffectiveSettings

if TYPE_CHECKING:
    from hypotez.storage.repositories import GuildSettingsRepository

__all__ = ["Caller", "caller_from_message", "has_capability", "resolve_caller"]

#: Where no server settings apply (direct messages).
NO_SETTINGS = EffectiveSettings(None, None, {})


def has_capability(
    capability: Capability,
    *,
    in_guild: bool,
    is_admin: bool,
    member_roles: Collection[int],
    grants: Mapping[str, Sequence[int]],
) -> bool:
    """Whether a member holds ``capability`` under ``grants`` (capability name -> role ids)."""
    if not in_guild:
        return capability in OPEN_BY_DEFAULT
    if is_admin or set(grants.get(Capability.ADMIN.value, ())) & set(member_roles):
        return True
    granted = grants.get(capability.value)
    if granted is None:
        return capability in OPEN_BY_DEFAULT
    return bool(set(granted) & set(member_roles))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is invoking, where, and what they may do."""

    user_id: int
    guild_id: int | None
    channel_id: int
    is_admin: bool = False
    role_ids: frozenset[int] = frozenset()
    grants: Mapping[str, Sequence[int]] = field(default_factory=dict[str, Sequence[int]])
    #: The settings in force in the caller's channel, read with the grants (one query serves both).
    here: EffectiveSettings = NO_SETTINGS

    def can(self, capability: Capability) -> bool:
        return has_capability(
            capability,
            in_guild=self.guild_id is not None,
            is_admin=self.is_admin,
            member_roles=self.role_ids,
            grants=self.grants,
        )

    def require(self, capability: Capability) -> None:
        """Raise :class:`PermissionDeniedError` unless the caller holds ``capability``."""
        if not self.can(capability):
            raise PermissionDeniedError(capability.value)


async def caller_from_message(
    message: hikari.Message, settings: Settings, guild_settings: GuildSettingsRepository
) -> Caller:
    """A :class:`Caller` for a gateway message (a member replying to the bot), with the same grants as for
    interactions; Administrator is read from the cached roles where the cache has them."""
    user_id = int(message.author.id)
    channel_id = int(message.channel_id)
    if message.guild_id is None:
        return Caller(user_id=user_id, guild_id=None, channel_id=channel_id)
    guild_id = int(message.guild_id)
    member = message.member
    roles: list[hikari.Role] = list(member.get_roles()) if member is not None else []
    return Caller(
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        is_admin=any(role.permissions & hikari.Permissions.ADMINISTRATOR for role in roles),
        role_ids=frozenset(int(r) for r in member.role_ids) if member is not None else frozenset(),
        **await _grants(settings, guild_settings, guild_id, channel_id),
    )


async def _grants(
    settings: Settings, guild_settings: GuildSettingsRepository, guild_id: int, channel_id: int
) -> dict[str, Any]:
    """``grants`` (the settings file's, merged with those stored in the database) and ``here`` for a Caller."""
    grants: dict[str, list[int]] = {cap.value: roles for cap, roles in settings.guild_roles(guild_id).items()}
    stored = await guild_settings.effective(guild_id, channel_id)
    for cap, roles in stored.capability_roles.items():
        grants[cap] = sorted({*grants.get(cap, []), *roles})
    return {"grants": grants, "here": stored}


async def resolve_caller(
    interaction: hikari.PartialInteraction,
    settings: Settings,
    guild_settings: GuildSettingsRepository,
) -> Caller:
    """Build a :class:`Caller` from an interaction: the member's roles and permissions as Discord sent them."""
    channel_id = int(interaction.channel_id)
    member = getattr(interaction, "member", None)
    user = getattr(interaction, "user", None)
    user_id = int(user.id) if user is not None else 0
    guild_id = int(interaction.guild_id) if interaction.guild_id is not None else None
    if guild_id is None or not isinstance(member, hikari.InteractionMember):
        return Caller(user_id=user_id, guild_id=None, channel_id=channel_id)

    is_admin = bool(member.permissions & hikari.Permissions.ADMINISTRATOR)
    return Caller(
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        is_admin=is_admin,
        role_ids=frozenset(int(r) for r in member.role_ids),
        **await _grants(settings, guild_settings, guild_id, channel_id),
    )
