"""Thumbs and 1-5 ratings on replies, and per-model feedback statistics."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from hypotez.errors import InvalidInputError
from hypotez.storage.models import (
    BotReply,
    Correction,
    DatasetExample,
    Feedback,
    ReviewItem,
    ReviewKind,
    utcnow,
)
from hypotez.storage.repositories.reviews import open_item

if TYPE_CHECKING:
    import datetime as dt

    from hypotez.storage.db import Database

__all__ = [
    "FeedbackEntry",
    "FeedbackKindFilter",
    "FeedbackPage",
    "FeedbackRepository",
    "GeneralFeedbackStats",
    "ModelFeedbackStats",
    "RatingFilter",
    "UnansweredStats",
    "is_low",
]

#: ``BotReply.outcome`` of a reply the backend failed to give (no model answered it).
_FAILED = "failed"
_EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class ModelFeedbackStats:
    """Ratings of one model's replies over a period."""

    model: str
    thumbs_up: int
    thumbs_down: int
    ratings: int
    mean_rating: float | None
    corrections: int
    #: Replies in which the model answered nothing (stored with the outcome ``empty``).
    empty_answers: int = 0

    @property
    def approval(self) -> float | None:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else None


@dataclass(frozen=True, slots=True)
class GeneralFeedbackStats:
    """1-5 ratings about the bot in general (``/feedback send`` without a reply) over a period."""

    ratings: int
    mean_rating: float | None


@dataclass(frozen=True, slots=True)
class UnansweredStats:
    """Questions the model service failed to answer over a period, and what members made of them (kept out of
    the per-model figures: no model gave those replies)."""

    failed: int
    ratings: int
    corrections: int


class RatingFilter(enum.StrEnum):
    """Which ratings ``/feedback list`` shows."""

    ANY = "any"
    UP = "up"
    DOWN = "down"
    #: 👎, or 1-2 of 5.
    LOW = "low"
    #: 👍, or 4-5 of 5.
    HIGH = "high"
    ONE = "1"
    TWO = "2"
    THREE = "3"
    FOUR = "4"
    FIVE = "5"


class FeedbackKindFilter(enum.StrEnum):
    """Which kind of feedback ``/feedback list`` shows."""

    ANY = "any"
    THUMBS = "thumbs"
    #: 1-5 ratings, about a reply or general.
    RATINGS = "ratings"
    #: Ratings not about a reply.
    GENERAL = "general"
    #: Anything with a comment.
    COMMENTS = "comments"


def is_low(kind: str, rating: int) -> bool:
    """A 👎, or a rating of 1 or 2 out of 5."""
    return rating < 0 if kind == "thumbs" else rating <= 2


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One line of ``/feedback list``: the feedback, and the reply it is about (if any)."""

    feedback: Feedback
    #: Where the reply was posted (``None`` for general feedback, or a reply since removed).
    reply_channel_id: int | None
    reply_message_id: int | None
    reply_outcome: str | None
    #: Whether the reply has a correction (by anyone).
    corrected: bool
    #: Whether the reply is already in the review queue as needing a correction.
    sent_for_correction: bool

    @property
    def low(self) -> bool:
        return is_low(self.feedback.kind, self.feedback.rating)

    @property
    def needs_correction(self) -> bool:
        """A low rating of a reply nobody corrected, not yet sent to the review queue."""
        return self.low and self.feedback.reply_id is not None and not self.corrected and not self.sent_for_correction


@dataclass(frozen=True, slots=True)
class FeedbackPage:
    entries: list[FeedbackEntry]
    #: Feedback matching the filters, on every page.
    total: int


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
        """Counts per model since ``since``: thumbs, 1-5 ratings, corrections and empty answers.

        Feedback and corrections on replies the backend failed to give are left out (no model gave them; see
        :meth:`unanswered_stats`), and so is general feedback (see :meth:`general_stats`).
        """
        answered = or_(BotReply.outcome.is_(None), BotReply.outcome != _FAILED)
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
                    .outerjoin(BotReply, BotReply.id == Feedback.reply_id)
                    .where(
                        Feedback.guild_id == guild_id,
                        Feedback.created_at >= since,
                        Feedback.model.is_not(None),
                        answered,
                    )
                    .group_by(Feedback.model)
                )
            ).all()
            correction_rows = (
                await session.execute(
                    select(BotReply.model, func.count(Correction.id))
                    .join(BotReply, BotReply.id == Correction.reply_id)
                    .where(Correction.guild_id == guild_id, Correction.created_at >= since, BotReply.outcome != _FAILED)
                    .group_by(BotReply.model)
                )
            ).all()
            empty_rows = (
                await session.execute(
                    select(BotReply.model, func.count(BotReply.id))
                    .where(BotReply.guild_id == guild_id, BotReply.created_at >= since, BotReply.outcome == _EMPTY)
                    .group_by(BotReply.model)
                )
            ).all()
        corrections: dict[str, int] = {str(model): int(count) for model, count in correction_rows}
        empty: dict[str, int] = {str(model): int(count) for model, count in empty_rows}
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
                corrections=corrections.get(model, 0),
                empty_answers=empty.get(model, 0),
            )
        for model in {*corrections, *empty} - set(by_model):
            by_model[model] = ModelFeedbackStats(
                model, 0, 0, 0, None, corrections.get(model, 0), empty_answers=empty.get(model, 0)
            )
        return sorted(by_model.values(), key=lambda s: s.model)

    async def general_stats(self, guild_id: int | None, *, since: dt.datetime) -> GeneralFeedbackStats:
        """General feedback (1-5 ratings not about a reply) since ``since``."""
        async with self._db.session() as session:
            count, mean = (
                await session.execute(
                    select(func.count(Feedback.id), func.avg(Feedback.rating)).where(
                        Feedback.guild_id == guild_id,
                        Feedback.created_at >= since,
                        Feedback.reply_id.is_(None),
                        Feedback.kind == "rating",
                    )
                )
            ).one()
        return GeneralFeedbackStats(int(count or 0), float(mean) if mean is not None else None)

    async def unanswered_stats(self, guild_id: int | None, *, since: dt.datetime) -> UnansweredStats:
        """Replies the backend failed to give since ``since``, with the ratings and corrections made on them."""
        async with self._db.session() as session:
            failed = await session.scalar(
                select(func.count(BotReply.id)).where(
                    BotReply.guild_id == guild_id, BotReply.created_at >= since, BotReply.outcome == _FAILED
                )
            )
            ratings = await session.scalar(
                select(func.count(Feedback.id))
                .join(BotReply, BotReply.id == Feedback.reply_id)
                .where(Feedback.guild_id == guild_id, Feedback.created_at >= since, BotReply.outcome == _FAILED)
            )
            corrections = await session.scalar(
                select(func.count(Correction.id))
                .join(BotReply, BotReply.id == Correction.reply_id)
                .where(Correction.guild_id == guild_id, Correction.created_at >= since, BotReply.outcome == _FAILED)
            )
        return UnansweredStats(int(failed or 0), int(ratings or 0), int(corrections or 0))

    # -- the list curators read -------------------------------------------------------------------------------

    async def models(self, guild_id: int) -> list[str]:
        """The models the server's feedback is about."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Feedback.model).where(Feedback.guild_id == guild_id, Feedback.model.is_not(None)).distinct()
            )
            return sorted(str(m) for m in rows.all())

    async def page(
        self,
        guild_id: int,
        *,
        since: dt.datetime,
        model: str | None = None,
        rating: RatingFilter = RatingFilter.ANY,
        kind: FeedbackKindFilter = FeedbackKindFilter.ANY,
        offset: int = 0,
        limit: int = 10,
    ) -> FeedbackPage:
        """The server's comments and ratings since ``since`` matching the filters, newest first."""
        conditions: list[Any] = [Feedback.guild_id == guild_id, Feedback.created_at >= since]
        if model is not None:
            conditions.append(Feedback.model == model)
        conditions.extend(_rating_conditions(rating))
        conditions.extend(_kind_conditions(kind))
        corrected = exists().where(Correction.reply_id == Feedback.reply_id).correlate(Feedback)
        queued = (
            exists()
            .where(ReviewItem.kind == ReviewKind.NEEDS_CORRECTION.value, ReviewItem.reply_id == Feedback.reply_id)
            .correlate(Feedback)
        )
        query = (
            select(
                Feedback,
                BotReply.channel_id,
                BotReply.message_id,
                BotReply.outcome,
                corrected.label("corrected"),
                queued.label("queued"),
            )
            .outerjoin(BotReply, BotReply.id == Feedback.reply_id)
            .where(*conditions)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self._db.session() as session:
            total = await session.scalar(select(func.count(Feedback.id)).where(*conditions))
            # an outer join: the reply's columns are None for general feedback
            rows: list[tuple[Any, ...]] = [tuple(row) for row in (await session.execute(query)).all()]
        entries = [
            FeedbackEntry(
                feedback=feedback,
                reply_channel_id=int(channel_id) if channel_id is not None else None,
                reply_message_id=int(message_id) if message_id is not None else None,
                reply_outcome=str(outcome) if outcome is not None else None,
                corrected=bool(is_corrected),
                sent_for_correction=bool(is_queued),
            )
            for feedback, channel_id, message_id, outcome, is_corrected, is_queued in rows
        ]
        return FeedbackPage(entries, int(total or 0))

    async def request_correction(self, reply: BotReply) -> tuple[ReviewItem, bool]:
        """Send a low-rated reply nobody corrected to the review queue as needing a correction, so that a curator
        writes the answer it should have given.  Idempotent: a reply already sent there returns its item
        (``created`` False).  The item's author is the member whose low rating it was (the earliest one)."""
        for attempt in range(2):
            try:
                async with self._db.session() as session, session.begin():
                    existing = await session.scalar(
                        select(ReviewItem)
                        .where(ReviewItem.kind == ReviewKind.NEEDS_CORRECTION.value, ReviewItem.reply_id == reply.id)
                        .order_by(ReviewItem.id)
                        .limit(1)
                    )
                    if existing is not None:
                        return existing, False
                    if await session.scalar(select(Correction.id).where(Correction.reply_id == reply.id).limit(1)):
                        raise InvalidInputError(
                            "This reply already has a correction: it is in the review queue as that correction."
                        )
                    low = await session.scalar(
                        select(Feedback)
                        .where(Feedback.reply_id == reply.id, *_rating_conditions(RatingFilter.LOW))
                        .order_by(Feedback.id)
                        .limit(1)
                    )
                    if low is None:
                        raise InvalidInputError(
                            "Nobody rated this reply low any more, so it was not sent to the review queue."
                        )
                    item = await open_item(
                        session,
                        kind=ReviewKind.NEEDS_CORRECTION,
                        guild_id=reply.guild_id,
                        author_id=low.author_id,
                        reply_id=reply.id,
                        feedback_id=low.id,
                        trusted=False,
                        examples=_no_examples,
                    )
                return item, True
            except IntegrityError:  # a concurrent press made it first: the next attempt finds it
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _rating_conditions(rating: RatingFilter) -> list[Any]:
    thumbs, rated = Feedback.kind == "thumbs", Feedback.kind == "rating"
    match rating:
        case RatingFilter.ANY:
            return []
        case RatingFilter.UP:
            return [thumbs, Feedback.rating > 0]
        case RatingFilter.DOWN:
            return [thumbs, Feedback.rating < 0]
        case RatingFilter.LOW:
            return [or_(and_(thumbs, Feedback.rating < 0), and_(rated, Feedback.rating <= 2))]
        case RatingFilter.HIGH:
            return [or_(and_(thumbs, Feedback.rating > 0), and_(rated, Feedback.rating >= 4))]
        case _:
            return [rated, Feedback.rating == int(rating.value)]


def _kind_conditions(kind: FeedbackKindFilter) -> list[Any]:
    match kind:
        case FeedbackKindFilter.ANY:
            return []
        case FeedbackKindFilter.THUMBS:
            return [Feedback.kind == "thumbs"]
        case FeedbackKindFilter.RATINGS:
            return [Feedback.kind == "rating"]
        case FeedbackKindFilter.GENERAL:
            return [Feedback.reply_id.is_(None)]
        case FeedbackKindFilter.COMMENTS:
            return [Feedback.comment.is_not(None), Feedback.comment != ""]
