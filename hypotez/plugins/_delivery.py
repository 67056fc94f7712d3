"""Delivering a model's answer to Discord: streamed edits, long replies split or attached, and the reply stored
once it was delivered — an empty answer or a failed backend too (outcome ``empty`` / ``failed``), shown as such
with the usual buttons so members can write the answer the model could not give."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import hikari

from hypotez.ml.assistant import EMPTY, outcome_of
from hypotez.plugins._errors import describe_error
from hypotez.storage.repositories import MessagePart
from hypotez.text import MESSAGE_LIMIT, split_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.ml.assistant import Assistant, PreparedChat
    from hypotez.ml.chat import ChatResult
    from hypotez.storage.models import BotReply

__all__ = [
    "EMPTY_TEXT",
    "FAILED_TEXT",
    "NO_MENTIONS",
    "ChannelTarget",
    "FooterMode",
    "InteractionTarget",
    "ReplyTarget",
    "deliver",
    "reply_footer",
]

#: What the line under a reply says: nothing, the model that answered, or the model, tokens and seconds.
FooterMode = Literal["off", "model", "usage"]

#: A model's answer pings nobody, whatever it says (``@everyone``, ``<@id>``, ``<@&role>``).
NO_MENTIONS: Final[dict[str, Any]] = {"user_mentions": False, "role_mentions": False, "mentions_everyone": False}
#: Longer replies than this many messages are attached as a file with a preview instead.
MAX_PARTS = 4
PREVIEW_CHARS = 1500
#: What a reply the model gave no answer in says (under it, the usual buttons: ✏️ Correct opens an empty box).
EMPTY_TEXT = "The model gave no answer. You can write the answer it should have given: ✏️ Correct"
#: What a reply says when the model service failed (why, in plain words, goes to the member alone if it can).
FAILED_TEXT = "⚠️ The model could not answer this time. You can write the answer it should have given: ✏️ Correct"


class ReplyTarget(Protocol):
    """Where an answer goes: an interaction's response, or a reply in a channel."""

    ephemeral: bool

    async def show(self, text: str) -> None:
        """Show the answer so far (while streaming)."""
        ...

    async def send_parts(
        self,
        parts: Sequence[str],
        components: Sequence[hikari.api.ComponentBuilder],
        attachment: hikari.Resourceish | None = None,
    ) -> list[int]:
        """Post the final answer (the last part carries ``components``); returns the message ids in order."""
        ...

    async def fail(self, message: str) -> None:
        """Replace the in-progress answer with an error that only the member sees (where possible)."""
        ...

    @property
    def whispers(self) -> bool:
        """Whether :meth:`whisper` tells the member alone (the answer is public, and only they asked)."""
        ...

    async def whisper(self, message: str) -> None:
        """Tell the member something that only they see, beside the answer."""
        ...


class InteractionTarget:
    """The deferred response of a slash command or a button, plus follow-ups."""

    def __init__(
        self, interaction: hikari.CommandInteraction | hikari.ComponentInteraction, *, ephemeral: bool
    ) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral

    async def show(self, text: str) -> None:
        await self.interaction.edit_initial_response(text, **NO_MENTIONS)

    async def send_parts(
        self,
        parts: Sequence[str],
        components: Sequence[hikari.api.ComponentBuilder],
        attachment: hikari.Resourceish | None = None,
    ) -> list[int]:
        last = len(parts) - 1
        first = await self.interaction.edit_initial_response(
            parts[0],
            components=components if last == 0 else hikari.UNDEFINED,
            attachment=attachment if attachment is not None else hikari.UNDEFINED,
            **NO_MENTIONS,
        )
        ids = [int(first.id)]
        flags = hikari.MessageFlag.EPHEMERAL if self.ephemeral else hikari.MessageFlag.NONE
        for index, part in enumerate(parts[1:], start=1):
            message = await self.interaction.execute(
                part, flags=flags, components=components if index == last else hikari.UNDEFINED, **NO_MENTIONS
            )
            ids.append(int(message.id))
        return ids

    @property
    def whispers(self) -> bool:
        return not self.ephemeral

    async def whisper(self, message: str) -> None:
        await self.interaction.execute(message, flags=hikari.MessageFlag.EPHEMERAL, **NO_MENTIONS)

    async def fail(self, message: str) -> None:
        if self.ephemeral:
            await self.interaction.edit_initial_response(message)
            return
        await self.interaction.delete_initial_response()
        await self.interaction.execute(message, flags=hikari.MessageFlag.EPHEMERAL)


class ChannelTarget:
    """A reply to a member's message in a channel (gateway mode: a member replied to the bot)."""

    ephemeral = False

    def __init__(self, rest: hikari.api.RESTClient, channel_id: int, reply_to: int) -> None:
        self.rest = rest
        self.channel_id = channel_id
        self.reply_to = reply_to
        self._placeholder: hikari.Message | None = None

    async def show(self, text: str) -> None:
        if self._placeholder is None:
            self._placeholder = await self.rest.create_message(
                self.channel_id,
                text,
                reply=self.reply_to,
                user_mentions=False,
                role_mentions=False,
                mentions_everyone=False,
            )
        else:
            self._placeholder = await self.rest.edit_message(self.channel_id, self._placeholder, text)

    async def send_parts(
        self,
        parts: Sequence[str],
        components: Sequence[hikari.api.ComponentBuilder],
        attachment: hikari.Resourceish | None = None,
    ) -> list[int]:
        last = len(parts) - 1
        extra: dict[str, Any] = {"attachment": attachment} if attachment is not None else {}
        first_components = components if last == 0 else hikari.UNDEFINED
        if self._placeholder is None:
            first = await self.rest.create_message(
                self.channel_id,
                parts[0],
                reply=self.reply_to,
                user_mentions=False,
                role_mentions=False,
                mentions_everyone=False,
                components=first_components,
                **extra,
            )
        else:
            first = await self.rest.edit_message(
                self.channel_id, self._placeholder, parts[0], components=first_components, **extra
            )
        ids = [int(first.id)]
        for index, part in enumerate(parts[1:], start=1):
            message = await self.rest.create_message(
                self.channel_id, part, components=components if index == last else hikari.UNDEFINED, **NO_MENTIONS
            )
            ids.append(int(message.id))
        return ids

    @property
    def whispers(self) -> bool:
        return False  # a channel reply has no message only its author sees

    async def whisper(self, message: str) -> None:
        await self.rest.create_message(
            self.channel_id, message, reply=self.reply_to, user_mentions=False, role_mentions=False,
            mentions_everyone=False,
        )  # fmt: skip

    async def fail(self, message: str) -> None:
        if self._placeholder is not None:
            await self.rest.delete_message(self.channel_id, self._placeholder)
            self._placeholder = None
        await self.rest.create_message(
            self.channel_id,
            message,
            reply=self.reply_to,
            user_mentions=False,
            role_mentions=False,
            mentions_everyone=False,
        )


def streaming_preview(text: str) -> str:
    """What a message shows while the answer streams in (never over Discord's limit)."""
    if len(text) < MESSAGE_LIMIT - 20:
        return text + " ▌"
    return text[: MESSAGE_LIMIT - 40].rstrip() + " … (continues)"


def reply_footer(label: str, result: ChatResult, mode: FooterMode) -> str:
    """The small line under a reply (``-# ...``, Discord's subtext): which model answered and, in ``usage``
    mode, the tokens it used and how long it took.  Empty in ``off`` mode.  Never part of the stored reply."""
    if mode == "off":
        return ""
    bits = [label.replace("\n", " ")[:100]]
    if mode == "usage":
        if result.prompt_tokens is not None or result.completion_tokens is not None:
            tokens = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
            bits.append(f"{tokens:,} tokens")
        bits.append(f"{result.latency_ms / 1000:.1f} s")
    return "-# " + " · ".join(bits)


def _with_footer(part: str, footer: str) -> str:
    return f"{part}\n{footer}" if footer else part


async def deliver(
    assistant: Assistant,
    prepared: PreparedChat,
    target: ReplyTarget,
    components: Sequence[hikari.api.ComponentBuilder],
    *,
    stream_interval: float,
    interaction_id: int | None = None,
    footer: FooterMode = "off",
) -> BotReply | None:
    """Ask the model, stream into ``target``, post the final answer and store it.

    Returns the stored reply when the model answered.  When it answered nothing, or the backend failed, the
    member is shown that, with ``components`` (the usual reply buttons), and invited to write the answer it
    should have given; the reply is stored all the same (outcome ``empty`` or ``failed``) so that ✏️ Correct
    and "Correct this reply" work on it, and ``None`` is returned: there is no answer to speak or continue.

    ``footer`` adds a line under the answer naming the model (see :func:`reply_footer`); the stored reply is
    the answer alone.
    """
    last_edit = started = time.monotonic()

    async def on_text(text: str) -> None:
        nonlocal last_edit
        now = time.monotonic()
        if now - last_edit < stream_interval:
            return
        last_edit = now
        await target.show(streaming_preview(text))

    try:
        result = await assistant.answer(prepared, on_text=on_text)
    except Exception as exc:
        reason = describe_error(exc, where=f"chat with {prepared.model}")
        latency_ms = int((time.monotonic() - started) * 1000)
        if target.whispers:
            # The channel sees that there is no answer; only the member sees why.
            ids = await target.send_parts([FAILED_TEXT], components)
            await target.whisper(reason)
        else:
            ids = await target.send_parts([f"{FAILED_TEXT}\n-# {reason}"], components)
        await assistant.record_failure(
            prepared,
            [MessagePart(ids[0], 0, 0)],
            latency_ms=latency_ms,
            interaction_id=interaction_id,
            private=target.ephemeral,
        )
        return None

    note = reply_footer(assistant.label(result.model or prepared.model), result, footer)
    if outcome_of(result) == EMPTY:
        ids = await target.send_parts([_with_footer(EMPTY_TEXT, note)], components)
        await assistant.record(
            prepared,
            result,
            [MessagePart(ids[0], 0, len(result.content))],
            interaction_id=interaction_id,
            private=target.ephemeral,
        )
        return None

    content = result.content
    # The footer goes under the last part: every part leaves room for it.
    spans = split_text(content, MESSAGE_LIMIT - (len(note) + 1 if note else 0))
    if len(spans) <= MAX_PARTS:
        texts = [content[a:b] for a, b in spans]
        texts[-1] = _with_footer(texts[-1], note)
        ids = await target.send_parts(texts, components)
        parts = [MessagePart(message_id, a, b) for message_id, (a, b) in zip(ids, spans, strict=True)]
        delivery = "messages"
    else:
        preview = (
            content[:PREVIEW_CHARS].rstrip()
            + f"\n\n… the full reply ({len(content):,} characters) is attached as `reply.md`."
        )
        preview = _with_footer(preview, note)
        ids = await target.send_parts(
            [preview], components, attachment=hikari.Bytes(content.encode("utf-8"), "reply.md")
        )
        parts = [MessagePart(ids[0], 0, len(content))]
        delivery = "file"
    return await assistant.record(
        prepared, result, parts, interaction_id=interaction_id, delivery=delivery, private=target.ephemeral
    )
