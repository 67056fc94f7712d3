"""The async engine, sessions and migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from hypotez.errors import InvalidInputError, StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

__all__ = ["Database", "MigrationState"]

_LOGGER = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).parent / "migrations"


class MigrationState:
    """Where a database stands against the migrations this version ships."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def __repr__(self) -> str:
        return f"MigrationState(current={self.current!r}, head={self.head!r})"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in cast("Sequence[object]", value))
    if isinstance(value, dict):
        return any(_has_nul(v) for v in cast("dict[object, object]", value).values())
    return False


def _refuse_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    """PostgreSQL text cannot hold NUL characters: refuse them before any database sees them (SQLite too, so
    every database answers the same)."""
    if _has_nul(parameters):
        raise InvalidInputError(
            "The text holds a NUL character (\\x00), which cannot be stored. Remove it and try again."
        )
    return statement, parameters


class Database:
    """One async engine and its session factory.

    SQLite files get WAL journaling and enforced foreign keys; their parent directory is created.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        parsed = make_url(url)
        self.url_display = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        except ImportError as exc:
            extra = " Install it with `pip install 'hypotez[postgres]'`." if self.dialect == "postgresql" else ""
            raise StorageError(
                f"The database driver for {self.url_display} is not installed ({exc.name}).{extra}"
            ) from None
        except ArgumentError as exc:
            raise StorageError(f"The database URL {self.url_display} is not usable: {exc}.") from None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
        event.listen(self.engine.sync_engine, "before_cursor_execute", _refuse_nul, retval=True)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session; use as ``async with db.session() as s``."""
        return self.sessions()

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``."""

        def _run(connection: Connection) -> None:
            cfg = _alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_run)
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Could not migrate the database at {self.url_display}: {exc.__class__.__name__}."
            ) from exc
        _LOGGER.info("database at %s migrated to %s", self.url_display, revision)

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``base`` for an empty database)."""

        def _run(connection: Connection) -> None:
            cfg = _alembic_config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(_run)

    async def migration_state(self) -> MigrationState:
        """The applied revision and the newest one shipped."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package always ships migrations
            raise StorageError("No migrations are shipped with this installation.")

        def _current(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        try:
            async with self.engine.connect() as conn:
                current = await conn.run_sync(_current)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(
                f"Could not reach the database at {self.url_display}: {exc.__class__.__name__}."
            ) from exc
        return MigrationState(current, head)

    async def ping(self) -> None:
        """Raise :class:`StorageError` unless the database answers."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(
                f"Could not reach the database at {self.url_display}: {exc.__class__.__name__}."
            ) from exc

    async def close(self) -> None:
        await self.engine.dispose()
