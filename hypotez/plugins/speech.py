"""Text to speech and voice channels (the original ``text_to_speech_and_play``, edge-tts instead of gTTS): ``/say``,
``/voice join|leave|settings``, leaving when the channel empties."""

from __future__ import annotations

import logging

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import bounded
from hypotez.plugins._checks import EVERYWHERE, IN_SERVERS, require, require_in_server
from hypotez.plugins._cooldowns import cooldown
from hypotez.plugins._listeners import gateway_listener
from hypotez.storage.repositories import AuditLog, GuildSettingsRepository
from hypotez.voice.transport.base import MISSING_PERMISSIONS_MESSAGE
from hypotez.voice.transport.sessions import VoiceSessions
from hypotez.voice.tts import Speaker

loader = lightbulb.Loader()
_LOGGER = logging.getLogger(__name__)

_NEEDED = hikari.Permissions.CONNECT | hikari.Permissions.SPEAK


@bounded
async def voice_autocomplete(ctx: lightbulb.AutocompleteContext[str], speaker: Speaker = lightbulb.di.INJECTED) -> None:
    typed = str(ctx.focused.value or "")
    found = speaker.find_voices(typed, limit=25)
    await ctx.respond(
        [
            hikari.impl.AutocompleteChoiceBuilder(
                name=f"{v.display_name} ({v.locale}, {v.gender})"[:100], value=v.short_name
            )
            for v in found
        ]
    )


def _member_voice_channel(ctx: lightbulb.Context) -> int | None:
    """The voice channel the member is in, from the gateway's voice-state cache (``None`` in HTTP mode)."""
    app = ctx.client.app
    if ctx.guild_id is None or not isinstance(app, hikari.GatewayBot):
        return None
    state = app.cache.get_voice_state(ctx.guild_id, ctx.user.id)
    return int(state.channel_id) if state is not None and state.channel_id is not None else None


def _check_permissions(ctx: lightbulb.Context, channel_id: int) -> None:
    """Refuse to join where the bot lacks Connect or Speak (computed from the cache: roles and overwrites)."""
    app = ctx.client.app
    if ctx.guild_id is None or not isinstance(app, hikari.GatewayBot):
        return
    me = app.get_me()
    guild = app.cache.get_guild(ctx.guild_id)
    channel = app.cache.get_guild_channel(channel_id)
    member = app.cache.get_member(ctx.guild_id, me.id) if me is not None else None
    if guild is None or channel is None or member is None:
        return  # not cached: Discord's own refusal (close code / no voice server) is reported instead
    if not isinstance(channel, hikari.GuildVoiceChannel | hikari.GuildStageChannel):
        raise InvalidInputError(f"<#{channel_id}> is not a voice channel.")
    permissions = _permissions_in(guild, member, channel)
    if not permissions & hikari.Permissions.ADMINISTRATOR and (permissions & _NEEDED) != _NEEDED:
        raise InvalidInputError(MISSING_PERMISSIONS_MESSAGE)


def _permissions_in(
    guild: hikari.GatewayGuild, member: hikari.Member, channel: hikari.PermissibleGuildChannel
) -> hikari.Permissions:
    """Discord's permission computation: base from roles, then the channel's @everyone, role and member
    overwrites."""
    if guild.owner_id == member.id:
        return hikari.Permissions.all_permissions()
    roles = {role.id: role for role in member.get_roles()}
    everyone = guild.get_role(guild.id)
    base = everyone.permissions if everyone is not None else hikari.Permissions.NONE
    for role in roles.values():
        base |= role.permissions
    if base & hikari.Permissions.ADMINISTRATOR:
        return hikari.Permissions.all_permissions()
    overwrites = channel.permission_overwrites
    if (everyone_ow := overwrites.get(guild.id)) is not None:
        base = (base & ~everyone_ow.deny) | everyone_ow.allow
    allow = deny = hikari.Permissions.NONE
    for role_id in roles:
        if (ow := overwrites.get(role_id)) is not None:
            allow |= ow.allow
            deny |= ow.deny
    base = (base & ~deny) | allow
    if (member_ow := overwrites.get(member.id)) is not None:
        base = (base & ~member_ow.deny) | member_ow.allow
    return base


@loader.command
class Say(
    lightbulb.SlashCommand,
    name="say",
    description="Speak a text: in your voice channel when I can join it, else as an audio file",
    hooks=[require(Capability.VOICE), cooldown("say")],
    **EVERYWHERE,
):
    text = lightbulb.string("text", "What to say", min_length=1, max_length=1000)
    voice = lightbulb.string("voice", "Which voice (default: the bot's)", default=None, autocomplete=voice_autocomplete)
    rate = lightbulb.string("rate", "Speed, e.g. +20% or -10%", default=None, max_length=8)
    pitch = lightbulb.string("pitch", "Pitch, e.g. +5Hz or -10Hz", default=None, max_length=8)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, speaker: Speaker, sessions: VoiceSessions) -> None:
        await ctx.defer(ephemeral=True)
        speech = await speaker.speak(self.text, voice=self.voice, rate=self.rate, pitch=self.pitch)
        note = f"\n-# {speech.fallback_reason}" if speech.fallback_reason else ""
        channel = _member_voice_channel(ctx)
        if caller.guild_id is not None and channel is not None and sessions.port.capabilities.can_connect:
            if sessions.channel_of(caller.guild_id) != channel:
                _check_permissions(ctx, channel)
                await sessions.join(caller.guild_id, channel)
            position = await sessions.enqueue(caller.guild_id, speech.clip)
            queued = "" if position <= 1 else f" (number {position} in the queue)"
            await ctx.respond(f"🔊 Speaking in <#{channel}>{queued}.{note}", ephemeral=True)
            return
        clip = speech.clip
        await ctx.respond(
            f"🔊 Here it is ({clip.duration_s:.1f} s).{note}",
            attachment=hikari.Bytes(clip.data, clip.filename, mimetype=clip.mime_type),
            ephemeral=True,
        )


voice = lightbulb.Group("voice", "The bot in voice channels", **IN_SERVERS)


@voice.register
class VoiceJoin(
    lightbulb.SlashCommand, name="join", description="Join your voice channel (or the one given)",
    hooks=[require_in_server(Capability.VOICE)],
):  # fmt: skip
    channel = lightbulb.channel(
        "channel",
        "The voice channel (default: yours)",
        channel_types=[hikari.ChannelType.GUILD_VOICE, hikari.ChannelType.GUILD_STAGE],
        default=None,
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, sessions: VoiceSessions, audit: AuditLog) -> None:
        assert caller.guild_id is not None
        target = int(self.channel.id) if self.channel is not None else _member_voice_channel(ctx)
        if target is None:
            raise InvalidInputError("Join a voice channel first, or name one: `/voice join channel:<channel>`.")
        if not sessions.port.capabilities.can_connect:
            raise InvalidInputError(
                "This bot cannot join voice channels (voice is off, or it runs in HTTP interactions mode)."
            )
        _check_permissions(ctx, target)
        await ctx.defer(ephemeral=True)
        await sessions.join(caller.guild_id, target)
        await audit.record("voice.join", guild_id=caller.guild_id, actor_id=caller.user_id, target=f"channel:{target}")
        await ctx.respond(f"🔊 Joined <#{target}>.", ephemeral=True)


@voice.register
class VoiceLeave(
    lightbulb.SlashCommand, name="leave", description="Leave the voice channel",
    hooks=[require_in_server(Capability.VOICE)],
):  # fmt: skip
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, sessions: VoiceSessions, audit: AuditLog) -> None:
        assert caller.guild_id is not None
        channel = sessions.channel_of(caller.guild_id)
        if channel is None:
            await ctx.respond("I am not in a voice channel here.", ephemeral=True)
            return
        await sessions.leave(caller.guild_id)
        await audit.record(
            "voice.leave", guild_id=caller.guild_id, actor_id=caller.user_id, target=f"channel:{channel}"
        )
        await ctx.respond(f"Left <#{channel}>.", ephemeral=True)


def _flag(value: bool | None) -> str:
    return "on" if value else "off"


@voice.register
class VoiceSettings(
    lightbulb.SlashCommand, name="settings",
    description="Voice messages here: transcribe them, answer them, speak chat replies",
    hooks=[require_in_server(Capability.ADMIN)],
):  # fmt: skip
    transcribe = lightbulb.boolean("transcribe", "Transcribe voice messages automatically", default=None)
    answer = lightbulb.boolean("answer", "Let the model answer transcribed voice messages", default=None)
    speak = lightbulb.boolean("speak", "Also speak chat replies in my voice channel", default=None)
    server = lightbulb.boolean("server", "For the whole server (default: this channel only)", default=False)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, guild_settings: GuildSettingsRepository, audit: AuditLog
    ) -> None:
        assert caller.guild_id is not None
        scope = 0 if self.server else caller.channel_id
        changes = {
            key: value
            for key, value in (
                ("voice_transcribe", self.transcribe),
                ("voice_answer", self.answer),
                ("voice_speak", self.speak),
            )
            if value is not None
        }
        if changes:
            await guild_settings.update(caller.guild_id, scope, **changes)
            await audit.record(
                "voice.settings", guild_id=caller.guild_id, actor_id=caller.user_id, target=f"channel:{scope}",
                details=changes,
            )  # fmt: skip
        here = await guild_settings.effective(caller.guild_id, caller.channel_id)
        await ctx.respond(
            ("Saved. " if changes else "")
            + f"In this channel: transcribe voice messages **{_flag(here.voice_transcribe)}**, answer them "
            f"**{_flag(here.voice_answer)}**, speak chat replies **{_flag(here.voice_speak)}**.",
            ephemeral=True,
        )


loader.command(voice)


@gateway_listener(loader, hikari.VoiceStateUpdateEvent)
async def on_voice_state(event: hikari.VoiceStateUpdateEvent, sessions: VoiceSessions) -> None:
    """Leave at once when no one but bots is left in the bot's voice channel."""
    guild_id = int(event.guild_id)
    channel = sessions.channel_of(guild_id)
    if channel is None:
        return
    app = event.app
    if not isinstance(app, hikari.GatewayBot):
        return
    states = app.cache.get_voice_states_view_for_channel(guild_id, channel)
    humans = [s for s in states.values() if s.member is None or not s.member.is_bot]
    if not humans:
        await sessions.channel_emptied(guild_id)
