"""Thumbs and 1-5 ratings on replies, and per-model feedback statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError

from hypotez.errors import InvalidInputError
from hypotez.storage.models import BotReply, Correction, DatasetExample, Feedback, ReviewKind, utcnow
from hypotez.storage.repositories.reviews import open_item

if TYPE_CHECKING:
    import datetime as dt

    from hypotez.storage.db import Database

__all__ = ["FeedbackRepository", "ModelFeedbackStats"]


@dataclass(frozen=True, slots=True)
class ModelFeedbackStats:
    """Ratings of one model's replies over a period."""

    model: str
    thumbs_up: int
    thumbs_down: int
    ratings: int
    mean_rating: float | None
    corrections: int

    @property
    def approval(self) -> float | None:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else None


def _no_examples(_: Correction) -> list[DatasetExample]:
    return []  # a rating's examples are made when a dataset is built


class FeedbackRepository:
    """Thumbs on replies and 1-5 ratings with comments."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def rate(self, reply: BotReply, *, author_id: int, up: bool, trusted: bool = False) -> Feedback:
        """A member's thumb on a reply; pressing again replaces their earlier thumb (and sends it back to review,
        unless ``trusted``)."""
        return await self._put(
            reply, author_id=author_id, kind="thumbs", rating=1 if up else -1, comment=None, trusted=trusted
        )

    async def add_rating(
        self,
        *,
        author_id: int,
        guild_id: int | None,
        channel_id: int | None,
        rating: int,
        comment: str | None,
        reply: BotReply | None,
        trusted: bool = False,
    ) -> Feedback:
        """A 1-5 rating with a comment: about one reply (a member's later rating replaces theirs) or general."""
        if not 1 <= rating <= 5:
            raise InvalidInputError("A rating is a whole number from 1 to 5.")
        if reply is not None:
            return await self._put(
                reply, author_id=author_id, kind="rating", rating=rating, comment=comment or None, trusted=trusted
            )
        async with self._db.session() as session, session.begin():
            feedback = Feedback(
                reply_id=None,
                guild_id=guild_id,
                channel_id=channel_id,
                author_id=author_id,
                kind="rating",
                rating=rating,
                comment=comment or None,
                model=None,
            )
            session.add(feedback)
        return feedback

    async def _put(
        self, reply: BotReply, *, author_id: int, kind: str, rating: int, comment: str | None, trusted: bool
    ) -> Feedback:
        """Insert or replace a member's feedback of one kind on a reply (one row each: a unique constraint;
        a concurrent double click that loses the insert replaces the winner's row instead), with its review
        item: the rating makes the reply a training example only once curators approve it."""
        for attempt in range(2):
            try:
                async with self._db.session() as session, session.begin():
                    existing = await session.scalar(
                        select(Feedback).where(
                            Feedback.reply_id == reply.id, Feedback.author_id == author_id, Feedback.kind == kind
                        )
                    )
                    if existing is None:
                        existing = Feedback(
                            reply_id=reply.id,
                            guild_id=reply.guild_id,
                            channel_id=reply.channel_id,
                            author_id=author_id,
                            kind=kind,
                            model=reply.model,
                            rating=rating,
                        )
                        session.add(existing)
                    existing.rating = rating
                    existing.comment = comment
                    existing.created_at = utcnow()
                    await session.flush()
                    await open_item(
                        session,
                        kind=ReviewKind.RATING,
                        guild_id=reply.guild_id,
                        author_id=author_id,
                        reply_id=reply.id,
                        feedback_id=existing.id,
                        trusted=trusted,
                        examples=_no_examples,
                    )
                return existing
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def for_reply(self, reply_id: int) -> list[Feedback]:
        async with self._db.session() as session:
            rows = await session.scalars(select(Feedback).where(Feedback.reply_id == reply_id).order_by(Feedback.id))
            return list(rows.all())

    async def stats(self, guild_id: int | None, *, since: dt.datetime) -> list[ModelFeedbackStats]:
        """Counts per model since ``since``: thumbs, 1-5 ratings and corrections."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        Feedback.model,
                        func.sum(case((and_(Feedback.kind == "thumbs", Feedback.rating > 0), 1), else_=0)),
                        func.sum(case((and_(Feedback.kind == "thumbs", Feedback.rating < 0), 1), else_=0)),
                        func.sum(case((Feedback.kind == "rating", 1), else_=0)),
                        func.avg(case((Feedback.kind == "rating", Feedback.rating), else_=None)),
                    )
                    .where(Feedback.guild_id == guild_id, Feedback.created_at >= since, Feedback.model.is_not(None))
                    .group_by(Feedback.model)
                )
            ).all()
            correction_rows = (
                await session.execute(
                    select(BotReply.model, func.count(Correction.id))
                    .join(BotReply, BotReply.id == Correction.reply_id)
                    .where(Correction.guild_id == guild_id, Correction.created_at >= since)
                    .group_by(BotReply.model)
                )
            ).all()
        corrections: dict[str, int] = {str(model): int(count) for model, count in correction_rows}
        by_model: dict[str, ModelFeedbackStats] = {}
        for model, up, down, ratings, mean in rows:
            if model is None:
                continue
            by_model[model] = ModelFeedbackStats(
                model=model,
                thumbs_up=int(up or 0),
                thumbs_down=int(down or 0),
                ratings=int(ratings or 0),
                mean_rating=float(mean) if mean is not None else None,
                corrections=int(corrections.get(model, 0)),
            )
        for model, count in corrections.items():
            if model not in by_model:
                by_model[model] = ModelFeedbackStats(model, 0, 0, 0, None, int(count))
        return sorted(by_model.values(), key=lambda s: s.model)
