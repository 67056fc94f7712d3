"""Attachments in and out: checked before download, streamed to disk, read as text, sent within the size
Discord accepts for the interaction."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import hikari

from hypotez.errors import InvalidInputError
from hypotez.storage.files import human_size

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from hypotez.config import Settings

__all__ = [
    "IMAGE_TYPES",
    "attachment_chunks",
    "check_upload",
    "files_for",
    "image_urls",
    "is_image",
    "read_text_attachment",
    "send_limit",
]

#: Image formats the OpenAI chat format takes, by media type.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_IMAGE_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


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


async def _read_limited(attachment: hikari.Attachment, limit: int) -> bytes:
    """The attachment's bytes, read as they arrive; stopped (closing the download) as soon as they run past
    ``limit``: the size Discord announced is not trusted."""
    received = bytearray()
    async with attachment.stream() as reader:
        async for chunk in reader:
            received += chunk
            if len(received) > limit:
                raise InvalidInputError(f"`{attachment.filename[:100]}` is larger than {human_size(limit)}.")
    return bytes(received)


async def read_text_attachment(attachment: hikari.Attachment, limit: int) -> str:
    """The UTF-8 text of a small attachment; refused clearly when too large or not text."""
    if attachment.size > limit:
        raise InvalidInputError(
            f"`{attachment.filename[:100]}` is {human_size(attachment.size)}; at most {human_size(limit)} is read."
        )
    data = await _read_limited(attachment, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"`{attachment.filename[:100]}` is not UTF-8 text. Save it as plain text and try again."
        ) from None


def _media_type(attachment: hikari.Attachment) -> str | None:
    declared = (attachment.media_type or "").split(";")[0].strip().lower()
    if declared in IMAGE_TYPES:
        return declared
    suffix = "." + attachment.filename.rsplit(".", 1)[-1].lower() if "." in attachment.filename else ""
    return _IMAGE_SUFFIXES.get(suffix) if not declared else None


def is_image(attachment: hikari.Attachment) -> bool:
    """Whether an attachment is an image a model can be sent (PNG, JPEG, WebP or GIF)."""
    return _media_type(attachment) is not None


async def image_urls(attachments: Sequence[hikari.Attachment], settings: Settings) -> list[str]:
    """The images among ``attachments`` as ``data:`` URLs for the model (read here: a model server may not reach
    Discord's CDN, and links expire).  Refused clearly: a file that is not an image, more than
    ``chat_max_images``, one larger than ``chat_image_max_bytes``, or bytes that are not the image announced."""
    if len(attachments) > settings.chat_max_images:
        raise InvalidInputError(f"At most {settings.chat_max_images} images go with one message.")
    urls: list[str] = []
    for attachment in attachments:
        media_type = _media_type(attachment)
        if media_type is None:
            raise InvalidInputError(
                f"`{attachment.filename[:100]}` is not an image the model can see (PNG, JPEG, WebP or GIF)."
            )
        limit = settings.chat_image_max_bytes
        if attachment.size > limit:
            raise InvalidInputError(
                f"`{attachment.filename[:100]}` is {human_size(attachment.size)}; images of at most "
                f"{human_size(limit)} go to the model (HYPOTEZ_CHAT_IMAGE_MAX_BYTES)."
            )
        received = await _read_limited(attachment, limit)
        if not _looks_like(media_type, received[:16]):
            raise InvalidInputError(
                f"`{attachment.filename[:100]}` is not a readable {media_type.split('/')[1]} image."
            )
        urls.append(f"data:{media_type};base64,{base64.b64encode(received).decode('ascii')}")
    return urls


def _looks_like(media_type: str, head: bytes) -> bool:
    """Whether the first bytes are those of ``media_type`` (a renamed text file is not an image)."""
    if media_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if media_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if media_type == "image/gif":
        return head.startswith((b"GIF87a", b"GIF89a"))
    return head.startswith(b"RIFF") and head[8:12] == b"WEBP"
