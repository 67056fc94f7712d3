"""Corrections (the original ``store_correction``): "Correct this reply", ``/correct``, the ✏️ buttons, the
correction box, and the View / Undo buttons on the acknowledgement."""

from __future__ import annotations

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from hypotez.keys import Key, ModalSigner, build_key
from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.permissions import Caller
from hypotez.plugins._attachments import read_text_attachment
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.plugins._components import (
    ComponentContext,
    ModalContext,
    button,
    button_row,
    handler,
    open_modal,
    text_input,
)
from hypotez.plugins._replies import find_reply, owned_reply, parse_message_ref, recent_replies_autocomplete
from hypotez.plugins._transcripts import correct_transcript
from hypotez.storage.models import BotReply, Correction, ReplyMessage, ReviewStatus
from hypotez.storage.repositories import (
    AuditLog,
    CorrectionRepository,
    ReplyRepository,
    ReviewRepository,
    TranscriptRepository,
)
from hypotez.voice.transcripts import Transcripts

loader = lightbulb.Loader()

EPHEMERAL = hikari.MessageFlag.EPHEMERAL
#: Discord's limit on a text input's value.
TEXT_INPUT_LIMIT = 4000
#: Largest correction file read, in bytes (a correction is text, not a dataset).
CORRECTION_FILE_LIMIT = 1024 * 1024
_TEXT = "text"


# -- the correction box -------------------------------------------------------------------------------------------


def correction_span(reply: BotReply, part: ReplyMessage | None) -> tuple[int, int]:
    """What the box corrects: the whole reply when it fits a text input, else the part clicked."""
    content = reply.content
    if len(content) <= TEXT_INPUT_LIMIT:
        return 0, len(content)
    if part is not None and part.end - part.start <= TEXT_INPUT_LIMIT and reply.delivery == "messages":
        return part.start, part.end
    raise InvalidInputError(
        f"This reply is {len(content):,} characters, more than a correction box holds. Correct it with "
        f"`/correct message_id:{reply.message_id}` and attach the corrected text as a .txt file"
        + (", or use “Correct this reply” on the part you want to fix." if reply.delivery == "messages" else ".")
    )


def correction_modal(reply: BotReply, part: ReplyMessage | None) -> tuple[str, str, list[hikari.api.ComponentBuilder]]:
    """``(title, custom_id, rows)`` of the box prefilled with the reply (or the part clicked)."""
    start, end = correction_span(reply, part)
    whole = start == 0 and end == len(reply.content)
    unanswered = not reply.content.strip()  # the model gave nothing, or the backend failed
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(
            _TEXT,
            "The answer it should have given" if unanswered else "Corrected reply" if whole else "Corrected part",
            value=reply.content[start:end] or None,
            paragraph=True,
            max_length=TEXT_INPUT_LIMIT,
        )
    ]
    title = "Correct this reply" if whole else "Correct this part of the reply"
    return title, build_key(Key.CORRECTION_MODAL, reply.id, start, end), rows


async def store_correction(
    corrections: CorrectionRepository,
    reviews: ReviewRepository,
    audit: AuditLog,
    reply: BotReply,
    corrected: str,
    *,
    caller: Caller,
    source: str,
    rest: hikari.api.RESTClient,
) -> tuple[str, hikari.api.MessageActionRowBuilder]:
    """Store a correction and put it in the review queue (approved on arrival for a trusted role; posted in the
    server's review channel when it has one); returns the acknowledgement, in plain words, and its View / Undo
    buttons."""
    if not corrected.strip():
        raise InvalidInputError("A correction cannot be empty.")
    if corrected == reply.content:
        raise InvalidInputError("The correction is the same as the reply: nothing to store.")
    policy = await reviews.policy(reply.guild_id)
    trusted = reply.guild_id is not None and policy.trusts(caller.role_ids)
    correction, created, item = await corrections.upsert(
        reply,
        author_id=caller.user_id,
        corrected_text=corrected,
        source=source,
        examples=examples_from_correction,
        trusted=trusted,
    )
    await audit.record(
        "correction.create" if created else "correction.replace",
        guild_id=reply.guild_id,
        actor_id=caller.user_id,
        target=f"reply:{reply.id}",
        details={"correction_id": correction.id, "source": source, "review_item": item.id, "status": item.status},
    )
    if item.status == ReviewStatus.PENDING:
        from hypotez.plugins.review import post_to_review_channel  # the review plugin opens correction boxes

        await post_to_review_channel(rest, reviews, item.id)
    verb = "saved" if created else "updated (it replaces your earlier one)"
    if item.status == ReviewStatus.APPROVED:
        fate = "Your role is trusted here, so it is approved: the next model trained on this server learns from it."
    elif reply.guild_id is None:
        fate = "It is kept with the conversation; corrections made in direct messages are not used for training."
    else:
        fate = "A curator reviews it before it teaches the bot; you will hear what they decide."
    text = f"✅ Correction {verb}. {fate}"
    receipt = button_row(
        button(build_key(Key.CORRECTION_VIEW, correction.id), label="View"),
        button(build_key(Key.CORRECTION_UNDO, correction.id), label="Undo", style=hikari.ButtonStyle.DANGER),
    )
    return text, receipt


@handler(loader, Key.CORRECTION_MODAL, capability=Capability.CORRECT, arity=(3,))
async def submit_correction(
    ctx: ModalContext,
    caller: Caller,
    replies: ReplyRepository,
    corrections: CorrectionRepository,
    reviews: ReviewRepository,
    audit: AuditLog,
) -> None:
    """The box was submitted (on whichever process, whenever within Discord's limits)."""
    reply = await owned_reply(replies, ctx.key.int_arg(0), caller)
    start, end = ctx.key.int_arg(1), ctx.key.int_arg(2)
    if not 0 <= start <= end <= len(reply.content):
        raise InvalidInputError("This correction box does not match the reply any more. Open it again.")
    corrected = reply.content[:start] + ctx.value(_TEXT) + reply.content[end:]
    text, receipt = await store_correction(
        corrections, reviews, audit, reply, corrected, caller=caller, source="modal", rest=ctx.client.rest
    )
    await ctx.respond(text, components=[receipt], ephemeral=True)


# -- opening it ---------------------------------------------------------------------------------------------------


@handler(loader, Key.CORRECT, capability=Capability.CORRECT, arity=(0, 1))
async def open_correction(ctx: ComponentContext, caller: Caller, replies: ReplyRepository) -> None:
    """✏️ under a reply (the reply is the message the button is on), or "Correct it" after a 👎 (the id names
    the reply)."""
    if ctx.key.has_args:
        reply, part = await owned_reply(replies, ctx.key.int_arg(0), caller), None
    else:
        reply, part = await find_reply(replies, int(ctx.message.id), caller)
    await ctx.respond_with_modal(*correction_modal(reply, part))


@loader.command
class CorrectThisReply(
    lightbulb.MessageCommand, name="Correct this reply", hooks=[require(Capability.CORRECT)], **EVERYWHERE
):
    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository, signer: ModalSigner
    ) -> None:
        reply, part = await find_reply(replies, int(self.target.id), caller)
        await open_modal(ctx, signer, *correction_modal(reply, part))


@loader.command
class Correct(
    lightbulb.SlashCommand,
    name="correct",
    description="Correct one of the bot's replies or transcripts (by message id or link)",
    hooks=[require(Capability.CORRECT)],
    **EVERYWHERE,
):
    message_id = lightbulb.string(
        "message_id",
        "The reply's (or transcript's) message id or link",
        autocomplete=recent_replies_autocomplete(Capability.CORRECT),
        max_length=200,
    )
    correction = lightbulb.string("correction", "The corrected reply", default=None, max_length=6000)
    file = lightbulb.attachment("file", "A .txt file with the corrected reply (for long replies)", default=None)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        replies: ReplyRepository,
        corrections: CorrectionRepository,
        reviews: ReviewRepository,
        audit: AuditLog,
        transcripts: TranscriptRepository,
        service: Transcripts,
    ) -> None:
        if (self.correction is None) == (self.file is None):
            raise InvalidInputError("Give the corrected text either as `correction` or as a `file`, not both.")
        message_id = parse_message_ref(self.message_id)
        transcript = await transcripts.by_message(message_id) if settings.voice_enabled else None
        reply = None if transcript is not None else (await find_reply(replies, message_id, caller))[0]
        if self.file is not None:
            await ctx.defer(ephemeral=True)
            corrected = await read_text_attachment(self.file, min(settings.max_upload_bytes, CORRECTION_FILE_LIMIT))
            source = "command-file"
        else:
            assert self.correction is not None
            corrected = self.correction
            source = "command"
        if transcript is not None:  # a transcript's message: the transcript is corrected (and teaches the bot)
            text = await correct_transcript(
                transcript.id, corrected, caller=caller, transcripts=transcripts, service=service, audit=audit,
                source=source,
            )  # fmt: skip
            await ctx.respond(text, ephemeral=True)
            return
        assert reply is not None
        text, receipt = await store_correction(
            corrections, reviews, audit, reply, corrected, caller=caller, source=source, rest=ctx.client.rest
        )
        await ctx.respond(text, components=[receipt], ephemeral=True)


# -- the acknowledgement's buttons ----------------------------------------------------------------------------------


async def _own_correction(corrections: CorrectionRepository, correction_id: int, caller: Caller) -> Correction:
    """A correction the caller may see and undo: their own, or one of their server's if they curate it; one of
    another server (a forged or replayed id) is answered as not found."""
    correction = await corrections.get(correction_id)
    if correction is None or correction.guild_id != caller.guild_id:
        raise NotFoundError("correction", correction_id, "That correction was removed.")
    if correction.author_id != caller.user_id and not caller.can(Capability.CURATE):
        raise PermissionDeniedError(Capability.CURATE.value, "Only its author or a curator can do that.")
    return correction


@handler(loader, Key.CORRECTION_VIEW, capability=Capability.CORRECT, arity=(1,))
async def view_correction(ctx: ComponentContext, caller: Caller, corrections: CorrectionRepository) -> None:
    text = (await _own_correction(corrections, ctx.key.int_arg(), caller)).corrected_text
    if len(text) > 1900:
        await ctx.respond("The correction:", attachment=hikari.Bytes(text.encode(), "correction.txt"), flags=EPHEMERAL)
    else:
        await ctx.respond(f"The correction:\n>>> {text}", flags=EPHEMERAL)


@handler(loader, Key.CORRECTION_UNDO, capability=Capability.CORRECT, arity=(1,))
async def undo_correction(
    ctx: ComponentContext, caller: Caller, corrections: CorrectionRepository, audit: AuditLog
) -> None:
    correction = await _own_correction(corrections, ctx.key.int_arg(), caller)
    await corrections.delete(correction.id)
    await audit.record(
        "correction.delete",
        guild_id=correction.guild_id,
        actor_id=caller.user_id,
        target=f"reply:{correction.reply_id}",
        details={"correction_id": correction.id},
    )
    await ctx.respond("↩️ Correction removed, with its training examples.", components=[], edit=True)
