"""Attachments in and out: streaming an upload to disk, the size Discord accepts, autocomplete guarded by a
capability."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hikari

from hypotez.errors import InvalidInputError
from hypotez.storage.files import human_size

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    import lightbulb

    from hypotez.app import Services
    from hypotez.config import Capability, Settings

__all__ = ["allowed", "attachment_chunks", "check_upload", "choices", "files_for", "send_limit"]


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
            "the data directory's `datasets/` area and use `/dataset select`."
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


def choices(values: Sequence[str]) -> list[hikari.impl.AutocompleteChoiceBuilder]:
    """Up to 25 choices (values over Discord's 100 characters cannot be offered)."""
    return [hikari.impl.AutocompleteChoiceBuilder(name=v, value=v) for v in values if len(v) <= 100][:25]
