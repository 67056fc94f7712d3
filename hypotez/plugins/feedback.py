"""Corrections and feedback: "Correct this reply", ``/correct`` (the original ``store_correction``),
``/feedback`` and its statistics."""

from __future__ import annotations

import datetime as dt
import re

import hikari
import lightbulb
import miru

from hypotez.app import Services
from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.permissions import Caller
from hypotez.plugins._checks import require
from hypotez.plugins._ui import FeedbackModal, correction_modal_for, store_correction
from hypotez.storage.models import BotReply, ReplyMessage, utcnow
from hypotez.storage.repositories import FeedbackRepository, ReplyRepository

loader = lightbulb.Loader()

#: A message id, or a message link (https://discord.com/channels/<guild or @me>/<channel>/<message>).
_MESSAGE_REF = re.compile(
    r"^\s*(?:<?https?://(?:[\w-]+\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/(?P<channel>\d+)/)?(?P<id>\d{15,21})>?\s*$"
)
#: Largest correction file read, in bytes (a correction is text, not a dataset).
CORRECTION_FILE_LIMIT = 1024 * 1024


async def open_modal(ctx: lightbulb.Context, components: miru.Client, modal: miru.Modal) -> None:
    """Answer a command with a miru modal (lightbulb sends it; miru handles the submission)."""
    await ctx.respond_with_modal(modal.title, modal.custom_id, components=modal)
    components.start_modal(modal)


def parse_message_ref(value: str) -> int:
    """The message id in ``value`` (an id or a message link)."""
    match = _MESSAGE_REF.match(value)
    if match is None:
        raise InvalidInputError(
            f"“{value[:100]}” is not a message id or link. Right-click the message → Copy Message Link (or ID)."
        )
    return int(match["id"])


async def find_reply(replies: ReplyRepository, message_id: int, caller: Caller) -> tuple[BotReply, ReplyMessage]:
    """The bot's reply carried by ``message_id``, given where the caller is (another server's replies are not
    found, whatever id or link is given)."""
    found = await replies.by_message(message_id, guild_id=caller.guild_id, user_id=caller.user_id)
    if found is None:
        raise NotFoundError(
            "reply",
            message_id,
            "That message is not one of my replies, so there is nothing to correct. "
            "Use this on a message the bot sent in answer to `/chat`.",
        )
    return found


async def recent_replies_autocomplete(
    ctx: lightbulb.AutocompleteContext[str], replies: ReplyRepository = lightbulb.di.INJECTED
) -> None:
    """The member's recent replies in this channel: shown by their text, filled in as the message id."""
    typed = str(ctx.focused.value or "").strip().lower()
    recent = await replies.recent_for_author(int(ctx.interaction.channel_id), int(ctx.interaction.user.id))
    choices: list[hikari.impl.AutocompleteChoiceBuilder] = []
    for reply in recent:
        if reply.message_id is None:
            continue
        label = " ".join(f"{reply.user_text} → {reply.content}".split())
        if typed and typed not in label.lower() and typed not in str(reply.message_id):
            continue
        choices.append(
            hikari.impl.AutocompleteChoiceBuilder(
                name=label[:97] + ("…" if len(label) > 97 else ""), value=str(reply.message_id)
            )
        )
    await ctx.respond(choices[:25])


@loader.command
class CorrectThisReply(lightbulb.MessageCommand, name="Correct this reply", hooks=[require(Capability.CORRECT)]):
    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        services: Services,
        replies: ReplyRepository,
        components: miru.Client,
    ) -> None:
        reply, part = await find_reply(replies, int(self.target.id), caller)
        modal = correction_modal_for(services, reply, part)
        await open_modal(ctx, components, modal)


@loader.command
class Correct(
    lightbulb.SlashCommand,
    name="correct",
    description="Correct one of the bot's replies (by message id or link)",
    hooks=[require(Capability.CORRECT)],
):
    message_id = lightbulb.string(
        "message_id", "The reply's message id or link", autocomplete=recent_replies_autocomplete, max_length=200
    )
    correction = lightbulb.string("correction", "The corrected reply", default=None, max_length=6000)
    file = lightbulb.attachment("file", "A .txt file with the corrected reply (for long replies)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        services: Services,
        settings: Settings,
        replies: ReplyRepository,
        components: miru.Client,
    ) -> None:
        if (self.correction is None) == (self.file is None):
            raise InvalidInputError("Give the corrected text either as `correction` or as a `file`, not both.")
        reply, _ = await find_reply(replies, parse_message_ref(self.message_id), caller)
        if self.file is not None:
            await ctx.defer(ephemeral=True)
            corrected = await read_text_attachment(self.file, min(settings.max_upload_bytes, CORRECTION_FILE_LIMIT))
            source = "command-file"
        else:
            assert self.correction is not None
            corrected = self.correction
            source = "command"
        if not corrected.strip():
            raise InvalidInputError("A correction cannot be empty.")
        text, receipt = await store_correction(services, reply, corrected, author_id=caller.user_id, source=source)
        await ctx.respond(text, components=receipt, ephemeral=True)
        components.start_view(receipt)


async def read_text_attachment(attachment: hikari.Attachment, limit: int) -> str:
    """The UTF-8 text of a small attachment; refused clearly when too large or not text."""
    if attachment.size > limit:
        raise InvalidInputError(
            f"`{attachment.filename}` is {attachment.size:,} bytes; a correction file may be at most {limit:,} bytes."
        )
    data = await attachment.read()
    if len(data) > limit:
        raise InvalidInputError(f"`{attachment.filename}` is larger than {limit:,} bytes.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"`{attachment.filename}` is not UTF-8 text. Save it as plain text and try again."
        ) from None


feedback = lightbulb.Group("feedback", "Tell us how the bot is doing")


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
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        services: Services,
        replies: ReplyRepository,
        components: miru.Client,
    ) -> None:
        reply = None
        if self.message_id is not None:
            reply, _ = await find_reply(replies, parse_message_ref(self.message_id), caller)
        modal = FeedbackModal(services, reply)
        await open_modal(ctx, components, modal)


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
class RateThisReply(lightbulb.MessageCommand, name="Rate this reply", hooks=[require(Capability.FEEDBACK)]):
    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        services: Services,
        replies: ReplyRepository,
        components: miru.Client,
    ) -> None:
        reply, _ = await find_reply(replies, int(self.target.id), caller)
        modal = FeedbackModal(services, reply)
        await open_modal(ctx, components, modal)
