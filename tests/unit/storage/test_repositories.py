from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, select

from hypotez.storage import Database
from hypotez.storage.models import BotReply, Correction, utcnow
from hypotez.storage.repositories import AuditLog, GuildSettingsRepository

EXPECTED_TABLES = {
    "guild_settings",
    "bot_replies",
    "reply_messages",
    "corrections",
    "feedback",
    "datasets",
    "dataset_examples",
    "training_jobs",
    "job_events",
    "models",
    "transcripts",
    "audit_log",
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.asyncio
async def test_migrations_up_and_down(database_url: str) -> None:
    db = Database(database_url)
    try:
        state = await db.migration_state()
        assert state.current is None
        assert not state.up_to_date
        await db.upgrade()
        state = await db.migration_state()
        assert state.up_to_date
        assert await _tables(db) >= EXPECTED_TABLES
        await db.upgrade()  # idempotent
        await db.downgrade("base")
        assert not (EXPECTED_TABLES & await _tables(db))
        assert (await db.migration_state()).current is None
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_sqlite_uses_wal_and_foreign_keys(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'x.db'}")
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        assert mode == "wal"
        assert fks == 1
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_guild_and_channel_settings_override(db: Database) -> None:
    repo = GuildSettingsRepository(db)
    assert (await repo.effective(1, 10)).active_model is None
    await repo.update(1, active_model="guild-model", system_prompt="Be brief.")
    await repo.update(1, 10, system_prompt="Отвечай по-русски 🙂")
    in_channel = await repo.effective(1, 10)
    elsewhere = await repo.effective(1, 11)
    assert in_channel.active_model == "guild-model"
    assert in_channel.system_prompt == "Отвечай по-русски 🙂"
    assert elsewhere.system_prompt == "Be brief."
    await repo.update(1, 10, system_prompt=None)
    assert (await repo.effective(1, 10)).system_prompt == "Be brief."
    assert (await repo.effective(None, 10)).active_model is None
    with pytest.raises(ValueError, match="unknown settings"):
        await repo.update(1, colour="red")


@pytest.mark.asyncio
async def test_snowflakes_datetimes_and_cascades(db: Database) -> None:
    big = 1_234_567_890_123_456_789  # Discord ids exceed 32 bits
    async with db.session() as session, session.begin():
        reply = BotReply(
            channel_id=big,
            author_id=big - 1,
            message_id=big + 1,
            backend="openai",
            model="m",
            prompt_messages=[{"role": "user", "content": "שלום"}],
            content="مرحبا",
        )
        session.add(reply)
        await session.flush()
        session.add(
            Correction(
                reply_id=reply.id, channel_id=big, author_id=7, context=[], original_text="a", corrected_text="b"
            )
        )
    async with db.session() as session:
        stored = await session.scalar(select(BotReply).where(BotReply.message_id == big + 1))
        assert stored is not None
        assert stored.prompt_messages == [{"role": "user", "content": "שלום"}]
        assert stored.content == "مرحبا"
        assert stored.created_at.tzinfo is not None
        assert abs(stored.created_at - utcnow()) < dt.timedelta(minutes=1)
    async with db.session() as session, session.begin():
        await session.delete(stored)
    async with db.session() as session:
        assert (await session.scalars(select(Correction))).all() == []


@pytest.mark.asyncio
async def test_audit_log_records_newest_first(db: Database) -> None:
    audit = AuditLog(db)
    await audit.record("model.use", guild_id=5, actor_id=1, target="m1")
    await audit.record("model.use", guild_id=5, actor_id=1, target="m2", details={"channel": 3})
    await audit.record("model.use", guild_id=6, actor_id=1, target="other")
    entries = await audit.recent(5)
    assert [e.target for e in entries] == ["m2", "m1"]
    assert entries[0].details == {"channel": 3}


@pytest.mark.asyncio
async def test_migrations_match_the_models(db: Database) -> None:
    """Nothing in the models is missing from the migrations (what `alembic check` verifies)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hypotez.storage.models import Base

    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


def test_a_missing_database_driver_is_a_clear_error() -> None:
    from hypotez.errors import StorageError

    with pytest.raises(StorageError, match=r"driver .* is not installed \(aiomysql\)") as caught:
        Database("mysql+aiomysql://bot:secret-pw@db/hypotez")
    assert "secret-pw" not in str(caught.value)
