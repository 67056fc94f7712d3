"""Builds the bot: a hikari app (gateway or HTTP interactions), the lightbulb client, every service opened once
and registered with lightbulb's dependency injection (with its teardown), the per-interaction
:class:`~hypotez.permissions.Caller`, the component router, the error handler and every plugin.

This is the one place where things are wired; commands, autocompletes, listeners and component handlers take
what they need by type.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import hikari
import lightbulb

import hypotez.plugins
from hypotez.config import Settings
from hypotez.errors import ConfigError
from hypotez.keys import ModalSigner
from hypotez.ml.arena import pair_from_vote
from hypotez.ml.assistant import Assistant, ChatBackends
from hypotez.ml.budgets import TokenBudgets
from hypotez.ml.chat import ChatBackend, OpenAICompatibleBackend
from hypotez.ml.datasets import DatasetCatalog
from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.ml.jobs import JobTracker, LocalLimits
from hypotez.ml.local_chat import LocalChatBackend
from hypotez.ml.local_models import LocalModels
from hypotez.ml.trainers.local import LocalTrainer
from hypotez.ml.trainers.openai import OpenAITrainer
from hypotez.permissions import Caller, caller_from_message, resolve_caller
from hypotez.plugins._components import COMPONENT, ComponentRouter
from hypotez.plugins._deadlines import auto_defer
from hypotez.plugins._errors import handle_command_error
from hypotez.plugins._job_status import JobMessages
from hypotez.plugins.review import review_notes
from hypotez.storage import Database
from hypotez.storage.files import DataDirectory
from hypotez.storage.repositories import (
    ArenaRepository,
    AuditLog,
    CooldownRepository,
    CorrectionRepository,
    DatasetRepository,
    EvaluationRepository,
    FeedbackRepository,
    GuildSettingsRepository,
    JobRepository,
    PreferenceRepository,
    RegisteredModelRepository,
    ReplyRepository,
    ReviewRepository,
    TranscriptRepository,
    UsageRepository,
    VocabularyRepository,
)
from hypotez.voice.stt import Transcriber
from hypotez.voice.transcripts import Transcripts
from hypotez.voice.transport.base import NoVoice, VoicePort
from hypotez.voice.transport.sessions import VoiceSessions
from hypotez.voice.tts import Speaker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypotez.ml.trainers.base import Trainer

__all__ = ["INTENTS", "Hypotez", "assemble", "build_bot", "plugin_modules"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Gateway intents: guild messages + MESSAGE_CONTENT to read voice messages and replies to the bot,
#: voice states to join voice channels.
INTENTS = (
    hikari.Intents.GUILDS
    | hikari.Intents.GUILD_MESSAGES
    | hikari.Intents.DM_MESSAGES
    | hikari.Intents.MESSAGE_CONTENT
    | hikari.Intents.GUILD_VOICE_STATES
)


@dataclass
class Hypotez:
    """The assembled application: the hikari app, the lightbulb client, and what was registered with it."""

    bot: hikari.GatewayBot | hikari.RESTBot
    client: lightbulb.Client
    router: ComponentRouter
    _registered: dict[type[Any], Any] = field(default_factory=dict[type[Any], Any])
    _teardowns: list[Callable[[], Awaitable[None]]] = field(default_factory=list[Any])
    closed: bool = False

    def provide(
        self, registry: Any, typ: type[_T], value: _T, teardown: Callable[[_T], Awaitable[None]] | None = None
    ) -> _T:
        """Register ``value`` for ``typ`` with lightbulb's DI (``registry``), with its teardown run once."""
        self._registered[typ] = value
        if teardown is None:
            registry.register_value(typ, value)
            return value
        done = False

        async def once(_: object = None) -> None:
            nonlocal done
            if not done:
                done = True
                await teardown(value)

        self._teardowns.append(once)
        registry.register_value(typ, value, teardown=once)
        return value

    def get(self, typ: type[_T]) -> _T:
        """The instance registered for ``typ`` (the same one every handler receives)."""
        value: _T = self._registered[typ]
        return value

    async def close(self) -> None:
        """Run every service's teardown not run yet (idempotent; also done when lightbulb's client stops)."""
        self.closed = True
        while self._teardowns:
            await self._teardowns.pop()()


def build_bot(
    settings: Settings, *, http: bool = False, rest_url: str | None = None
) -> hikari.GatewayBot | hikari.RESTBot:
    """A :class:`hikari.GatewayBot`, or a :class:`hikari.RESTBot` for HTTP interactions mode."""
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise ConfigError(
            "No Discord bot token is set: put it in HYPOTEZ_DISCORD_TOKEN (the environment or .env); "
            "get one from the Bot page of your application at https://discord.com/developers/applications.",
            setting="HYPOTEZ_DISCORD_TOKEN",
        )
    token = settings.discord_token.get_secret_value().strip()
    try:  # the application id is the token's first part: both modes check its form the same way
        hikari.applications.get_token_id(token)
    except ValueError:
        raise ConfigError(
            "HYPOTEZ_DISCORD_TOKEN does not look like a bot token; copy it again from the Bot page of your "
            "application at https://discord.com/developers/applications.",
            setting="HYPOTEZ_DISCORD_TOKEN",
        ) from None
    if http:
        return hikari.RESTBot(
            token,
            hikari.TokenType.BOT,
            public_key=_public_key(settings),
            rest_url=rest_url,
            banner=None,
            suppress_optimization_warning=True,  # advice about `python -O`, not a problem: no line on start-up
        )
    return hikari.GatewayBot(token, intents=INTENTS, banner=None, rest_url=rest_url, suppress_optimization_warning=True)


def _public_key(settings: Settings) -> bytes:
    """The application's Ed25519 public key (32 bytes, given as 64 hexadecimal characters) for HTTP mode."""
    where = "(General Information page of your application at https://discord.com/developers/applications)"
    if not settings.discord_public_key:
        raise ConfigError(
            f"HTTP interactions mode needs the application's public key in HYPOTEZ_DISCORD_PUBLIC_KEY {where}.",
            setting="HYPOTEZ_DISCORD_PUBLIC_KEY",
        )
    try:
        key = bytes.fromhex(settings.discord_public_key.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(
            "HYPOTEZ_DISCORD_PUBLIC_KEY is not an application public key (64 hexadecimal characters): copy it "
            f"again {where}.",
            setting="HYPOTEZ_DISCORD_PUBLIC_KEY",
        )
    return key


def _trainers(chat: ChatBackend, local_models: LocalModels) -> dict[str, Trainer]:
    trainers: dict[str, Trainer] = {"local": LocalTrainer(local_models.training_dir)}
    if isinstance(chat, OpenAICompatibleBackend):
        trainers["openai"] = OpenAITrainer(chat.client)
    return trainers


def _register_services(app: Hypotez, registry: Any, settings: Settings, chat: ChatBackend | None) -> None:
    """Open every service once and register it by type, each with its teardown."""

    def register(typ: type[_T], value: _T, teardown: Callable[[_T], Awaitable[None]] | None = None) -> _T:
        return app.provide(registry, typ, value, teardown)

    register(Settings, settings)
    db = register(Database, Database(settings.resolved_database_url), Database.close)
    default_chat = register(ChatBackend, chat or OpenAICompatibleBackend.from_settings(settings))
    transcriber = register(Transcriber, Transcriber.from_settings(settings), _close_transcriber)
    guild_settings = register(GuildSettingsRepository, GuildSettingsRepository(db))
    audit = register(AuditLog, AuditLog(db))
    replies = register(ReplyRepository, ReplyRepository(db))
    register(CorrectionRepository, CorrectionRepository(db))
    register(ReviewRepository, ReviewRepository(db, examples_from_correction, pair_from_vote))
    register(ArenaRepository, ArenaRepository(db, pair_from_vote))
    register(CooldownRepository, CooldownRepository(db))
    register(EvaluationRepository, EvaluationRepository(db))
    register(FeedbackRepository, FeedbackRepository(db))
    data_dir = register(DataDirectory, DataDirectory.from_settings(settings))
    datasets = register(DatasetRepository, DatasetRepository(db))
    register(DatasetCatalog, DatasetCatalog(settings, datasets, data_dir, audit))
    local_models = register(LocalModels, LocalModels(settings.data_dir))
    local_chat = LocalChatBackend(
        local_models.resolve,
        # Offered to everyone: base models; a server's trained models come from its registry.
        available=local_models.base_ids,
        allow_paths=False,  # members name models, never paths
        max_new_tokens=settings.local_max_new_tokens,
    )
    backends = register(ChatBackends, ChatBackends(default_chat, local_chat), ChatBackends.close)
    models = register(RegisteredModelRepository, RegisteredModelRepository(db))
    usage = register(UsageRepository, UsageRepository(db))
    budgets = register(
        TokenBudgets,
        TokenBudgets(
            usage, per_server=settings.chat_daily_tokens_per_server, per_member=settings.chat_daily_tokens_per_member
        ),
    )
    register(
        Assistant,
        Assistant(
            settings,
            models,
            backends,
            guild_settings,
            replies,
            budgets=budgets,
            preferences=register(PreferenceRepository, PreferenceRepository(db)),
        ),
    )
    job_rows = register(JobRepository, JobRepository(db))
    jobs = register(
        JobTracker,
        JobTracker(
            job_rows,
            _trainers(default_chat, local_models),
            poll_interval=settings.job_poll_interval,
            local_limits=LocalLimits(settings.local_max_concurrent_jobs, settings.local_max_jobs_per_server),
        ),
        JobTracker.stop,
    )
    messages = register(JobMessages, JobMessages(app.bot.rest, job_rows, chart_interval=settings.job_chart_interval_s))
    jobs.subscribe(messages.update)  # live status messages for every job update

    # Voice
    transcripts = register(TranscriptRepository, TranscriptRepository(db))
    terms = register(VocabularyRepository, VocabularyRepository(db))
    register(
        Transcripts,
        Transcripts(transcriber, transcripts, terms, data_dir, vocabulary_size=settings.voice_vocabulary_size),
    )
    register(Speaker, Speaker.from_settings(settings))
    port = register(VoicePort, voice_port(app.bot, settings), _close_port)  # type: ignore[type-abstract]
    register(
        VoiceSessions,
        VoiceSessions(port, idle_timeout=settings.voice_idle_timeout, queue_size=settings.voice_queue_size),
        VoiceSessions.close,
    )


#: Seconds a shutdown waits for the transcriptions admitted before it; the rest are answered "send it again".
TRANSCRIPTION_GRACE_S = 20.0


async def _close_transcriber(transcriber: Transcriber) -> None:
    await transcriber.aclose(TRANSCRIPTION_GRACE_S)


async def _close_port(port: VoicePort) -> None:
    """Leave every voice channel (the sessions' teardown has stopped their queues first)."""
    close = getattr(port, "close", None)
    if close is not None:
        await close()


def voice_port(bot: hikari.GatewayBot | hikari.RESTBot, settings: Settings) -> VoicePort:
    """The voice transport: hikari-wave on a gateway bot with voice on, else one that explains why not."""
    if not settings.voice_enabled or settings.voice_transport == "none":
        return NoVoice()
    if not isinstance(bot, hikari.GatewayBot):
        return NoVoice("Voice channels need the gateway; this bot runs in HTTP interactions mode.")
    from hypotez.voice.transport.wave import WaveVoice

    return WaveVoice(bot)


def _register_callers(client: lightbulb.Client) -> None:
    """Who is behind each interaction or message, resolved once per invocation in every DI context."""

    async def for_command(
        ctx: lightbulb.Context, settings: Settings, guild_settings: GuildSettingsRepository
    ) -> Caller:
        return await resolve_caller(ctx.interaction, settings, guild_settings)

    async def for_autocomplete(
        ctx: lightbulb.AutocompleteContext[Any], settings: Settings, guild_settings: GuildSettingsRepository
    ) -> Caller:
        return await resolve_caller(ctx.interaction, settings, guild_settings)

    async def for_component(
        interaction: hikari.PartialInteraction, settings: Settings, guild_settings: GuildSettingsRepository
    ) -> Caller:
        return await resolve_caller(interaction, settings, guild_settings)

    async def for_message(
        message: hikari.Message, settings: Settings, guild_settings: GuildSettingsRepository
    ) -> Caller:
        return await caller_from_message(message, settings, guild_settings)

    client.di.registry_for(lightbulb.di.Contexts.COMMAND).register_factory(Caller, for_command)
    client.di.registry_for(lightbulb.di.Contexts.AUTOCOMPLETE).register_factory(Caller, for_autocomplete)
    client.di.registry_for(COMPONENT).register_factory(Caller, for_component)
    client.di.registry_for(lightbulb.di.Contexts.LISTENER).register_factory(Caller, for_message)


#: Plugins that exist only where voice is on (``voice_enabled``).
VOICE_PLUGINS = frozenset({"hypotez.plugins.transcription", "hypotez.plugins.speech"})


def plugin_modules(settings: Settings | None = None) -> list[str]:
    """Import paths of every plugin module (``hypotez/plugins/*.py`` not starting with ``_``); without the voice
    plugins where ``settings`` turn voice off."""
    voice = settings is None or settings.voice_enabled
    return sorted(
        path
        for info in pkgutil.iter_modules(hypotez.plugins.__path__)
        if not info.name.startswith("_")
        and ((path := f"{hypotez.plugins.__name__}.{info.name}") not in VOICE_PLUGINS or voice)
    )


async def load_plugins(client: lightbulb.Client, settings: Settings | None = None) -> list[str]:
    """Load every plugin; unlike lightbulb's loader, a broken plugin stops start-up instead of being logged."""
    loaded: list[str] = []
    for path in plugin_modules(settings):
        module = importlib.import_module(path)
        loader = getattr(module, "loader", None)
        if not isinstance(loader, lightbulb.Loader):
            raise TypeError(f"plugin {path} has no `loader = lightbulb.Loader()`")
        await loader.add_to_client(client)
        loaded.append(path)
    return loaded


async def assemble(
    bot: hikari.GatewayBot | hikari.RESTBot,
    settings: Settings,
    *,
    chat: ChatBackend | None = None,
    sync_commands: bool = True,
    migrate: bool = True,
) -> Hypotez:
    """Wire services, the lightbulb client, the component router and plugins onto ``bot``, with start-up and
    shutdown hooks.  ``chat`` replaces the chat backend built from the settings."""
    client = lightbulb.client_from_app(
        bot,
        default_enabled_guilds=settings.command_guilds,
        sync_commands=sync_commands,
        # Every command: deferred before Discord's 3 s; then the member hears what curators decided on their work.
        hooks=[auto_defer, review_notes],
    )
    token = settings.discord_token.get_secret_value() if settings.discord_token is not None else None
    router = ComponentRouter(client, bot, ModalSigner.from_token(token))
    app = Hypotez(bot=bot, client=client, router=router)

    registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
    _register_services(app, registry, settings, chat)
    app.provide(registry, ComponentRouter, router)
    app.provide(registry, ModalSigner, router.signer)
    _register_callers(client)
    client.error_handler(handle_command_error)

    loaded = await load_plugins(client, settings)
    _LOGGER.info("loaded %d plugins: %s", len(loaded), ", ".join(p.rsplit(".", 1)[-1] for p in loaded))

    background: set[asyncio.Task[Any]] = set()

    async def _start(*_: Any) -> None:
        if migrate:
            await app.get(Database).upgrade()
        await client.start()
        app.get(JobTracker).start()  # resumes polling the jobs of earlier runs
        if settings.voice_enabled:
            # The shipped voice list serves until the speech service answers (it may not: it is unofficial).
            refresh = asyncio.create_task(app.get(Speaker).refresh_voices(), name="hypotez: refresh voices")
            background.add(refresh)
            refresh.add_done_callback(background.discard)
            if settings.whisper_load == "startup":
                await app.get(Transcriber).load()

    async def _stop(*_: Any) -> None:
        for task in list(background):
            task.cancel()
        await client.stop()  # closes lightbulb's default container: every teardown runs
        await app.close()  # in case start-up failed before the client started

    if isinstance(bot, hikari.RESTBot):
        bot.add_startup_callback(_start)
        bot.add_shutdown_callback(_stop)
    else:
        bot.subscribe(hikari.StartedEvent, _start)
        bot.subscribe(hikari.StoppedEvent, _stop)
    return app
