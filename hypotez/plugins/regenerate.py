"""🔁 under a reply: another answer to the same question, from the same model, with the same conversation before it.
The member who asked then says which of the two is better, and that choice teaches the bot as a correction does:
the better answer preferred over the other, through the server's review queue.

Nothing lives in memory: 🔁 finds its reply from the message it is on; the choice buttons name both replies, and
the handler checks that both are the caller's own answers to one and the same question before storing anything.
"""

from __future__ import annotations

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.keys import Key, build_key
from hypotez.ml.assistant import OK, Assistant
from hypotez.permissions import Caller
from hypotez.plugins._components import ComponentContext, button, button_row, handler
from hypotez.plugins._delivery import NO_MENTIONS, InteractionTarget, deliver
from hypotez.plugins._replies import find_reply, owned_reply, reply_actions_row
from hypotez.plugins.corrections import store_correction
from hypotez.storage.models import BotReply
from hypotez.storage.repositories import AuditLog, CorrectionRepository, ReplyRepository, ReviewRepository

loader = lightbulb.Loader()

#: Which of the two answers a member picks: the first (the one 🔁 was pressed under) or the second.
FIRST, SECOND = "1", "2"


def pick_row(first: BotReply, second: BotReply) -> hikari.api.MessageActionRowBuilder:
    """The buttons with which the member picks the better of two answers to their question."""
    return button_row(
        button(build_key(Key.REGENERATE_PICK, first.id, second.id, FIRST), label="The first is better", emoji="⬆️"),
        button(build_key(Key.REGENERATE_PICK, first.id, second.id, SECOND), label="The second is better", emoji="⬇️"),
    )


def _jump(reply: BotReply) -> str:
    where = reply.guild_id or "@me"
    return f"https://discord.com/channels/{where}/{reply.channel_id}/{reply.message_id}" if reply.message_id else ""


@handler(loader, Key.REGENERATE, capability=Capability.CHAT)
async def regenerate(
    ctx: ComponentContext,
    caller: Caller,
    settings: Settings,
    replies: ReplyRepository,
    assistant: Assistant,
) -> None:
    """🔁: the member who asked gets a second answer, then picks the better one (only they see the choice)."""
    reply, _ = await find_reply(replies, int(ctx.message.id), caller)
    if reply.author_id != caller.user_id:
        raise InvalidInputError(
            "Only the member who asked can ask for another answer to this question; ask your own with `/chat`."
        )
    parent = await replies.get(reply.parent_id) if reply.parent_id is not None else None
    await ctx.defer(ephemeral=reply.private)
    prepared = await assistant.prepare(
        reply.user_text,
        guild_id=caller.guild_id,
        channel_id=caller.channel_id,
        author_id=caller.user_id,
        parent=parent,
        model=reply.model,
        here=caller.here,
    )
    again = await deliver(
        assistant,
        prepared,
        InteractionTarget(ctx.interaction, ephemeral=reply.private),
        [reply_actions_row()],
        stream_interval=settings.chat_stream_interval,
        interaction_id=int(ctx.interaction.id),
        footer=settings.chat_footer,
    )
    if again is None:
        return  # no answer to compare: the member was shown why, under the usual buttons
    await ctx.interaction.execute(
        "Which answer is better? Your choice teaches the bot (a curator reviews it first).",
        components=[pick_row(reply, again)],
        flags=hikari.MessageFlag.EPHEMERAL,
        **NO_MENTIONS,
    )


@handler(loader, Key.REGENERATE_PICK, capability=Capability.CORRECT, arity=(3,))
async def pick(
    ctx: ComponentContext,
    caller: Caller,
    replies: ReplyRepository,
    corrections: CorrectionRepository,
    reviews: ReviewRepository,
    audit: AuditLog,
) -> None:
    """The member picked the better answer: the other one is "corrected" to it (a chat example of the better one
    and a preference pair over the worse, once a curator approves)."""
    first = await owned_reply(replies, ctx.key.int_arg(0), caller)
    second = await owned_reply(replies, ctx.key.int_arg(1), caller)
    choice = ctx.key.args[2]
    if choice not in {FIRST, SECOND}:
        raise InvalidInputError("This button is damaged or out of date. Press 🔁 again for a fresh choice.")
    same_question = (
        first.id != second.id
        and first.author_id == second.author_id == caller.user_id
        and first.guild_id == second.guild_id
        and first.parent_id == second.parent_id
        and first.user_text == second.user_text
    )
    if not same_question:
        raise InvalidInputError("These are not two answers to one question of yours, so there is nothing to pick.")
    better, worse = (first, second) if choice == FIRST else (second, first)
    if better.outcome != OK:
        raise InvalidInputError("That answer is empty or failed: pick the other one, or correct it with ✏️.")
    if better.content == worse.content:
        raise InvalidInputError("Both answers are the same, so neither is better.")
    # Changing one's mind: the earlier pick (a correction of the now better answer) is withdrawn.
    for earlier in await corrections.for_reply(better.id):
        if earlier.author_id == caller.user_id and earlier.source == "regenerate":
            await corrections.delete(earlier.id)
    text, receipt = await store_correction(
        corrections,
        reviews,
        audit,
        worse,
        better.content,
        caller=caller,
        source="regenerate",
        rest=ctx.client.rest,
    )
    which = "first" if choice == FIRST else "second"
    link = _jump(better)
    await ctx.respond(
        f"You picked the {which} answer{f' ({link})' if link else ''}. {text}",
        components=[receipt],
        edit=True,
        **NO_MENTIONS,
    )
