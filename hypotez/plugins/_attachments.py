"""Attachments in and out: checked before download, streamed to disk, read as text, sent within the size
Discord accepts for the interaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hikari

from hypotez.errors import InvalidInputError
from hypotez.storage.files import human_size

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from hypotez.config import Settings

__all__ = ["attachment_chunks", "check_upload", "files_for", "read_text_attachment", "send_limit"]


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


async def read_text_attachment(attachment: hikari.Attachment, limit: int) -> str:
    """The UTF-8 text of a small attachment; refused clearly when too large or not text."""
    if attachment.size > limit:
        raise InvalidInputError(
            f"`{attachment.filename[:100]}` is {human_size(attachment.size)}; at most {human_size(limit)} is read."
        )
    received = bytearray()
    # Read as it arrives, and stop (closing the download) as soon as it runs past ``limit``: the size Discord
    # announced is not trusted.
    async with attachment.stream() as reader:
        async for chunk in reader:
            received += chunk
            if len(received) > limit:
                raise InvalidInputError(f"`{attachment.filename[:100]}` is larger than {human_size(limit)}.")
    data = bytes(received)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"`{attachment.filename[:100]}` is not UTF-8 text. Save it as plain text and try again."
        ) from None
