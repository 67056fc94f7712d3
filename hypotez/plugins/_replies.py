"""The bot's replies as members point at them: by message id or link, by the message a button is on, from the
member's recent replies (autocomplete); and the buttons put under every reply."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.keys import Key, build_key
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import bounded
from hypotez.plugins._components import button, button_row
from hypotez.storage.repositories import ReplyRepository

if TYPE_CHECKING:
    from hypotez.storage.models import BotReply, ReplyMessage

__all__ = [
    "find_reply",
    "invite_correction_row",
    "owned_reply",
    "parse_message_ref",
    "recent_replies_autocomplete",
    "reply_actions_row",
    "visible_to",
]

#: A message id, or a message link (https://discord.com/channels/<guild or @me>/<channel>/<message>).
_MESSAGE_REF = re.compile(
    r"^\s*(?:<?https?://(?:[\w-]+\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/(?P<channel>\d+)/)?(?P<id>\d{15,21})>?\s*$",
    re.ASCII,
)

#: Discord ids are 64-bit signed integers.
_MAX_SNOWFLAKE = 2**63 - 1


def parse_message_ref(value: str) -> int:
    """The message id in ``value`` (an id or a message link)."""
    match = _MESSAGE_REF.match(value)
    if match is None:
        raise InvalidInputError(
            f"“{value[:100]}” is not a message id or link. Right-click the message → Copy Message Link (or ID)."
        )
    message_id = int(match["id"])
    if message_id > _MAX_SNOWFLAKE:
        raise InvalidInputError(
            f"“{value[:100]}” is too large to be a Discord message id (at most {_MAX_SNOWFLAKE}). "
            "Right-click the message → Copy Message Link (or ID)."
        )
    return message_id


async def find_reply(replies: ReplyRepository, message_id: int, caller: Caller) -> tuple[BotReply, ReplyMessage]:
    """The bot's reply carried by ``message_id``, as far as the caller can see it: in a server only that server's
    replies; in a DM or group DM the replies in that channel (and the caller's own)."""
    found = await replies.by_message(
        message_id, guild_id=caller.guild_id, user_id=caller.user_id, channel_id=caller.channel_id
    )
    if found is None:
        raise NotFoundError(
            "reply",
            message_id,
            "That message is not one of my replies here, so there is nothing to rate or correct. "
            "Use this on a message the bot sent in answer to `/chat`.",
        )
    return found


def visible_to(caller: Caller, guild_id: int | None, channel_id: int | None, owner_id: int | None) -> bool:
    """Whether the caller may see something made in ``guild_id``/``channel_id`` for ``owner_id``: in a server,
    anything of that server; in a DM or group DM, what was made in that channel or for the caller."""
    if caller.guild_id is not None:
        return guild_id == caller.guild_id
    return guild_id is None and (channel_id == caller.channel_id or owner_id == caller.user_id)


async def owned_reply(replies: ReplyRepository, reply_id: int, caller: Caller) -> BotReply:
    """The reply a custom id names, refused unless the caller could see it (same server, or same DM channel or
    their own) — a forged or replayed id from elsewhere is answered as not found."""
    reply = await replies.get(reply_id)
    if (
        reply is None
        or not visible_to(caller, reply.guild_id, reply.channel_id, reply.author_id)
        or (reply.private and reply.author_id != caller.user_id)  # a private answer is its member's alone
    ):
        raise NotFoundError("reply", reply_id, "That reply no longer exists here.")
    return reply


def reply_actions_row() -> hikari.api.MessageActionRowBuilder:
    """The 👍 / 👎 / Correct / 🔁 buttons under every reply (the reply is found from the message they are on)."""
    return button_row(
        button(Key.RATE_UP.value, emoji="👍"),
        button(Key.RATE_DOWN.value, emoji="👎"),
        button(Key.CORRECT.value, emoji="✏️", label="Correct"),
        button(Key.REGENERATE.value, emoji="🔁"),
    )


def invite_correction_row(reply_id: int) -> hikari.api.MessageActionRowBuilder:
    """Offered after a 👎: one button opening the correction box for that reply."""
    return button_row(
        button(build_key(Key.CORRECT, reply_id), label="Correct it", emoji="✏️", style=hikari.ButtonStyle.PRIMARY)
    )


def recent_replies_autocomplete(capability: Capability) -> Callable[..., Coroutine[Any, Any, None]]:
    """An autocomplete of the member's recent replies in this channel (shown by their text, filled in as the
    message id), for members holding ``capability`` where they type (nothing to anyone else)."""

    @bounded
    async def autocomplete(
        ctx: lightbulb.AutocompleteContext[str],
        caller: Caller = lightbulb.di.INJECTED,
        replies: ReplyRepository = lightbulb.di.INJECTED,
    ) -> None:
        if not caller.can(capability):
            await ctx.respond([])
            return
        typed = str(ctx.focused.value or "").strip().lower()
        recent = await replies.recent_for_author(int(ctx.interaction.channel_id), int(ctx.interaction.user.id))
        found: list[hikari.impl.AutocompleteChoiceBuilder] = []
        for reply in recent:
            if reply.message_id is None:
                continue
            label = " ".join(f"{reply.user_text} → {reply.content}".split())
            if typed and typed not in label.lower() and typed not in str(reply.message_id):
                continue
            found.append(
                hikari.impl.AutocompleteChoiceBuilder(
                    name=label[:97] + ("…" if len(label) > 97 else ""), value=str(reply.message_id)
                )
            )
        await ctx.respond(found[:25])

    return autocomplete
