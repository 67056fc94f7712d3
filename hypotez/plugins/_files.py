"""Attachments in and out: streaming an upload to disk, the size Discord accepts, autocomplete guarded by a
capability; the check that a command runs in a server, and that server's area of the data directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hikari
import lightbulb

from hypotez.errors import InvalidInputError
from hypotez.permissions import Caller
from hypotez.storage.files import human_size

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from hypotez.app import Services
    from hypotez.config import Capability, Settings
    from hypotez.storage.files import DataDirectory

__all__ = [
    "OUTSIDE_SERVER",
    "allowed",
    "allowed_area",
    "attachment_chunks",
    "check_upload",
    "choices",
    "files_for",
    "guild_area",
    "require_in_server",
    "send_limit",
]

#: The reply to a command that works only in a server, used in a direct message.
OUTSIDE_SERVER = (
    "This command works only in a server: each server's files and datasets are its own and kept apart. "
    "Use it in the server whose files you want."
)


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


def send_limit(interaction: hikari.PartialInteraction, settings: Settings) -> int:
    """The largest attachment the bot sends: the configured limit, or Discord's for this interaction if lower."""
    return min(settings.max_upload_bytes, interaction.attachment_size_limit)


def check_upload(attachment: hikari.Attachment, settings: Settings, suffixes: Sequence[str]) -> None:
    """Refuse an attachment before downloading it: wrong kind of file, or over ``max_upload_bytes``."""
    name = attachment.filename
    if not name.lower().endswith(tuple(suffixes)):
        raise InvalidInputError(f"`{name[:100]}` is not a {', '.join(suffixes)} file.")
    if attachment.size > settings.max_upload_bytes:
        raise InvalidInputError(
            f"`{name[:100]}` is {human_size(attachment.size)}; the upload limit is "
            f"{human_size(settings.max_upload_bytes)} (HYPOTEZ_MAX_UPLOAD_BYTES). Split the file, or put it in "
            "this server's `datasets/` area of the data directory (`guilds/<server id>/datasets/`) and use "
            "`/dataset select`."
        )


async def attachment_chunks(attachment: hikari.Attachment) -> AsyncIterator[bytes]:
    """The attachment's bytes as they arrive, never all in memory at once."""
    async with attachment.stream() as reader:
        async for chunk in reader:
            yield bytes(chunk)


def files_for(paths: Sequence[Path]) -> list[hikari.File]:
    """Attachments read from disk by hikari as it uploads them."""
    return [hikari.File(path, path.name) for path in paths]


async def allowed(ctx: lightbulb.AutocompleteContext[str], services: Services, capability: Capability) -> bool:
    """Autocomplete shows names only to members who may use the command (it runs no command hooks)."""
    caller = await services.caller(ctx.interaction)
    return caller.guild_id is not None and caller.can(capability)


async def allowed_area(
    ctx: lightbulb.AutocompleteContext[str], services: Services, capability: Capability
) -> DataDirectory | None:
    """The area of the server an autocomplete comes from, when the member may use the command there."""
    caller = await services.caller(ctx.interaction)
    if caller.guild_id is None or not caller.can(capability):
        return None
    return services.data_dir.for_guild(caller.guild_id)


def choices(values: Sequence[str]) -> list[hikari.impl.AutocompleteChoiceBuilder]:
    """Up to 25 choices (values over Discord's 100 characters cannot be offered)."""
    return [hikari.impl.AutocompleteChoiceBuilder(name=v, value=v) for v in values if len(v) <= 100][:25]
