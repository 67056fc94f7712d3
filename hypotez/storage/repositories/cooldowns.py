"""Cooldown counters kept in the database, so every replica sharing it counts the same uses.

Each key has one row: the start of its current fixed window and the uses counted in it.  A use is one atomic
``UPDATE`` (after an ``INSERT ... ON CONFLICT DO NOTHING`` creating the row), so two replicas taking the last
use of a window at the same moment cannot both get it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hypotez.storage.models import Cooldown, UTCDateTime, utcnow

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["CooldownRepository", "CooldownVerdict"]


@dataclass(frozen=True, slots=True)
class CooldownVerdict:
    """Whether a use was allowed; when refused, how long until the window ends."""

    allowed: bool
    retry_after: dt.timedelta = dt.timedelta()

    @property
    def retry_seconds(self) -> int:
        """Whole seconds to wait (at least 1 when refused)."""
        if self.allowed:
            return 0
        return max(1, -int(-self.retry_after.total_seconds() // 1))


class CooldownRepository:
    """Fixed-window usage counters by key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def hit(
        self, key: str, *, limit: int, window: dt.timedelta, now: dt.datetime | None = None
    ) -> CooldownVerdict:
        """Count one use of ``key`` if fewer than ``limit`` were counted in its current window."""
        now = now or utcnow()
        cutoff = now - window
        when = literal(now, UTCDateTime())
        expired = Cooldown.window_start <= cutoff
        async with self._db.session() as session, session.begin():
            insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
            await session.execute(
                insert(Cooldown)
                .values(key=key, window_start=now, count=0)
                .on_conflict_do_nothing(index_elements=[Cooldown.key])
            )
            counted = await session.execute(
                update(Cooldown)
                .where(and_(Cooldown.key == key, or_(expired, Cooldown.count < limit)))
                .values(
                    count=case((expired, 1), else_=Cooldown.count + 1),
                    window_start=case((expired, when), else_=Cooldown.window_start),
                )
                .returning(Cooldown.count)
                .execution_options(synchronize_session=False)
            )
            if counted.first() is not None:
                return CooldownVerdict(allowed=True)
            start = await session.scalar(select(Cooldown.window_start).where(Cooldown.key == key))
        ends = (start or now) + window
        return CooldownVerdict(allowed=False, retry_after=max(ends - now, dt.timedelta()))

    async def prune(self, *, older_than: dt.timedelta, now: dt.datetime | None = None) -> int:
        """Delete counters whose window started more than ``older_than`` ago; returns how many."""
        cutoff = (now or utcnow()) - older_than
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(Cooldown).where(Cooldown.window_start < cutoff).execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)
