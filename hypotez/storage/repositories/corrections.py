"""Corrections of replies, each kept in step with the training examples it yields in its guild's live
``corrections`` dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hypotez.storage.models import BotReply, Correction, Dataset, DatasetExample, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database

__all__ = ["CorrectionExamples", "CorrectionRepository"]

#: Builds the examples a stored correction yields (its ``id`` set; not yet attached to a dataset).
CorrectionExamples = Callable[[Correction], Iterable[DatasetExample]]


class CorrectionRepository:
    """Corrections of replies, and the training examples they yield.

    Each correction keeps the examples ``examples`` builds from it (in the bot: a supervised chat example and
    a preference pair, see :func:`hypotez.ml.datasets.examples.examples_from_correction`) in its guild's ``corrections``
    dataset, stored in the same transaction.  A member's second correction of a reply replaces their first,
    examples included.
    """

    DATASET = "corrections"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(
        self, reply: BotReply, *, author_id: int, corrected_text: str, source: str, examples: CorrectionExamples
    ) -> tuple[Correction, bool]:
        """Store (or replace) ``author_id``'s correction of ``reply`` and the examples ``examples`` builds from it,
        in one transaction; returns it and whether it is new."""
        try:
            return await self._upsert(
                reply, author_id=author_id, corrected_text=corrected_text, source=source, examples=examples
            )
        except IntegrityError:
            # A concurrent submission (a double click, or the server's first corrections at once) won the
            # insert; the second attempt finds its rows and replaces them.
            return await self._upsert(
                reply, author_id=author_id, corrected_text=corrected_text, source=source, examples=examples
            )

    async def _upsert(
        self, reply: BotReply, *, author_id: int, corrected_text: str, source: str, examples: CorrectionExamples
    ) -> tuple[Correction, bool]:
        async with self._db.session() as session, session.begin():
            correction = await session.scalar(
                select(Correction).where(Correction.reply_id == reply.id, Correction.author_id == author_id)
            )
            created = correction is None
            if correction is None:
                correction = Correction(
                    reply_id=reply.id,
                    guild_id=reply.guild_id,
                    channel_id=reply.channel_id,
                    author_id=author_id,
                    context=list(reply.prompt_messages),
                    original_text=reply.content,
                    corrected_text=corrected_text,
                    source=source,
                )
                session.add(correction)
            else:
                correction.corrected_text = corrected_text
                correction.source = source
                correction.updated_at = utcnow()
            await session.flush()
            dataset = await self._corrections_dataset(session, reply.guild_id or 0)
            await session.execute(
                delete(DatasetExample).where(
                    DatasetExample.dataset_id == dataset.id,
                    DatasetExample.source_ref == f"correction:{correction.id}",
                )
            )
            for example in examples(correction):
                example.dataset_id = dataset.id
                session.add(example)
        return correction, created

    async def _corrections_dataset(self, session: AsyncSession, guild_id: int) -> Dataset:
        dataset = await session.scalar(
            select(Dataset).where(Dataset.guild_id == guild_id, Dataset.name == self.DATASET).limit(1)
        )
        if dataset is None:
            dataset = Dataset(
                guild_id=guild_id, name=self.DATASET, description="Examples derived from members' corrections."
            )
            session.add(dataset)
            await session.flush()
        return dataset

    async def get(self, correction_id: int) -> Correction | None:
        async with self._db.session() as session:
            return await session.get(Correction, correction_id)

    async def for_reply(self, reply_id: int) -> list[Correction]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Correction).where(Correction.reply_id == reply_id).order_by(Correction.id)
            )
            return list(rows.all())

    async def delete(self, correction_id: int) -> None:
        """Remove a correction and its examples from the live ``corrections`` dataset (datasets built from it
        earlier are snapshots: what a model was trained on stays as it was)."""
        async with self._db.session() as session, session.begin():
            correction = await session.get(Correction, correction_id)
            if correction is None:
                return
            live = select(Dataset.id).where(
                Dataset.guild_id == (correction.guild_id or 0), Dataset.name == self.DATASET
            )
            await session.execute(
                delete(DatasetExample).where(
                    DatasetExample.source_ref == f"correction:{correction_id}",
                    DatasetExample.dataset_id.in_(live),
                )
            )
            await session.delete(correction)

    async def examples(self, correction_id: int) -> list[DatasetExample]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(DatasetExample)
                .where(DatasetExample.source_ref == f"correction:{correction_id}")
                .order_by(DatasetExample.kind)
            )
            return list(rows.all())
