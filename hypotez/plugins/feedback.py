"""Feedback: 👍 / 👎 under every reply, ``/feedback`` (a 1-5 rating with a comment, about one reply or in
general), **Rate this reply**, and the statistics."""

from __future__ import annotations

import datetime as dt

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.keys import Key, build_key
from hypotez.permissions import Caller
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.plugins._components import ComponentContext, ModalContext, handler, text_input
from hypotez.plugins._replies import (
    find_reply,
    invite_correction_row,
    owned_reply,
    parse_message_ref,
    recent_replies_autocomplete,
)
from hypotez.storage.models import BotReply, utcnow
from hypotez.storage.repositories import FeedbackRepository, ReplyRepository

loader = lightbulb.Loader()

_RATING = "rating"
_COMMENT = "comment"


async def _rate(
    ctx: ComponentContext, caller: Caller, replies: ReplyRepository, feedback: FeedbackRepository, *, up: bool
) -> None:
    reply, _ = await find_reply(replies, int(ctx.message.id), caller)
    await feedback.rate(reply, author_id=caller.user_id, up=up)
    if up:
        await ctx.respond("Thanks for the 👍", ephemeral=True)
        return
    await ctx.respond(
        "Thanks for telling me. Would you correct it? Your correction teaches the next model.",
        components=[invite_correction_row(reply.id)],
        ephemeral=True,
    )


@handler(loader, Key.RATE_UP, capability=Capability.FEEDBACK)
async def thumbs_up(
    ctx: ComponentContext, caller: Caller, replies: ReplyRepository, feedback: FeedbackRepository
) -> None:
    await _rate(ctx, caller, replies, feedback, up=True)


@handler(loader, Key.RATE_DOWN, capability=Capability.FEEDBACK)
async def thumbs_down(
    ctx: ComponentContext, caller: Caller, replies: ReplyRepository, feedback: FeedbackRepository
) -> None:
    await _rate(ctx, caller, replies, feedback, up=False)


def feedback_modal(reply: BotReply | None) -> tuple[str, str, list[hikari.api.ComponentBuilder]]:
    """``(title, custom_id, rows)`` of the rating box, about ``reply`` or general (``0`` in the id)."""
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(_RATING, "Rating from 1 (bad) to 5 (great)", placeholder="5", min_length=1, max_length=1),
        text_input(_COMMENT, "What was good or wrong?", paragraph=True, required=False, max_length=4000),
    ]
    title = "Feedback on this reply" if reply is not None else "Feedback"
    return title, build_key(Key.FEEDBACK_MODAL, reply.id if reply is not None else 0), rows


@handler(loader, Key.FEEDBACK_MODAL, capability=Capability.FEEDBACK, arity=(1,))
async def submit_feedback(
    ctx: ModalContext, caller: Caller, replies: ReplyRepository, feedback: FeedbackRepository
) -> None:
    reply_id = ctx.key.int_arg()
    reply = await owned_reply(replies, reply_id, caller) if reply_id else None
    raw = ctx.value(_RATING).strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 5:
        raise InvalidInputError(f"The rating must be a whole number from 1 to 5, not “{raw[:20]}”. Nothing was stored.")
    await feedback.add_rating(
        author_id=caller.user_id,
        guild_id=caller.guild_id,
        channel_id=caller.channel_id,
        rating=int(raw),
        comment=ctx.value(_COMMENT).strip() or None,
        reply=reply,
    )
    await ctx.respond(f"Thanks! Feedback stored ({raw}/5).", ephemeral=True)


feedback = lightbulb.Group("feedback", "Tell us how the bot is doing", **EVERYWHERE)


@feedback.register
class FeedbackSend(
    lightbulb.SlashCommand,
    name="send",
    description="Rate the bot (1-5) with a comment, about one reply or in general",
    hooks=[require(Capability.FEEDBACK)],
):
    message_id = lightbulb.string(
        "message_id",
        "A reply's message id or link (default: general feedback)",
        default=None,
        autocomplete=recent_replies_autocomplete,
        max_length=200,
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository) -> None:
        reply = None
        if self.message_id is not None:
            reply, _ = await find_reply(replies, parse_message_ref(self.message_id), caller)
        title, custom_id, rows = feedback_modal(reply)
        await ctx.respond_with_modal(title, custom_id, components=rows)


@feedback.register
class FeedbackStats(
    lightbulb.SlashCommand,
    name="stats",
    description="Ratings and corrections per model",
    hooks=[require(Capability.CURATE)],
):
    days = lightbulb.integer("days", "Period in days (default 30)", default=30, min_value=1, max_value=3650)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, feedback_repo: FeedbackRepository) -> None:
        since = utcnow() - dt.timedelta(days=self.days)
        stats = await feedback_repo.stats(caller.guild_id, since=since)
        if not stats:
            await ctx.respond(f"No feedback in the last {self.days} days.", ephemeral=True)
            return
        embed = hikari.Embed(title=f"Feedback, last {self.days} days")
        for s in stats[:25]:
            approval = f"{s.approval:.0%}" if s.approval is not None else "—"
            mean = f"{s.mean_rating:.1f}/5" if s.mean_rating is not None else "—"
            embed.add_field(
                s.model[:256],
                f"👍 {s.thumbs_up} · 👎 {s.thumbs_down} · approval {approval}\n"
                f"ratings {s.ratings} (mean {mean}) · corrections {s.corrections}",
            )
        await ctx.respond(embed=embed, ephemeral=True)


loader.command(feedback)


@loader.command
class RateThisReply(
    lightbulb.MessageCommand, name="Rate this reply", hooks=[require(Capability.FEEDBACK)], **EVERYWHERE
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository) -> None:
        reply, _ = await find_reply(replies, int(self.target.id), caller)
        title, custom_id, rows = feedback_modal(reply)
        await ctx.respond_with_modal(title, custom_id, components=rows)
