"""Corrections of replies: each one waits in its server's review queue, and its training examples enter the live
``corrections`` dataset only while curators have it approved."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hypotez.storage.models import (
    BotReply,
    Correction,
    Dataset,
    DatasetExample,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    utcnow,
)
from hypotez.storage.repositories.reviews import CORRECTIONS_DATASET, open_item, settle

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["CorrectionExamples", "CorrectionRepository"]

#: Builds the examples a stored correction yields (its ``id`` set; not yet attached to a dataset).
CorrectionExamples = Callable[[Correction], Iterable[DatasetExample]]


class CorrectionRepository:
    """Corrections of replies, each with its item in the review queue.

    A correction becomes training data only once its server's curators approved it: then the examples
    ``examples`` builds from it (in the bot: a chat example and a preference pair, see
    :func:`hypotez.ml.datasets.examples.examples_from_correction`) enter its guild's live ``corrections``
    dataset.  A member's second correction of a reply replaces their first and goes back to review.
    """

    DATASET = CORRECTIONS_DATASET

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(
        self,
        reply: BotReply,
        *,
        author_id: int,
        corrected_text: str,
        source: str,
        examples: CorrectionExamples,
        trusted: bool = False,
    ) -> tuple[Correction, bool, ReviewItem]:
        """Store (or replace) ``author_id``'s correction of ``reply`` with its review item, in one transaction:
        pending, or approved on arrival (examples published) when ``trusted``.  Returns the correction, whether
        it is new, and its review item."""
        try:
            return await self._upsert(
                reply, author_id=author_id, corrected_text=corrected_text, source=source, examples=examples,
                trusted=trusted,
            )  # fmt: skip
        except IntegrityError:
            # A concurrent submission (a double click, or the server's first corrections at once) won the
            # insert; the second attempt finds its rows and replaces them.
            return await self._upsert(
                reply, author_id=author_id, corrected_text=corrected_text, source=source, examples=examples,
                trusted=trusted,
            )  # fmt: skip

    async def _upsert(
        self,
        reply: BotReply,
        *,
        author_id: int,
        corrected_text: str,
        source: str,
        examples: CorrectionExamples,
        trusted: bool,
    ) -> tuple[Correction, bool, ReviewItem]:
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
            item = await open_item(
                session,
                kind=ReviewKind.CORRECTION,
                guild_id=reply.guild_id,
                author_id=author_id,
                reply_id=reply.id,
                correction_id=correction.id,
                trusted=trusted,
                examples=examples,
            )
            # A reply sent to the queue as "needs a correction" has one now.
            for waiting in (
                await session.scalars(
                    select(ReviewItem).where(
                        ReviewItem.kind == ReviewKind.NEEDS_CORRECTION.value,
                        ReviewItem.reply_id == reply.id,
                        ReviewItem.status == ReviewStatus.PENDING.value,
                    )
                )
            ).all():
                await settle(session, waiting, ReviewStatus.APPROVED.value, examples, reason="corrected")
        return correction, created, item

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
                Dataset.guild_id == (correction.guild_id or 0), Dataset.name == CORRECTIONS_DATASET
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
