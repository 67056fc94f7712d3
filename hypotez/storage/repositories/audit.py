"""The audit log: an append-only record of who did what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, or_, select

from hypotez.storage.models import AuditEntry

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator

    from hypotez.storage.db import Database

__all__ = ["AuditFilter", "AuditLog"]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries of one server's log to read: always one server's (``guild_id``), optionally only since
    ``since``, only ``action`` (that action or the actions under it: ``review`` matches ``review.approve``), only
    by ``actor_id``."""

    guild_id: int
    since: dt.datetime | None = None
    action: str | None = None
    actor_id: int | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [AuditEntry.guild_id == self.guild_id]
        if self.since is not None:
            where.append(AuditEntry.created_at >= self.since)
        if self.action:
            where.append(
                or_(AuditEntry.action == self.action, AuditEntry.action.startswith(self.action + ".", autoescape=True))
            )
        if self.actor_id is not None:
            where.append(AuditEntry.actor_id == self.actor_id)
        return where


class AuditLog:
    """Append-only record of who did what."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        action: str,
        *,
        guild_id: int | None,
        actor_id: int | None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self._db.session() as session, session.begin():
            session.add(
                AuditEntry(guild_id=guild_id, actor_id=actor_id, action=action, target=target, details=details or {})
            )

    async def recent(self, guild_id: int | None, limit: int = 20) -> list[AuditEntry]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(AuditEntry).where(AuditEntry.guild_id == guild_id).order_by(AuditEntry.id.desc()).limit(limit)
            )
            return list(rows.all())

    async def count(self, query: AuditFilter) -> int:
        """How many entries ``query`` selects."""
        async with self._db.session() as session:
            total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*query.clauses()))
            return int(total or 0)

    async def page(self, query: AuditFilter, *, offset: int, limit: int) -> list[AuditEntry]:
        """Entries ``query`` selects, newest first, ``limit`` of them after skipping ``offset``."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(AuditEntry)
                .where(*query.clauses())
                .order_by(AuditEntry.id.desc())
                .offset(max(offset, 0))
                .limit(limit)
            )
            return list(rows.all())

    async def each(self, query: AuditFilter, *, batch: int = 500) -> AsyncIterator[AuditEntry]:
        """Every entry ``query`` selects, newest first, read ``batch`` at a time (for exports)."""
        before: int | None = None
        while True:
            async with self._db.session() as session:
                statement = select(AuditEntry).where(*query.clauses())
                if before is not None:
                    statement = statement.where(AuditEntry.id < before)
                rows = list((await session.scalars(statement.order_by(AuditEntry.id.desc()).limit(batch))).all())
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            before = rows[-1].id
