"""``/chat`` (the original ``send_message``), conversations that continue, and ``/prompt``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import EVERYWHERE, IN_SERVERS, require
from hypotez.plugins._cooldowns import cooldown
from hypotez.plugins._delivery import ChannelTarget, InteractionTarget, deliver
from hypotez.plugins._errors import describe_error
from hypotez.plugins._listeners import message_listener
from hypotez.plugins._replies import reply_actions_row
from hypotez.plugins._voice import speak_reply
from hypotez.storage.repositories import AuditLog, GuildSettingsRepository, ReplyRepository
from hypotez.voice.transport.sessions import VoiceSessions
from hypotez.voice.tts import Speaker

if TYPE_CHECKING:
    from hypotez.storage.models import BotReply

loader = lightbulb.Loader()
_LOGGER = logging.getLogger(__name__)

THREAD_TYPES = frozenset({hikari.ChannelType.GUILD_PUBLIC_THREAD, hikari.ChannelType.GUILD_PRIVATE_THREAD})


async def _thread_parent(
    ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository, *, private: bool
) -> BotReply | None:
    """In a thread, ``/chat`` continues the conversation the thread holds.

    A thread opened on a message has that message's id, so a thread the bot opened on a reply leads back to it.
    Only the caller's server's replies continue, and only public ones: a private turn (``/chat private:true``)
    is no one else's context — it continues only in its author's own private turns.
    """
    if ctx.interaction.channel.type not in THREAD_TYPES or caller.guild_id is None:
        return None
    return await replies.latest_in_thread(
        int(ctx.channel_id), guild_id=caller.guild_id, user_id=caller.user_id, private=private
    )


@loader.command
class Chat(
    lightbulb.SlashCommand,
    name="chat",
    description="Talk with the model",
    hooks=[require(Capability.CHAT), cooldown("chat")],
    **EVERYWHERE,
):
    message = lightbulb.string("message", "What to say", min_length=1, max_length=4000)
    model = lightbulb.string(
        "model", "Which model answers (default: this channel's)", default=None, autocomplete=model_autocomplete
    )
    private = lightbulb.boolean("private", "Only you see the answer", default=False)
    thread = lightbulb.boolean("thread", "Continue the conversation in a new thread", default=False)
    speak = lightbulb.boolean("speak", "Also speak the answer in my voice channel", default=False)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        assistant: Assistant,
        replies: ReplyRepository,
        sessions: VoiceSessions,
        speaker: Speaker,
    ) -> None:
        await ctx.defer(ephemeral=self.private)
        prepared = await assistant.prepare(
            self.message,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            author_id=caller.user_id,
            parent=await _thread_parent(ctx, caller, replies, private=self.private),
            model=self.model,
            here=caller.here,
        )
        reply = await deliver(
            assistant,
            prepared,
            InteractionTarget(ctx.interaction, ephemeral=self.private),
            [reply_actions_row()],
            stream_interval=settings.chat_stream_interval,
            interaction_id=int(ctx.interaction.id),
        )
        if reply is not None and self.thread and not self.private and caller.guild_id is not None:
            await _open_thread(ctx, reply)
        spoken_here = caller.here.voice_speak and caller.guild_id is not None and sessions.channel_of(caller.guild_id)
        if reply is not None and not self.private and (self.speak or spoken_here):
            if not settings.voice_enabled:
                note: str | None = "Voice is turned off on this bot, so the answer was not spoken."
            else:
                note = await speak_reply(sessions, speaker, caller.guild_id, reply.content, settings)
            if note and self.speak:
                await ctx.respond(f"🔇 {note}", ephemeral=True)


async def _open_thread(ctx: lightbulb.Context, reply: BotReply) -> None:
    """Start a thread on the reply; ``/chat`` inside it continues this conversation."""
    assert reply.message_id is not None
    name = reply.user_text.strip().splitlines()[0][:90] or "Conversation"
    try:
        await ctx.client.rest.create_message_thread(ctx.channel_id, reply.message_id, name)
    except hikari.HikariError as exc:
        _LOGGER.warning("could not open a thread for reply %s: %s", reply.id, exc)
        await ctx.respond("I could not open a thread here (missing permission?).", ephemeral=True)


prompt = lightbulb.Group("prompt", "The system prompt for this server or channel", **IN_SERVERS)


async def _store_prompt(
    caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog, text: str | None, *, channel: bool
) -> None:
    """Set (or clear, with ``None``) the server's or the channel's system prompt, and audit it."""
    if caller.guild_id is None:
        raise InvalidInputError("System prompts are set per server; use this command in a server.")
    scope = caller.channel_id if channel else 0
    await guild_settings.update(caller.guild_id, scope, system_prompt=text)
    await audit.record(
        "prompt.set" if text is not None else "prompt.clear",
        guild_id=caller.guild_id,
        actor_id=caller.user_id,
        target=f"channel:{scope}",
    )


@prompt.register
class PromptSet(
    lightbulb.SlashCommand, name="set", description="Set the system prompt", hooks=[require(Capability.TRAIN)]
):
    text = lightbulb.string("text", "The system prompt", min_length=1, max_length=4000)
    channel = lightbulb.boolean("channel", "Only for this channel (default: the whole server)", default=False)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog
    ) -> None:
        await _store_prompt(caller, guild_settings, audit, self.text, channel=self.channel)
        where = "this channel" if self.channel else "this server"
        await ctx.respond(f"System prompt for {where} set ({len(self.text):,} characters).", ephemeral=True)


@prompt.register
class PromptShow(
    lightbulb.SlashCommand,
    name="show",
    description="Show the system prompt in force here",
    hooks=[require(Capability.CHAT)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository) -> None:
        effective = await guild_settings.effective(caller.guild_id, caller.channel_id)
        if not effective.system_prompt:
            await ctx.respond("No system prompt is set here.", ephemeral=True)
            return
        text = effective.system_prompt
        if len(text) > 1900:
            await ctx.respond(
                "The system prompt in force here:", attachment=hikari.Bytes(text.encode(), "prompt.txt"), ephemeral=True
            )
        else:
            await ctx.respond(f"The system prompt in force here:\n>>> {text}", ephemeral=True)


@prompt.register
class PromptClear(
    lightbulb.SlashCommand, name="clear", description="Remove the system prompt", hooks=[require(Capability.TRAIN)]
):
    channel = lightbulb.boolean("channel", "Only this channel's (default: the server's)", default=False)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog
    ) -> None:
        await _store_prompt(caller, guild_settings, audit, None, channel=self.channel)
        await ctx.respond("System prompt removed.", ephemeral=True)


loader.command(prompt)


async def continue_conversation(
    message: hikari.Message,
    *,
    caller: Caller,
    replies: ReplyRepository,
    assistant: Assistant,
    settings: Settings,
    rest: hikari.api.RESTClient,
) -> BotReply | None:
    """A member replied to one of the bot's replies: answer with the earlier turns as context.

    Returns the new reply, or ``None`` when the message is not a reply to a stored reply (or has no text).
    Needs the MESSAGE_CONTENT intent: without it Discord sends the message with empty content.
    """
    reference = message.message_reference
    if reference is None or reference.id is None or message.author.is_bot:
        return None
    text = (message.content or "").strip()
    if not text:
        return None
    found = await replies.by_message(
        int(reference.id), guild_id=caller.guild_id, user_id=caller.user_id, channel_id=caller.channel_id
    )
    if found is None or found[0].private or not caller.can(Capability.CHAT):
        return None  # a private reply is never continued in public
    parent, _ = found
    target = ChannelTarget(rest, int(message.channel_id), int(message.id))
    try:
        prepared = await assistant.prepare(
            text,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            author_id=caller.user_id,
            parent=parent,
            here=caller.here,
        )
    except Exception as exc:  # the member gets an answer either way; unexpected errors are logged
        await target.fail(describe_error(exc, where="reply to the bot"))
        return None
    return await deliver(
        assistant, prepared, target, [reply_actions_row()], stream_interval=settings.chat_stream_interval
    )


@message_listener(loader)
async def on_message(
    message: hikari.Message,
    caller: Caller,
    replies: ReplyRepository,
    assistant: Assistant,
    settings: Settings,
    bot: hikari.GatewayBot,
) -> None:
    """(Gateway only) a reply to one of the bot's replies continues that conversation."""
    await continue_conversation(
        message, caller=caller, replies=replies, assistant=assistant, settings=settings, rest=bot.rest
    )
