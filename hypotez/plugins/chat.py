"""``/chat`` (the original ``send_message``), conversations that continue, and ``/prompt``."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._attachments import image_urls, is_image
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import EVERYWHERE, IN_SERVERS, require
from hypotez.plugins._cooldowns import CooldownKind, check_cooldown, cooldown
from hypotez.plugins._delivery import ChannelTarget, InteractionTarget, deliver
from hypotez.plugins._errors import describe_error
from hypotez.plugins._listeners import message_listener
from hypotez.plugins._replies import reply_actions_row
from hypotez.plugins._voice import speak_reply
from hypotez.storage import Database
from hypotez.storage.models import utcnow
from hypotez.storage.repositories import (
    AuditLog,
    CooldownRepository,
    GuildSettingsRepository,
    PreferenceRepository,
    ReplyRepository,
)
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
    private = lightbulb.boolean("private", "Only you see the answer (default: your /preferences)", default=None)
    thread = lightbulb.boolean("thread", "Continue the conversation in a new thread", default=False)
    speak = lightbulb.boolean("speak", "Also speak the answer in my voice channel", default=False)
    image = lightbulb.attachment("image", "An image for the model to see (models that take images)", default=None)

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
        preferences: PreferenceRepository,
    ) -> None:
        private = self.private
        if private is None:
            private = bool((await preferences.get(caller.user_id)).private_replies)
        await ctx.defer(ephemeral=private)
        images = await image_urls([self.image], settings) if self.image is not None else []
        prepared = await assistant.prepare(
            self.message,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            author_id=caller.user_id,
            parent=await _thread_parent(ctx, caller, replies, private=private),
            model=self.model,
            here=caller.here,
            images=images,
        )
        reply = await deliver(
            assistant,
            prepared,
            InteractionTarget(ctx.interaction, ephemeral=private),
            [reply_actions_row()],
            stream_interval=settings.chat_stream_interval,
            interaction_id=int(ctx.interaction.id),
            footer=settings.chat_footer,
        )
        if reply is not None and self.thread and not private and caller.guild_id is not None:
            await _open_thread(ctx, reply)
        spoken_here = caller.here.voice_speak and caller.guild_id is not None and sessions.channel_of(caller.guild_id)
        if reply is not None and not private and (self.speak or spoken_here):
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


#: A mention of a user (the bot) in message text: ``<@id>`` or the older ``<@!id>``.
_MENTION = re.compile(r"<@!?(\d+)>")


def strip_mention(text: str, bot_id: int) -> str:
    """The message without the mentions of the bot (``@hypotez what is...`` asks "what is...")."""
    return _MENTION.sub(lambda m: "" if int(m.group(1)) == bot_id else m.group(0), text).strip()


class ThreadOwners:
    """Who owns each thread a message arrived in, asked of Discord once per thread (``None``: not a thread).

    Which channel is a thread, and who opened it, never changes, so remembering it is safe on any replica.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._owners: OrderedDict[int, int | None] = OrderedDict()
        self._limit = limit

    async def owner(self, rest: hikari.api.RESTClient, channel_id: int) -> int | None:
        if channel_id in self._owners:
            self._owners.move_to_end(channel_id)
            return self._owners[channel_id]
        try:
            channel = await rest.fetch_channel(channel_id)
        except hikari.HikariError as exc:
            _LOGGER.debug("could not read channel %s: %s", channel_id, exc)
            return None  # not remembered: it may be readable next time
        owner = int(channel.owner_id) if isinstance(channel, hikari.GuildThreadChannel) else None
        self._owners[channel_id] = owner
        if len(self._owners) > self._limit:
            self._owners.popitem(last=False)
        return owner


_THREAD_OWNERS = ThreadOwners()


@dataclass(frozen=True, slots=True)
class Addressed:
    """A message meant for the bot: what it asks, the conversation it continues (``None``: a new one), and
    whether the member asked the bot directly (a mention or a DM: they get told when they may not chat)."""

    text: str
    parent: BotReply | None
    direct: bool


async def addressed_to_bot(
    message: hikari.Message,
    *,
    bot_id: int,
    caller: Caller,
    replies: ReplyRepository,
    settings: Settings,
    rest: hikari.api.RESTClient,
    owners: ThreadOwners = _THREAD_OWNERS,
) -> Addressed | None:
    """Whether (and how) the bot answers ``message``; ``None`` when the message is not for it.

    In order: a reply to one of the bot's (public) replies continues that conversation; in a thread the bot
    opened, every message continues the thread's conversation; a mention of the bot starts a conversation; in
    a direct message, a message within ``chat_dm_idle_minutes`` of the bot's last reply to this member continues
    it, a later one starts anew.  Messages of bots and webhooks, and empty ones, are never answered.  Needs the
    MESSAGE_CONTENT intent for replies and threads (mentions and DMs carry their text without it).
    """
    text = strip_mention(message.content or "", bot_id)
    pictured = any(is_image(a) for a in message.attachments)
    if message.author.is_bot or message.webhook_id is not None or not (text or pictured):
        return None
    mentions = message.user_mentions_ids
    mentioned = mentions is not hikari.UNDEFINED and bot_id in mentions
    replied_to = await _replied_to(message, caller, replies)
    if replied_to is not None:
        # A private reply is never continued in public.
        return None if replied_to.private else Addressed(text, replied_to, direct=mentioned)
    if caller.guild_id is None:
        recent = await replies.recent_for_author(caller.channel_id, caller.user_id, limit=1)
        idle = dt.timedelta(minutes=settings.chat_dm_idle_minutes)
        parent = recent[0] if recent and utcnow() - recent[0].created_at <= idle else None
        return Addressed(text, parent, direct=True)
    if await owners.owner(rest, caller.channel_id) == bot_id:
        parent = await replies.latest_in_thread(caller.channel_id, guild_id=caller.guild_id, user_id=caller.user_id)
        return Addressed(text, parent, direct=mentioned)
    if mentioned:
        return Addressed(text, None, direct=True)
    return None


async def _replied_to(message: hikari.Message, caller: Caller, replies: ReplyRepository) -> BotReply | None:
    """The stored reply of the bot's that ``message`` replies to, if any (in the caller's server and channel)."""
    reference = message.message_reference
    if reference is None or reference.id is None:
        return None
    found = await replies.by_message(
        int(reference.id), guild_id=caller.guild_id, user_id=caller.user_id, channel_id=caller.channel_id
    )
    return found[0] if found is not None else None


async def answer_message(
    message: hikari.Message,
    *,
    bot_id: int,
    caller: Caller,
    replies: ReplyRepository,
    assistant: Assistant,
    settings: Settings,
    rest: hikari.api.RESTClient,
    db: Database,
    owners: ThreadOwners = _THREAD_OWNERS,
) -> BotReply | None:
    """Answer a message meant for the bot (see :func:`addressed_to_bot`) in the channel, as a reply to it.

    Returns the new reply, or ``None`` when the message was not for the bot or got no answer.  A member without
    the chat capability, or over the chat cooldown, is told so when they asked directly; otherwise ignored.
    """
    addressed = await addressed_to_bot(
        message, bot_id=bot_id, caller=caller, replies=replies, settings=settings, rest=rest, owners=owners
    )
    if addressed is None:
        return None
    target = ChannelTarget(rest, int(message.channel_id), int(message.id))
    if not caller.can(Capability.CHAT):
        if addressed.direct:
            await target.fail("You may not chat with the model here.")
        return None
    try:
        await check_cooldown(CooldownKind.CHAT, caller, settings, CooldownRepository(db))
        pictures = [a for a in message.attachments if is_image(a)]
        prepared = await assistant.prepare(
            addressed.text,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            author_id=caller.user_id,
            parent=addressed.parent,
            here=caller.here,
            images=await image_urls(pictures, settings) if pictures else (),
        )
    except Exception as exc:  # the member gets an answer either way; unexpected errors are logged
        await target.fail(describe_error(exc, where="message to the bot"))
        return None
    return await deliver(
        assistant,
        prepared,
        target,
        [reply_actions_row()],
        stream_interval=settings.chat_stream_interval,
        footer=settings.chat_footer,
    )


@message_listener(loader)
async def on_message(
    message: hikari.Message,
    caller: Caller,
    replies: ReplyRepository,
    assistant: Assistant,
    settings: Settings,
    bot: hikari.GatewayBot,
    db: Database,
) -> None:
    """(Gateway only) messages meant for the bot: replies to it, messages in its threads, mentions and DMs."""
    me = bot.get_me()  # the cache has the bot's own user once READY arrived
    if me is None:
        try:
            me = await bot.rest.fetch_my_user()
        except hikari.HikariError as exc:
            _LOGGER.warning("a message arrived before the bot knew who it is: %s", exc)
            return
    await answer_message(
        message,
        bot_id=int(me.id),
        caller=caller,
        replies=replies,
        assistant=assistant,
        settings=settings,
        rest=bot.rest,
        db=db,
    )
