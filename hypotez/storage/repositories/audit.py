"""The audit log: an append-only record of who did what."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hypotez.storage.models import AuditEntry

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["AuditLog"]


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
