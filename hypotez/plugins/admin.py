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
        if Capability(self.capability) is Capability.ADMIN and int(self.role.id) == _guild(caller):
            raise InvalidInputError(
                "Refused: that role is @everyone, so every member of this server would get `admin` (and with it "
                "every capability, including granting more). Grant `admin` to a role only trusted members hold."
            )
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
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        guild_settings: GuildSettingsRepository,
        audit: AuditLog,
    ) -> None:
        guild_id = _guild(caller)
        role_id = int(self.role.id)
        from_file = sorted(settings.guild_roles(guild_id).get(Capability(self.capability), []))
        stored = (await guild_settings.effective(guild_id, 0)).capability_roles.get(self.capability, [])
        if role_id not in stored and role_id in from_file:
            raise InvalidInputError(
                f"<@&{role_id}> holds `{self.capability}` through the settings file, not through `/admin grant`; "
                "nothing was changed and the role keeps it. Remove the grant from the settings file (this "
                "server's capability roles) and restart the bot to take it away."
            )
        roles = await _change(caller, guild_settings, audit, self.capability, self.role, grant=False)
        holders = sorted({*roles, *from_file})
        rest = ", ".join(f"<@&{r}>" for r in holders) + " (and administrators)" if holders else "its default holders"
        note = f" The settings file still grants it to {', '.join(f'<@&{r}>' for r in from_file)}." if from_file else ""
        await ctx.respond(f"`{self.capability}` now goes to {rest}.{note}", ephemeral=True, role_mentions=False)


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
