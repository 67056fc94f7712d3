"""Speech to text (the original ``recognizer``, local instead of Google): "Transcribe" on a message, ``/transcribe``,
voice messages transcribed (and answered) automatically where a server turns it on, "Correct this transcript",
and the server's recognition vocabulary (``/vocabulary``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.keys import Key, ModalSigner, build_key
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import allowed, bounded, choices, matching
from hypotez.plugins._checks import EVERYWHERE, IN_SERVERS, require, require_in_server
from hypotez.plugins._components import (
    ComponentContext,
    ModalContext,
    button,
    button_row,
    handler,
    open_modal,
    text_input,
)
from hypotez.plugins._cooldowns import cooldown
from hypotez.plugins._deadlines import TOKEN_LIFETIME, finish, interaction_age
from hypotez.plugins._delivery import NO_MENTIONS, ChannelTarget, deliver
from hypotez.plugins._errors import describe_error
from hypotez.plugins._listeners import message_listener
from hypotez.plugins._replies import reply_actions_row
from hypotez.plugins._transcripts import owned_transcript, store_transcript_correction, transcript_on_message
from hypotez.plugins._voice import audio_attachments, download_audio, is_voice_message, speak_reply
from hypotez.storage.repositories import AuditLog, TranscriptRepository
from hypotez.voice.audio import format_duration
from hypotez.voice.stt import LANGUAGES, Transcriber
from hypotez.voice.subtitles import to_srt, to_vtt
from hypotez.voice.transcripts import Transcripts
from hypotez.voice.transport.sessions import VoiceSessions
from hypotez.voice.tts import Speaker

if TYPE_CHECKING:
    from hypotez.storage.models import Transcript
    from hypotez.voice.stt import Progress, Transcription

loader = lightbulb.Loader()
_LOGGER = logging.getLogger(__name__)

#: Longest transcript shown in the message itself; longer ones come as a file with a preview.
INLINE_CHARS = 1700
PREVIEW_CHARS = 900
#: Recordings at least this long get progress edits, at most one per interval.
PROGRESS_AFTER_S = 30.0
PROGRESS_INTERVAL_S = 5.0
#: Discord's limit on a text input's value.
TEXT_INPUT_LIMIT = 4000
_TEXT = "text"
FORMATS = {"text": "text", "srt (subtitles)": "srt", "vtt (web subtitles)": "vtt"}


# -- showing a transcript -------------------------------------------------------------------------------------------


def _language(result: Transcription) -> str:
    name = LANGUAGES.get(result.language, result.language)
    return f"{name} ({result.language_probability:.0%})" if result.language_probability < 0.995 else name


def render(row: Transcript, result: Transcription, *, fmt: str = "text") -> tuple[str, list[hikari.Bytes]]:
    """The message showing a transcript, and its files (the whole text when long; subtitles on request)."""
    header = f"🗣️ **Transcript** · {_language(result)} · {format_duration(result.duration_s)}"
    files: list[hikari.Bytes] = []
    text = result.text
    if len(text) > INLINE_CHARS:
        files.append(hikari.Bytes(text.encode(), f"transcript-{row.id}.txt"))
        body = text[:PREVIEW_CHARS].rstrip() + f"… ({len(text):,} characters: the whole text is attached)"
    else:
        body = text
    if fmt == "srt":
        files.append(hikari.Bytes(to_srt(result.segments).encode(), f"transcript-{row.id}.srt"))
    elif fmt == "vtt":
        files.append(hikari.Bytes(to_vtt(result.segments).encode(), f"transcript-{row.id}.vtt"))
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines()) or "> …"
    return f"{header}\n{quoted}", files


def transcript_row(transcript_id: int) -> hikari.api.MessageActionRowBuilder:
    return button_row(button(build_key(Key.TRANSCRIPT_CORRECT, transcript_id), label="Correct", emoji="✏️"))


class _ProgressEdits:
    """Edits the deferred answer with the share done and the time left, at most every few seconds."""

    def __init__(self, interaction: hikari.CommandInteraction, name: str) -> None:
        self._interaction = interaction
        self._name = name
        self._last = 0.0

    async def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.total_s < PROGRESS_AFTER_S or now - self._last < PROGRESS_INTERVAL_S or progress.share >= 1:
            return
        self._last = now
        left = "" if progress.eta_s is None else f", about {format_duration(progress.eta_s)} left"
        try:
            await self._interaction.edit_initial_response(f"⏳ Transcribing `{self._name}`: {progress.share:.0%}{left}")
        except hikari.HikariError as exc:  # progress is a courtesy; the answer still comes
            _LOGGER.debug("progress edit failed: %s", exc.__class__.__name__)


async def _answer(
    ctx: lightbulb.Context,
    transcripts: TranscriptRepository,
    row: Transcript,
    content: str,
    files: list[hikari.Bytes],
    *,
    ephemeral: bool,
) -> None:
    """The final answer (public unless asked otherwise), remembered as the message showing the transcript."""
    components = [transcript_row(row.id)]
    if interaction_age(ctx.interaction) < TOKEN_LIFETIME - 30:
        message = await ctx.interaction.edit_initial_response(
            content,
            attachments=files or hikari.UNDEFINED,
            components=components,
            **NO_MENTIONS,
        )
        if not ephemeral:
            await transcripts.set_reply_message(row.id, int(message.id))
        return
    await finish(ctx, content, attachments=files)


async def _transcribe_attachment(
    ctx: lightbulb.Context,
    attachment: hikari.Attachment,
    *,
    settings: Settings,
    service: Transcripts,
    caller: Caller,
    message: hikari.Message | None,
    language: str | None,
    fmt: str,
    ephemeral: bool,
    source: str,
) -> None:
    audio = await download_audio(attachment, settings)
    row, result = await service.transcribe(
        audio,
        filename=attachment.filename,
        guild_id=caller.guild_id,
        channel_id=caller.channel_id,
        message_id=int(message.id) if message is not None else None,
        attachment_id=int(attachment.id),
        author_id=int(message.author.id) if message is not None else caller.user_id,
        requested_by=caller.user_id,
        source=source,
        language=language,
        on_progress=_ProgressEdits(ctx.interaction, attachment.filename[:60]),
    )
    content, files = render(row, result, fmt=fmt)
    await _answer(ctx, service.repository, row, content, files, ephemeral=ephemeral)


def _language_option(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    code = value.strip().lower()
    if code in LANGUAGES:
        return code
    for known, name in LANGUAGES.items():
        if name.lower() == code:
            return known
    raise InvalidInputError(f"“{value[:40]}” is not a language whisper knows; pick one from the list.")


@bounded
async def language_autocomplete(
    ctx: lightbulb.AutocompleteContext[str], transcriber: Transcriber = lightbulb.di.INJECTED
) -> None:
    typed = str(ctx.focused.value or "").strip().lower()
    found = [
        hikari.impl.AutocompleteChoiceBuilder(name=f"{name} ({code})", value=code)
        for code, name in transcriber.languages()
        if not typed or typed in code or typed in name.lower()
    ]
    await ctx.respond(found[:25])


@loader.command
class TranscribeMessage(
    lightbulb.MessageCommand, name="Transcribe", hooks=[require(Capability.VOICE), cooldown("transcribe")], **EVERYWHERE
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, settings: Settings, service: Transcripts) -> None:
        found = audio_attachments(self.target.attachments)
        if not found:
            raise InvalidInputError("This message has no voice message or audio/video attachment to transcribe.")
        await ctx.defer()
        await _transcribe_attachment(
            ctx,
            found[0],
            settings=settings,
            service=service,
            caller=caller,
            message=self.target,
            language=None,
            fmt="text",
            ephemeral=False,
            source="menu",
        )


@loader.command
class Transcribe(
    lightbulb.SlashCommand,
    name="transcribe",
    description="Transcribe an audio or video file",
    hooks=[require(Capability.VOICE), cooldown("transcribe")],
    **EVERYWHERE,
):
    file = lightbulb.attachment("file", "The recording (ogg, mp3, wav, m4a, webm, mp4...)")
    language = lightbulb.string(
        "language", "Its language (default: detected)", default=None, autocomplete=language_autocomplete
    )
    format = lightbulb.string(
        "format",
        "Also attach subtitles with timestamps",
        default="text",
        choices=[lightbulb.Choice(n, v) for n, v in FORMATS.items()],
    )
    private = lightbulb.boolean("private", "Only you see the transcript", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, settings: Settings, service: Transcripts) -> None:
        if not audio_attachments([self.file]):
            raise InvalidInputError(
                f"`{self.file.filename[:100]}` is not an audio or video file (ogg, mp3, wav, m4a, webm, mp4...)."
            )
        language = _language_option(self.language)
        await ctx.defer(ephemeral=self.private)
        await _transcribe_attachment(
            ctx,
            self.file,
            settings=settings,
            service=service,
            caller=caller,
            message=None,
            language=language,
            fmt=self.format,
            ephemeral=self.private,
            source="command",
        )


# -- voice messages, automatically ---------------------------------------------------------------------------------


async def transcribe_voice_message(
    message: hikari.Message,
    *,
    caller: Caller,
    settings: Settings,
    service: Transcripts,
    rest: hikari.api.RESTClient,
    assistant: Assistant,
    sessions: VoiceSessions,
    speaker: Speaker,
) -> Transcript | None:
    """(Gateway) a voice message in a channel with automatic transcription on: reply with the transcript, and
    where answering is on too, let the model answer it (a reply like any other: rated, corrected, spoken)."""
    if message.author.is_bot or not is_voice_message(message) or not caller.here.voice_transcribe:
        return None
    if not caller.can(Capability.VOICE):
        return None
    attachment = audio_attachments(message.attachments)[:1]
    if not attachment:
        return None
    try:
        audio = await download_audio(attachment[0], settings)
        row, result = await service.transcribe(
            audio,
            filename=attachment[0].filename,
            guild_id=caller.guild_id,
            channel_id=caller.channel_id,
            message_id=int(message.id),
            attachment_id=int(attachment[0].id),
            author_id=caller.user_id,
            requested_by=caller.user_id,
            source="auto",
        )
    except Exception as exc:  # the member hears back either way; unexpected errors are logged with a reference
        await rest.create_message(
            message.channel_id,
            describe_error(exc, where="voice message"),
            reply=message,
            **NO_MENTIONS,
        )
        return None
    content, files = render(row, result)
    shown = await rest.create_message(
        message.channel_id,
        content,
        reply=message,
        attachments=files or hikari.UNDEFINED,
        components=[transcript_row(row.id)],
        user_mentions=False,
        role_mentions=False,
        mentions_everyone=False,
    )
    await service.repository.set_reply_message(row.id, int(shown.id))
    if caller.here.voice_answer and caller.can(Capability.CHAT) and result.text.strip():
        await _answer_voice_message(
            message, result.text, caller=caller, settings=settings, rest=rest, assistant=assistant,
            sessions=sessions, speaker=speaker,
        )  # fmt: skip
    return row


async def _answer_voice_message(
    message: hikari.Message,
    text: str,
    *,
    caller: Caller,
    settings: Settings,
    rest: hikari.api.RESTClient,
    assistant: Assistant,
    sessions: VoiceSessions,
    speaker: Speaker,
) -> None:
    target = ChannelTarget(rest, int(message.channel_id), int(message.id))
    try:
        prepared = await assistant.prepare(
            text, guild_id=caller.guild_id, channel_id=caller.channel_id, author_id=caller.user_id, here=caller.here
        )
    except Exception as exc:
        await target.fail(describe_error(exc, where="voice message"))
        return
    reply = await deliver(
        assistant,
        prepared,
        target,
        [reply_actions_row()],
        stream_interval=settings.chat_stream_interval,
        footer=settings.chat_footer,
    )
    if reply is not None and caller.here.voice_speak and sessions.channel_of(caller.guild_id or 0) is not None:
        await speak_reply(sessions, speaker, caller.guild_id, reply.content, settings)


@message_listener(loader)
async def on_voice_message(
    message: hikari.Message,
    caller: Caller,
    settings: Settings,
    service: Transcripts,
    assistant: Assistant,
    sessions: VoiceSessions,
    speaker: Speaker,
    bot: hikari.GatewayBot,
) -> None:
    await transcribe_voice_message(
        message, caller=caller, settings=settings, service=service, rest=bot.rest, assistant=assistant,
        sessions=sessions, speaker=speaker,
    )  # fmt: skip


# -- correcting a transcript -----------------------------------------------------------------------------------------


def correction_modal(row: Transcript) -> tuple[str, str, list[hikari.api.ComponentBuilder]]:
    if len(row.text) > TEXT_INPUT_LIMIT:
        raise InvalidInputError(
            f"This transcript is {len(row.text):,} characters, more than a correction box holds. Correct it with "
            "`/correct` and attach the corrected text as a .txt file."
        )
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(_TEXT, "Corrected transcript", value=row.text, paragraph=True, max_length=TEXT_INPUT_LIMIT)
    ]
    return "Correct this transcript", build_key(Key.TRANSCRIPT_MODAL, row.id), rows


@handler(loader, Key.TRANSCRIPT_CORRECT, capability=Capability.CORRECT, arity=(1,))
async def open_transcript_correction(ctx: ComponentContext, caller: Caller, transcripts: TranscriptRepository) -> None:
    row = await owned_transcript(transcripts, ctx.key.int_arg(0), caller)
    await ctx.respond_with_modal(*correction_modal(row))


@handler(loader, Key.TRANSCRIPT_MODAL, capability=Capability.CORRECT, arity=(1,))
async def submit_transcript_correction(
    ctx: ModalContext, caller: Caller, transcripts: TranscriptRepository, service: Transcripts, audit: AuditLog
) -> None:
    row = await owned_transcript(transcripts, ctx.key.int_arg(0), caller)
    text = await store_transcript_correction(
        service, audit, row, ctx.value(_TEXT), author_id=caller.user_id, source="modal"
    )
    await ctx.respond(text, ephemeral=True)


@loader.command
class CorrectThisTranscript(
    lightbulb.MessageCommand, name="Correct this transcript", hooks=[require(Capability.CORRECT)], **EVERYWHERE
):
    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, transcripts: TranscriptRepository, signer: ModalSigner
    ) -> None:
        row = await transcript_on_message(transcripts, int(self.target.id), caller)
        await open_modal(ctx, signer, *correction_modal(row))


# -- the server's vocabulary ----------------------------------------------------------------------------------------

vocabulary = lightbulb.Group("vocabulary", "Names and words this server's transcriptions listen for", **IN_SERVERS)


@vocabulary.register
class VocabularyShow(
    lightbulb.SlashCommand, name="show", description="The terms passed to speech recognition here",
    hooks=[require_in_server(Capability.VOICE)],
):  # fmt: skip
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, service: Transcripts, settings: Settings) -> None:
        terms = await service.vocabulary(caller.guild_id)
        if not terms:
            await ctx.respond(
                "This server's vocabulary is empty. Correcting a transcript adds the names and words you fix; "
                "curators can add terms with `/vocabulary add`.",
                ephemeral=True,
            )
            return
        lines = [f"• **{t.text}** — used {t.uses}×" for t in terms]
        await ctx.respond(
            f"**Vocabulary** ({len(terms)}/{settings.voice_vocabulary_size}):\n" + "\n".join(lines)[:1800],
            ephemeral=True,
        )


@vocabulary.register
class VocabularyAdd(
    lightbulb.SlashCommand, name="add", description="Add a name or word to listen for",
    hooks=[require_in_server(Capability.CURATE)],
):  # fmt: skip
    term = lightbulb.string("term", "The name or word, spelled as it should be written", min_length=1, max_length=60)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, service: Transcripts, audit: AuditLog) -> None:
        assert caller.guild_id is not None
        term = await service.add_term(caller.guild_id, self.term, added_by=caller.user_id)
        await audit.record("vocabulary.add", guild_id=caller.guild_id, actor_id=caller.user_id, target=term)
        await ctx.respond(f"Added **{term}** to this server's vocabulary.", ephemeral=True)


async def _term_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    caller: Caller = lightbulb.di.INJECTED,
    service: Transcripts = lightbulb.di.INJECTED,
) -> None:
    if not allowed(caller, Capability.CURATE):
        await ctx.respond([])
        return
    terms = [t.text for t in await service.vocabulary(caller.guild_id)]
    await ctx.respond(choices(matching(terms, ctx.focused.value)))


@vocabulary.register
class VocabularyRemove(
    lightbulb.SlashCommand, name="remove", description="Stop listening for a term",
    hooks=[require_in_server(Capability.CURATE)],
):  # fmt: skip
    term = lightbulb.string("term", "The term", autocomplete=bounded(_term_autocomplete), max_length=100)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, service: Transcripts, audit: AuditLog) -> None:
        assert caller.guild_id is not None
        term = await service.remove_term(caller.guild_id, self.term)
        await audit.record("vocabulary.remove", guild_id=caller.guild_id, actor_id=caller.user_id, target=term)
        await ctx.respond(f"Removed **{term}** from this server's vocabulary.", ephemeral=True)


loader.command(vocabulary)
