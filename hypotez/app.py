"""Builds the bot: a hikari app (gateway or HTTP interactions), the lightbulb and miru clients, the services
registered with lightbulb's dependency injection, the error handler, and every plugin."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb
import miru

import hypotez.plugins
from hypotez.config import Settings
from hypotez.errors import ConfigError, HypotezError
from hypotez.ml.assistant import Assistant, ChatBackends
from hypotez.ml.chat import ChatBackend, OpenAICompatibleBackend
from hypotez.ml.datasets import DatasetCatalog
from hypotez.ml.jobs import JobTracker
from hypotez.ml.local_chat import LocalChatBackend
from hypotez.ml.local_models import LocalModels
from hypotez.ml.trainers.local import LocalTrainer
from hypotez.ml.trainers.openai import OpenAITrainer
from hypotez.permissions import Caller, resolve_caller
from hypotez.storage import Database
from hypotez.storage.files import DataDirectory
from hypotez.storage.repositories import (
    AuditLog,
    CorrectionRepository,
    DatasetRepository,
    FeedbackRepository,
    GuildSettingsRepository,
    JobRepository,
    RegisteredModelRepository,
    ReplyRepository,
)
from hypotez.voice.stt import Transcriber

if TYPE_CHECKING:
    from hypotez.ml.trainers.base import Trainer

__all__ = ["Hypotez", "Services", "assemble", "build_bot", "describe_error", "plugin_modules"]

_LOGGER = logging.getLogger(__name__)

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
class Services:
    """Everything plugins use, opened once per process and closed on shutdown."""

    settings: Settings
    db: Database
    chat: ChatBackend
    transcriber: Transcriber
    guild_settings: GuildSettingsRepository = field(init=False)
    audit: AuditLog = field(init=False)
    replies: ReplyRepository = field(init=False)
    corrections: CorrectionRepository = field(init=False)
    feedback: FeedbackRepository = field(init=False)
    data_dir: DataDirectory = field(init=False)
    datasets: DatasetRepository = field(init=False)
    catalog: DatasetCatalog = field(init=False)
    backends: ChatBackends = field(init=False)
    local_models: LocalModels = field(init=False)
    assistant: Assistant = field(init=False)
    jobs: JobTracker = field(init=False)
    _closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.guild_settings = GuildSettingsRepository(self.db)
        self.audit = AuditLog(self.db)
        self.replies = ReplyRepository(self.db)
        self.corrections = CorrectionRepository(self.db)
        self.feedback = FeedbackRepository(self.db)
        self.data_dir = DataDirectory.from_settings(self.settings)
        self.datasets = DatasetRepository(self.db)
        self.catalog = DatasetCatalog(self.settings, self.datasets, self.data_dir, self.audit)
        self.local_models = LocalModels(self.settings.data_dir)
        self.backends = ChatBackends(
            self.chat,
            LocalChatBackend(
                self.local_models.resolve,
                # Offered to everyone: base models; a server's trained models come from its registry.
                available=self.local_models.base_ids,
                allow_paths=False,  # members name models, never paths
                max_new_tokens=self.settings.local_max_new_tokens,
            ),
        )
        self.assistant = Assistant(
            self.settings, RegisteredModelRepository(self.db), self.backends, self.guild_settings, self.replies
        )
        self.jobs = JobTracker(JobRepository(self.db), self._trainers(), poll_interval=self.settings.job_poll_interval)

    def _trainers(self) -> dict[str, Trainer]:
        trainers: dict[str, Trainer] = {"local": LocalTrainer(self.local_models.training_dir)}
        if isinstance(self.chat, OpenAICompatibleBackend):
            trainers["openai"] = OpenAITrainer(self.chat.client)
        return trainers

    async def caller(self, interaction: hikari.PartialInteraction) -> Caller:
        """Who is behind an interaction and what they may do (for components and modals)."""
        return await resolve_caller(interaction, self.settings, self.guild_settings)

    @classmethod
    def from_settings(cls, settings: Settings, *, chat: ChatBackend | None = None) -> Services:
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            chat=chat or OpenAICompatibleBackend.from_settings(settings),
            transcriber=Transcriber.from_settings(settings),
        )

    async def close(self) -> None:
        """Close the chat backends and the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.jobs.stop()
        await self.backends.close()
        await self.db.close()


@dataclass
class Hypotez:
    """The assembled application."""

    bot: hikari.GatewayBot | hikari.RESTBot
    client: lightbulb.Client
    miru: miru.Client
    services: Services


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
    if http:
        if not settings.discord_public_key:
            raise ConfigError(
                "HTTP interactions mode needs the application's public key in HYPOTEZ_DISCORD_PUBLIC_KEY "
                "(General Information page of your application).",
                setting="HYPOTEZ_DISCORD_PUBLIC_KEY",
            )
        return hikari.RESTBot(
            token,
            hikari.TokenType.BOT,
            public_key=settings.discord_public_key,
            rest_url=rest_url,
            banner=None,
        )
    try:
        return hikari.GatewayBot(token, intents=INTENTS, banner=None, rest_url=rest_url)
    except ValueError:  # hikari reads the application id out of the token
        raise ConfigError(
            "HYPOTEZ_DISCORD_TOKEN does not look like a bot token; copy it again from the Bot page of your "
            "application at https://discord.com/developers/applications.",
            setting="HYPOTEZ_DISCORD_TOKEN",
        ) from None


def describe_error(exc: BaseException, *, where: str) -> str:
    """The reply for a failed interaction: a domain error's own message, or a reference id for anything else."""
    domain = _find_domain_error(exc)
    if domain is not None:
        return domain.user_message
    ref = secrets.token_hex(4)
    _LOGGER.error("unexpected error [ref %s] in %s", ref, where, exc_info=exc)
    return f"Something went wrong on our side. If it keeps happening, tell an administrator the reference `{ref}`."


def _find_domain_error(exc: BaseException) -> HypotezError | None:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, HypotezError):
            return current
        if isinstance(current, lightbulb.exceptions.ExecutionPipelineFailedException):
            stack.extend(current.causes)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
    return None


async def _handle_command_error(exc: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
    ctx = exc.context
    message = describe_error(exc, where=f"/{ctx.command_data.qualified_name}")
    try:
        await ctx.respond(message, ephemeral=True)
    except hikari.HikariError:
        _LOGGER.warning("could not tell the user about an error in /%s", ctx.command_data.qualified_name)
    return True


def plugin_modules() -> list[str]:
    """Import paths of every plugin module (``hypotez/plugins/*.py`` not starting with ``_``)."""
    return sorted(
        f"{hypotez.plugins.__name__}.{info.name}"
        for info in pkgutil.iter_modules(hypotez.plugins.__path__)
        if not info.name.startswith("_")
    )


async def load_plugins(client: lightbulb.Client, app: Hypotez | None = None) -> list[str]:
    """Load every plugin; unlike lightbulb's loader, a broken plugin stops start-up instead of being logged.

    A plugin may also define ``setup(app)`` (sync or async) to start persistent views or gateway listeners.
    """
    loaded: list[str] = []
    for path in plugin_modules():
        module = importlib.import_module(path)
        loader = getattr(module, "loader", None)
        if not isinstance(loader, lightbulb.Loader):
            raise TypeError(f"plugin {path} has no `loader = lightbulb.Loader()`")
        await loader.add_to_client(client)
        setup = getattr(module, "setup", None)
        if app is not None and callable(setup):
            outcome = setup(app)
            if inspect.isawaitable(outcome):
                await outcome
        loaded.append(path)
    return loaded


async def assemble(
    bot: hikari.GatewayBot | hikari.RESTBot,
    services: Services,
    *,
    sync_commands: bool = True,
    migrate: bool = True,
) -> Hypotez:
    """Wire services, clients and plugins onto ``bot``; start-up and shutdown hooks included."""
    settings = services.settings
    client = lightbulb.client_from_app(bot, default_enabled_guilds=settings.command_guilds, sync_commands=sync_commands)
    if isinstance(bot, hikari.RESTBot):
        # lightbulb claims the component and modal listeners on an interaction server; miru handles those.
        bot.interaction_server.set_listener(hikari.ComponentInteraction, None)
        bot.interaction_server.set_listener(hikari.ModalInteraction, None)
    components = miru.Client(bot)
    app = Hypotez(bot=bot, client=client, miru=components, services=services)

    registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
    registry.register_value(Settings, settings)
    # Closing lightbulb's default container (client.stop) tears the services down.
    registry.register_value(Services, services, teardown=Services.close)
    registry.register_value(Hypotez, app)
    registry.register_value(Database, services.db)
    registry.register_value(ChatBackend, services.chat)
    registry.register_value(Transcriber, services.transcriber)
    registry.register_value(GuildSettingsRepository, services.guild_settings)
    registry.register_value(AuditLog, services.audit)
    registry.register_value(ReplyRepository, services.replies)
    registry.register_value(CorrectionRepository, services.corrections)
    registry.register_value(FeedbackRepository, services.feedback)
    registry.register_value(DataDirectory, services.data_dir)
    registry.register_value(DatasetRepository, services.datasets)
    registry.register_value(DatasetCatalog, services.catalog)
    registry.register_value(ChatBackends, services.backends)
    registry.register_value(Assistant, services.assistant)
    registry.register_value(JobTracker, services.jobs)
    registry.register_value(LocalModels, services.local_models)
    registry.register_value(miru.Client, components)

    async def _caller(ctx: lightbulb.Context) -> Caller:
        return await services.caller(ctx.interaction)

    client.di.registry_for(lightbulb.di.Contexts.COMMAND).register_factory(Caller, _caller)
    client.error_handler(_handle_command_error)

    loaded = await load_plugins(client, app)
    _LOGGER.info("loaded %d plugins: %s", len(loaded), ", ".join(p.rsplit(".", 1)[-1] for p in loaded))

    async def _start(*_: Any) -> None:
        if migrate:
            await services.db.upgrade()
        await client.start()
        services.jobs.start()  # resumes polling the jobs of earlier runs

    async def _stop(*_: Any) -> None:
        await client.stop()
        await services.close()  # in case start-up failed before the client started

    if isinstance(bot, hikari.RESTBot):
        bot.add_startup_callback(_start)
        bot.add_shutdown_callback(_stop)
    else:
        bot.subscribe(hikari.StartedEvent, _start)
        bot.subscribe(hikari.StoppedEvent, _stop)
    return app
