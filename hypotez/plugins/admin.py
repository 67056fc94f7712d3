"""``/admin``: grant capabilities to roles in this server, without editing the settings file."""

from __future__ import annotations

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.permissions import Caller
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.storage.repositories import AuditLog, GuildSettingsRepository

loader = lightbulb.Loader()

_CAPABILITIES = [lightbulb.Choice(c.value, c.value) for c in Capability]

admin = lightbulb.Group("admin", "Who may do what in this server", **STAFF_IN_SERVERS)


def _guild(caller: Caller) -> int:
    if caller.guild_id is None:
        raise InvalidInputError("Capabilities are granted per server; use this command in one.")
    return caller.guild_id


async def _change(
    caller: Caller,
    guild_settings: GuildSettingsRepository,
    audit: AuditLog,
    capability: str,
    role: hikari.Role,
    *,
    grant: bool,
) -> list[int]:
    guild_id = _guild(caller)
    stored = dict((await guild_settings.effective(guild_id, 0)).capability_roles)
    roles = set(stored.get(capability, []))
    if grant:
        roles.add(int(role.id))
    else:
        roles.discard(int(role.id))
    if roles:
        stored[capability] = sorted(roles)
    else:
        stored.pop(capability, None)
    await guild_settings.update(guild_id, 0, capability_roles=stored)
    await audit.record(
        "capability.grant" if grant else "capability.revoke",
        guild_id=guild_id,
        actor_id=caller.user_id,
        target=f"{capability}:{int(role.id)}",
    )
    return sorted(roles)


@admin.register
class AdminGrant(
    lightbulb.SlashCommand, name="grant", description="Give a role a capability", hooks=[require(Capability.ADMIN)]
):
    capability = lightbulb.string("capability", "What members with the role may do", choices=_CAPABILITIES)
    role = lightbulb.role("role", "The role")

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog
    ) -> None:
        roles = await _change(caller, guild_settings, audit, self.capability, self.role, grant=True)
        note = (
            " Listing an open capability restricts it to the listed roles."
            if Capability(self.capability) in {Capability.CHAT, Capability.CORRECT, Capability.FEEDBACK}
            else ""
        )
        await ctx.respond(
            f"`{self.capability}` now goes to {', '.join(f'<@&{r}>' for r in roles)} (and administrators).{note}",
            ephemeral=True,
            role_mentions=False,
        )


@admin.register
class AdminRevoke(
    lightbulb.SlashCommand,
    name="revoke",
    description="Take a capability from a role",
    hooks=[require(Capability.ADMIN)],
):
    capability = lightbulb.string("capability", "The capability", choices=_CAPABILITIES)
    role = lightbulb.role("role", "The role")

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog
    ) -> None:
        roles = await _change(caller, guild_settings, audit, self.capability, self.role, grant=False)
        rest = ", ".join(f"<@&{r}>" for r in roles) if roles else "its default holders"
        await ctx.respond(f"`{self.capability}` now goes to {rest}.", ephemeral=True, role_mentions=False)


@admin.register
class AdminShow(
    lightbulb.SlashCommand, name="show", description="Who holds each capability here", hooks=[require(Capability.ADMIN)]
):
    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, settings: Settings, guild_settings: GuildSettingsRepository
    ) -> None:
        guild_id = _guild(caller)
        from_file = {c.value: roles for c, roles in settings.guild_roles(guild_id).items()}
        stored = (await guild_settings.effective(guild_id, 0)).capability_roles
        lines: list[str] = []
        for capability in Capability:
            roles = sorted({*from_file.get(capability.value, []), *stored.get(capability.value, [])})
            if roles:
                holders = ", ".join(f"<@&{r}>" for r in roles) + " and administrators"
            elif capability.value in {"chat", "correct", "feedback"}:
                holders = "everyone"
            else:
                holders = "administrators"
            lines.append(f"`{capability.value}`: {holders}")
        await ctx.respond("\n".join(lines), ephemeral=True, role_mentions=False)


loader.command(admin)
