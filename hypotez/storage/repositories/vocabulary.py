"""A server's recognition vocabulary: names and words its members corrected in transcripts, or curators added."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from hypotez.storage.models import VocabularyTerm, utcnow

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from hypotez.storage.db import Database

__all__ = ["StoredTerm", "VocabularyRepository"]


@dataclass(frozen=True, slots=True)
class StoredTerm:
    text: str
    uses: int
    last_used: dt.datetime
    source: str


class VocabularyRepository:
    """Per-guild terms, kept to the size the caller asks for (the recogniser takes a bounded prompt)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def terms(self, guild_id: int) -> list[StoredTerm]:
        """The guild's terms, most used first, then most recent."""
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(VocabularyTerm)
                    .where(VocabularyTerm.guild_id == guild_id)
                    .order_by(VocabularyTerm.uses.desc(), VocabularyTerm.last_used.desc(), VocabularyTerm.id)
                )
            ).all()
        return [StoredTerm(r.text, r.uses, r.last_used, r.source) for r in rows]

    async def replace(
        self, guild_id: int, terms: Sequence[tuple[str, int, dt.datetime]], *, source: str, added_by: int | None
    ) -> None:
        """Make the guild's vocabulary exactly ``terms`` ((text, uses, last used)); terms already stored keep
        their source and author."""
        async with self._db.session() as session, session.begin():
            existing = {
                row.key: row
                for row in (
                    await session.scalars(select(VocabularyTerm).where(VocabularyTerm.guild_id == guild_id))
                ).all()
            }
            keep: set[str] = set()
            for text, uses, last_used in terms:
                key = text.casefold()
                keep.add(key)
                row = existing.get(key)
                if row is None:
                    session.add(
                        VocabularyTerm(
                            guild_id=guild_id,
                            key=key,
                            text=text,
                            uses=uses,
                            last_used=last_used,
                            source=source,
                            added_by=added_by,
                        )
                    )
                else:
                    row.text, row.uses, row.last_used = text, uses, last_used
            for key, row in existing.items():
                if key not in keep:
                    await session.delete(row)

    async def add(self, guild_id: int, text: str, *, added_by: int) -> bool:
        """Add a term by hand; ``False`` when the guild has it already."""
        key = text.casefold()
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(VocabularyTerm).where(VocabularyTerm.guild_id == guild_id, VocabularyTerm.key == key)
            )
            if row is not None:
                return False
            session.add(
                VocabularyTerm(
                    guild_id=guild_id,
                    key=key,
                    text=text,
                    uses=1,
                    source="manual",
                    added_by=added_by,
                    last_used=utcnow(),
                )
            )
        return True

    async def remove(self, guild_id: int, text: str) -> bool:
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(VocabularyTerm).where(VocabularyTerm.guild_id == guild_id, VocabularyTerm.key == text.casefold())
            )
        return bool(getattr(result, "rowcount", 0))
