"""Buttons and modals (miru): rating buttons on every reply, the correction modal, the feedback modal.

Every callback checks the member's capability on the server.  The rating buttons are one persistent view
with fixed custom ids: the reply is found from the message the button is on, so they work after a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import hikari
import miru

from hypotez.app import describe_error
from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from hypotez.keys import Key, build_key
from hypotez.ml.examples import examples_from_correction

if TYPE_CHECKING:
    from collections.abc import MutableMapping, Sequence

    from hypotez.app import Services
    from hypotez.permissions import Caller
    from hypotez.storage.models import BotReply, ReplyMessage

__all__ = [
    "CorrectionModal",
    "FeedbackModal",
    "ReplyActions",
    "correction_modal_for",
    "reply_actions_row",
    "store_correction",
]

_LOGGER = logging.getLogger(__name__)
EPHEMERAL = hikari.MessageFlag.EPHEMERAL
#: Discord's limit on a text input's value.
TEXT_INPUT_LIMIT = 4000


class _FixedModalBuilder(miru.ModalBuilder):
    """hikari 2.6 serialises each modal row as ``[payload, attachments]`` in a response body; Discord wants the
    payload alone.  (Modals opened over REST are unaffected; the HTTP-body path is.)"""

    def build(
        self, entity_factory: hikari.api.EntityFactory, /
    ) -> tuple[MutableMapping[str, Any], Sequence[hikari.files.Resource[hikari.files.AsyncReader]]]:
        payload, attachments = super().build(entity_factory)
        rows: list[Any] = [component.build() for component in self.components]
        payload["data"]["components"] = [row[0] if isinstance(row, tuple) else row for row in rows]
        return payload, attachments


class HzModal(miru.Modal):
    """A modal whose errors become the same plain replies as commands'."""

    def build_response(self, client: miru.Client) -> miru.ModalBuilder:
        builder = _FixedModalBuilder(self.title, self.custom_id, list(self.build()))
        builder._client = client  # pyright: ignore[reportPrivateUsage]
        return builder

    async def on_error(self, error: Exception, context: miru.ModalContext | None = None, /) -> None:
        message = describe_error(error, where=f"modal {self.custom_id}")
        if context is not None:
            await context.respond(message, flags=EPHEMERAL)


class HzView(miru.View):
    """A view whose errors become the same plain replies as commands'."""

    async def on_error(
        self,
        error: Exception,
        item: miru.abc.ViewItem | None = None,
        context: miru.ViewContext | None = None,
        /,
    ) -> None:
        where = f"button {item.custom_id}" if item is not None else "view"
        message = describe_error(error, where=where)
        if context is not None:
            await context.respond(message, flags=EPHEMERAL)


def reply_actions_row() -> hikari.api.MessageActionRowBuilder:
    """The 👍 / 👎 / Correct buttons put under every reply (handled by :class:`ReplyActions`)."""
    row = hikari.impl.MessageActionRowBuilder()
    row.add_interactive_button(hikari.ButtonStyle.SECONDARY, Key.RATE_UP.value, emoji="👍")
    row.add_interactive_button(hikari.ButtonStyle.SECONDARY, Key.RATE_DOWN.value, emoji="👎")
    row.add_interactive_button(hikari.ButtonStyle.SECONDARY, Key.CORRECT.value, emoji="✏️", label="Correct")
    return row


async def _reply_of_message(services: Services, message_id: int, caller: Caller) -> tuple[BotReply, ReplyMessage]:
    found = await services.replies.by_message(message_id, guild_id=caller.guild_id, user_id=caller.user_id)
    if found is None:
        raise NotFoundError("reply", message_id, "That message is not one of my stored replies.")
    return found


def correction_modal_for(services: Services, reply: BotReply, part: ReplyMessage | None) -> CorrectionModal:
    """The modal correcting ``reply``: the whole reply when it fits a text input, else the part clicked."""
    content = reply.content
    if len(content) <= TEXT_INPUT_LIMIT:
        return CorrectionModal(services, reply, 0, len(content))
    if part is not None and part.end - part.start <= TEXT_INPUT_LIMIT and reply.delivery == "messages":
        return CorrectionModal(services, reply, part.start, part.end)
    raise InvalidInputError(
        f"This reply is {len(content):,} characters, more than a correction box holds. Correct it with "
        f"`/correct message_id:{reply.message_id}` and attach the corrected text as a .txt file"
        + (", or use “Correct this reply” on the part you want to fix." if reply.delivery == "messages" else ".")
    )


class CorrectionModal(HzModal):
    """Prefilled with the reply (or one part of it); submitting stores the member's correction."""

    def __init__(self, services: Services, reply: BotReply, start: int, end: int) -> None:
        whole = start == 0 and end == len(reply.content)
        title = "Correct this reply" if whole else "Correct this part of the reply"
        super().__init__(title, custom_id=build_key(Key.CORRECTION_MODAL, reply.id, start, end), timeout=900)
        self.services = services
        self.reply = reply
        self.start = start
        self.end = end
        self.text: miru.TextInput = miru.TextInput(
            label="Corrected reply" if whole else "Corrected part",
            style=hikari.TextInputStyle.PARAGRAPH,
            value=reply.content[start:end],
            required=True,
            max_length=TEXT_INPUT_LIMIT,
            custom_id="text",
        )
        self.add_item(self.text)

    async def callback(self, context: miru.ModalContext) -> None:
        caller = await self.services.caller(context.interaction)
        caller.require(Capability.CORRECT)
        new_part = self.text.value or ""
        if not new_part.strip():
            raise InvalidInputError("A correction cannot be empty.")
        reply = await self.services.replies.get(self.reply.id)
        if reply is None:
            raise NotFoundError("reply", self.reply.id, "That reply no longer exists.")
        corrected = reply.content[: self.start] + new_part + reply.content[self.end :]
        text, receipt = await store_correction(
            self.services, reply, corrected, author_id=caller.user_id, source="modal"
        )
        await context.respond(text, components=receipt, flags=EPHEMERAL)
        context.client.start_view(receipt)


async def store_correction(
    services: Services, reply: BotReply, corrected: str, *, author_id: int, source: str
) -> tuple[str, CorrectionReceipt]:
    """Store a correction; returns the acknowledgement and its View / Undo buttons (to start after sending)."""
    if corrected == reply.content:
        raise InvalidInputError("The correction is the same as the reply: nothing to store.")
    correction, created = await services.corrections.upsert(
        reply, author_id=author_id, corrected_text=corrected, source=source, examples=examples_from_correction
    )
    await services.audit.record(
        "correction.create" if created else "correction.replace",
        guild_id=reply.guild_id,
        actor_id=author_id,
        target=f"reply:{reply.id}",
        details={"correction_id": correction.id, "source": source},
    )
    verb = "saved" if created else "updated (it replaces your earlier one)"
    text = f"✅ Correction {verb}. It becomes a training example and a preference pair for the next dataset."
    return text, CorrectionReceipt(services, correction.id)


class CorrectionReceipt(HzView):
    """Buttons on the acknowledgement: show the stored correction, or undo it."""

    def __init__(self, services: Services, correction_id: int) -> None:
        super().__init__(timeout=840)
        self.services = services
        self.correction_id = correction_id
        show = miru.Button(
            label="View", style=hikari.ButtonStyle.SECONDARY, custom_id=build_key(Key.CORRECTION_VIEW, correction_id)
        )
        undo = miru.Button(
            label="Undo", style=hikari.ButtonStyle.DANGER, custom_id=build_key(Key.CORRECTION_UNDO, correction_id)
        )
        show.callback = self._show
        undo.callback = self._undo
        self.add_item(show)
        self.add_item(undo)

    async def _show(self, context: miru.ViewContext) -> None:
        correction = await self.services.corrections.get(self.correction_id)
        if correction is None:
            raise NotFoundError("correction", self.correction_id, "That correction was removed.")
        text = correction.corrected_text
        if len(text) > 1900:
            await context.respond(
                "Your correction:",
                attachment=hikari.Bytes(text.encode(), "correction.txt"),
                flags=EPHEMERAL,
            )
        else:
            await context.respond(f"Your correction:\n>>> {text}", flags=EPHEMERAL)

    async def _undo(self, context: miru.ViewContext) -> None:
        correction = await self.services.corrections.get(self.correction_id)
        if correction is None:
            raise NotFoundError("correction", self.correction_id, "That correction was already removed.")
        caller = await self.services.caller(context.interaction)
        if correction.author_id != caller.user_id and not caller.can(Capability.CURATE):
            raise PermissionDeniedError(Capability.CURATE.value, "Only its author or a curator can undo a correction.")
        await self.services.corrections.delete(correction.id)
        await self.services.audit.record(
            "correction.delete",
            guild_id=correction.guild_id,
            actor_id=caller.user_id,
            target=f"reply:{correction.reply_id}",
            details={"correction_id": correction.id},
        )
        await context.edit_response("↩️ Correction removed, with its training examples.", components=[])
        self.stop()


class InviteCorrection(HzView):
    """Offered after a 👎: a button opening the correction modal for that reply."""

    def __init__(self, services: Services, reply_id: int) -> None:
        super().__init__(timeout=840)
        self.services = services
        self.reply_id = reply_id
        button = miru.Button(
            label="Correct it",
            emoji="✏️",
            style=hikari.ButtonStyle.PRIMARY,
            custom_id=build_key(Key.CORRECT, reply_id),
        )
        button.callback = self._open
        self.add_item(button)

    async def _open(self, context: miru.ViewContext) -> None:
        caller = await self.services.caller(context.interaction)
        caller.require(Capability.CORRECT)
        reply = await self.services.replies.get(self.reply_id)
        if reply is None:
            raise NotFoundError("reply", self.reply_id, "That reply no longer exists.")
        modal = correction_modal_for(self.services, reply, None)
        await context.respond_with_modal(modal)
        context.client.start_modal(modal)


class ReplyActions(HzView):
    """The persistent 👍 / 👎 / Correct buttons under every reply."""

    def __init__(self, services: Services) -> None:
        super().__init__(timeout=None)
        self.services = services

    async def _rate(self, context: miru.ViewContext, *, up: bool) -> None:
        caller = await self.services.caller(context.interaction)
        caller.require(Capability.FEEDBACK)
        reply, _ = await _reply_of_message(self.services, int(context.message.id), caller)
        await self.services.feedback.rate(reply, author_id=caller.user_id, up=up)
        if up:
            await context.respond("Thanks for the 👍", flags=EPHEMERAL)
            return
        invite = InviteCorrection(self.services, reply.id)
        await context.respond(
            "Thanks for telling me. Would you correct it? Your correction teaches the next model.",
            components=invite,
            flags=EPHEMERAL,
        )
        context.client.start_view(invite)

    @miru.button(emoji="👍", custom_id=Key.RATE_UP.value, style=hikari.ButtonStyle.SECONDARY)
    async def thumbs_up(self, context: miru.ViewContext, _: miru.Button) -> None:
        await self._rate(context, up=True)

    @miru.button(emoji="👎", custom_id=Key.RATE_DOWN.value, style=hikari.ButtonStyle.SECONDARY)
    async def thumbs_down(self, context: miru.ViewContext, _: miru.Button) -> None:
        await self._rate(context, up=False)

    @miru.button(label="Correct", emoji="✏️", custom_id=Key.CORRECT.value, style=hikari.ButtonStyle.SECONDARY)
    async def correct(self, context: miru.ViewContext, _: miru.Button) -> None:
        caller = await self.services.caller(context.interaction)
        caller.require(Capability.CORRECT)
        reply, part = await _reply_of_message(self.services, int(context.message.id), caller)
        modal = correction_modal_for(self.services, reply, part)
        await context.respond_with_modal(modal)
        context.client.start_modal(modal)


class FeedbackModal(HzModal):
    """A 1-5 rating with free text, about one reply or about the bot in general."""

    def __init__(self, services: Services, reply: BotReply | None) -> None:
        super().__init__(
            "Feedback on this reply" if reply is not None else "Feedback",
            custom_id=build_key(Key.FEEDBACK_MODAL, reply.id if reply is not None else 0),
            timeout=900,
        )
        self.services = services
        self.reply = reply
        self.rating: miru.TextInput = miru.TextInput(
            label="Rating from 1 (bad) to 5 (great)",
            placeholder="5",
            required=True,
            min_length=1,
            max_length=1,
            custom_id="rating",
        )
        self.comment: miru.TextInput = miru.TextInput(
            label="What was good or wrong?",
            style=hikari.TextInputStyle.PARAGRAPH,
            required=False,
            max_length=TEXT_INPUT_LIMIT,
            custom_id="comment",
        )
        self.add_item(self.rating)
        self.add_item(self.comment)

    async def callback(self, context: miru.ModalContext) -> None:
        caller = await self.services.caller(context.interaction)
        caller.require(Capability.FEEDBACK)
        raw = (self.rating.value or "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= 5:
            raise InvalidInputError(f"The rating must be a whole number from 1 to 5, not “{raw}”. Nothing was stored.")
        await self.services.feedback.add_rating(
            author_id=caller.user_id,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            rating=int(raw),
            comment=(self.comment.value or "").strip() or None,
            reply=self.reply,
        )
        await context.respond(f"Thanks! Feedback stored ({raw}/5).", flags=EPHEMERAL)
