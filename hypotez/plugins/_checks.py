"""Who may use what: the capability hook every command carries, and the check that a command runs in a server
(and that server's area of the data directory)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.permissions import Caller

if TYPE_CHECKING:
    from hypotez.storage.files import DataDirectory

__all__ = [
    "EVERYWHERE",
    "IN_SERVERS",
    "OUTSIDE_SERVER",
    "STAFF_IN_SERVERS",
    "guild_area",
    "require",
    "require_in_server",
]

#: Discord-side metadata of commands anyone may use anywhere: servers, DMs with the bot, group DMs and servers
#: without the bot (a user-installed app).
EVERYWHERE: dict[str, Any] = {
    "contexts": [
        hikari.ApplicationContextType.GUILD,
        hikari.ApplicationContextType.BOT_DM,
        hikari.ApplicationContextType.PRIVATE_CHANNEL,
    ],
    "integration_types": [
        hikari.ApplicationIntegrationType.GUILD_INSTALL,
        hikari.ApplicationIntegrationType.USER_INSTALL,
    ],
}
#: Commands about a server's own settings or data: offered in servers only.
IN_SERVERS: dict[str, Any] = {
    "contexts": [hikari.ApplicationContextType.GUILD],
    "integration_types": [hikari.ApplicationIntegrationType.GUILD_INSTALL],
}
#: Server-only commands for staff: members see them only with Administrator until the server's administrators
#: change that (Server Settings → Integrations), e.g. after ``/admin grant``. The capability check on the server
#: stays the authority either way.
STAFF_IN_SERVERS: dict[str, Any] = {
    **IN_SERVERS,
    "default_member_permissions": hikari.Permissions.ADMINISTRATOR,
}

#: The reply to a command that works only in a server, used in a direct message.
OUTSIDE_SERVER = (
    "This command works only in a server: each server's files and datasets are its own and kept apart. "
    "Use it in the server whose files you want."
)


def require(capability: Capability) -> lightbulb.ExecutionHook:
    """A CHECKS hook failing with :class:`~hypotez.errors.PermissionDeniedError` without ``capability``."""

    @lightbulb.hook(lightbulb.ExecutionSteps.CHECKS, name=f"require_{capability.value}")
    def _check(_: lightbulb.ExecutionPipeline, __: lightbulb.Context, caller: Caller = lightbulb.di.INJECTED) -> None:
        caller.require(capability)

    return _check


def require_in_server(capability: Capability) -> lightbulb.ExecutionHook:
    """A CHECKS hook: the command is used in a server (:data:`OUTSIDE_SERVER` otherwise), by a member holding
    ``capability`` (:class:`~hypotez.errors.PermissionDeniedError` otherwise).  One hook, so a direct message gets
    the clearer of the two answers."""

    @lightbulb.hook(lightbulb.ExecutionSteps.CHECKS, name=f"require_{capability.value}_in_server")
    def _check(_: lightbulb.ExecutionPipeline, __: lightbulb.Context, caller: Caller = lightbulb.di.INJECTED) -> None:
        if caller.guild_id is None:
            raise InvalidInputError(OUTSIDE_SERVER)
        caller.require(capability)

    return _check


def guild_area(data_dir: DataDirectory, caller: Caller) -> DataDirectory:
    """The caller's server's area of the data directory; refused outside a server."""
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    return data_dir.for_guild(caller.guild_id)
