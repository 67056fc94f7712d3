"""The blind arena: matches (two models' answers to one message, shown as A and B), members' votes, and the
preference pairs approved votes put in the server's live ``arena`` dataset.

A vote for A or B enters the server's review queue (kind ``arena``); while a curator has it approved, the pair
"chosen answer over the other" is in the ``arena`` dataset (one pair per match and winning side, however many
approved votes back it).  A tie makes no pair.  A vote is final once cast (the voter sees the names with it, so a
second vote would not be blind), one per member and match; when both answers are the same text a vote counts as
a tie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.storage.models import (
    ArenaMatch,
    ArenaVote,
    Dataset,
    DatasetExample,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    utcnow,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database

__all__ = [
    "ARENA_DATASET",
    "AlreadyVotedError",
    "ArenaRepository",
    "MatchClosedError",
    "PairBuilder",
    "RecordedVote",
    "arena_dataset",
    "settle_arena_item",
]

#: The live dataset approved arena votes feed.
ARENA_DATASET = "arena"
#: What a member may vote.
CHOICES = ("a", "b", "tie")

#: Builds the preference pair of a vote for ``winner`` (``a`` or ``b``) on a match (not yet attached to a
#: dataset; in the bot :func:`hypotez.ml.arena.pair_from_vote`).
PairBuilder = Callable[[ArenaMatch, str], DatasetExample]


class MatchClosedError(InvalidInputError):
    """A vote on a match that no longer takes votes."""

    def __init__(self, match_id: int, *, closed_now: bool) -> None:
        super().__init__("This match is closed: it takes no more votes. Start another with `/arena start`.")
        self.match_id = match_id
        #: Whether this attempt found it past its time and closed it (its message still shows it open).
        self.closed_now = closed_now


class AlreadyVotedError(InvalidInputError):
    """A member's second vote on a match."""

    def __init__(self, match_id: int, choice: str) -> None:
        shown = {"a": "A", "b": "B", "tie": "a tie"}[choice]
        super().__init__(
            f"You voted already on this match ({shown}), and a vote is final: the names were shown to you with "
            "it, so a second vote would not be blind."
        )
        self.match_id = match_id
        #: What the member voted the first time.
        self.choice = choice


@dataclass(frozen=True, slots=True)
class RecordedVote:
    match: ArenaMatch
    vote: ArenaVote
    #: The vote's review item (``None`` for a tie).
    item: ReviewItem | None
    #: Votes on the match now, this one included.
    votes: int
    #: Whether this vote closed the match.
    closed_now: bool
    #: Whether a vote for A or B was counted as a tie because both answers are the same text.
    same_answers: bool


def _same(match: ArenaMatch) -> bool:
    return match.answer_a.strip() == match.answer_b.strip()


async def arena_dataset(session: AsyncSession, guild_id: int) -> Dataset:
    """The guild's live ``arena`` dataset (created on first use)."""
    dataset = await session.scalar(
        select(Dataset).where(Dataset.guild_id == guild_id, Dataset.name == ARENA_DATASET).order_by(Dataset.id)
    )
    if dataset is None:
        dataset = Dataset(
            guild_id=guild_id,
            name=ARENA_DATASET,
            description="Preference pairs from members' votes in blind arena matches, once curators approved them.",
        )
        session.add(dataset)
        await session.flush()
    return dataset


async def settle_arena_item(session: AsyncSession, item: ReviewItem, pairs: PairBuilder) -> None:
    """Bring the ``arena`` dataset in line with ``item``'s new status: the pair of its match and winning side is
    there exactly while at least one vote for that side is approved."""
    vote = await session.scalar(select(ArenaVote).where(ArenaVote.review_item_id == item.id))
    if vote is None or vote.choice not in {"a", "b"}:
        return
    match = await session.get(ArenaMatch, vote.match_id)
    if match is None:
        return
    await session.flush()  # the item's new status counts below
    approved = await session.scalar(
        select(func.count())
        .select_from(ArenaVote)
        .join(ReviewItem, ReviewItem.id == ArenaVote.review_item_id)
        .where(
            ArenaVote.match_id == match.id,
            ArenaVote.choice == vote.choice,
            ReviewItem.status == ReviewStatus.APPROVED.value,
        )
    )
    dataset = await arena_dataset(session, match.guild_id)
    ref = f"arena:{match.id}:{vote.choice}"
    if not approved:
        await session.execute(
            delete(DatasetExample).where(DatasetExample.dataset_id == dataset.id, DatasetExample.source_ref == ref)
        )
        return
    example = pairs(match, vote.choice)
    present = await session.scalar(
        select(DatasetExample.id)
        .where(DatasetExample.dataset_id == dataset.id, DatasetExample.content_hash == example.content_hash)
        .limit(1)
    )
    if present is None:  # another match may have asked the same and been answered the same: one pair is enough
        example.dataset_id = dataset.id
        session.add(example)


class ArenaRepository:
    """Every server's arena matches and votes."""

    def __init__(self, db: Database, pairs: PairBuilder) -> None:
        self._db = db
        self._pairs = pairs

    async def start(
        self,
        *,
        guild_id: int,
        channel_id: int,
        author_id: int,
        prompt_messages: Sequence[dict[str, Any]],
        user_text: str,
        model_a: str,
        model_b: str,
        answer_a: str,
        answer_b: str,
        closes_at: dt.datetime,
    ) -> ArenaMatch:
        """Store a new match (its message not posted yet)."""
        async with self._db.session() as session, session.begin():
            match = ArenaMatch(
                guild_id=guild_id,
                channel_id=channel_id,
                author_id=author_id,
                prompt_messages=[dict(m) for m in prompt_messages],
                user_text=user_text,
                model_a=model_a,
                model_b=model_b,
                answer_a=answer_a,
                answer_b=answer_b,
                closes_at=closes_at,
            )
            session.add(match)
            await session.flush()
            return match

    async def set_message(self, match_id: int, message_id: int) -> None:
        async with self._db.session() as session, session.begin():
            match = await session.get(ArenaMatch, match_id)
            if match is not None:
                match.message_id = message_id

    async def get(self, match_id: int) -> ArenaMatch | None:
        async with self._db.session() as session:
            return await session.get(ArenaMatch, match_id)

    async def vote_count(self, match_id: int) -> int:
        async with self._db.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(ArenaVote).where(ArenaVote.match_id == match_id)
            )
        return int(count or 0)

    async def votes(self, match_id: int) -> list[ArenaVote]:
        async with self._db.session() as session:
            rows = await session.scalars(select(ArenaVote).where(ArenaVote.match_id == match_id).order_by(ArenaVote.id))
            return list(rows.all())

    async def vote(
        self,
        match_id: int,
        *,
        guild_id: int,
        voter_id: int,
        choice: str,
        trusted: bool,
        close_after: int,
        now: dt.datetime | None = None,
    ) -> RecordedVote:
        """Record ``voter_id``'s vote on a match of ``guild_id``, with its review item (approved on arrival when
        ``trusted``, its pair published); close the match once it has ``close_after`` votes.

        Raises :class:`~hypotez.errors.NotFoundError` for a match of another server, :class:`MatchClosedError`
        for a closed one (closing it first when its time is up), :class:`AlreadyVotedError` for a second vote."""
        if choice not in CHOICES:
            raise InvalidInputError(f"`{choice[:10]}` is not a vote: A, B or tie.")
        when = now or utcnow()
        try:
            return await self._vote(
                match_id, guild_id=guild_id, voter_id=voter_id, choice=choice, trusted=trusted,
                close_after=close_after, now=when,
            )  # fmt: skip
        except IntegrityError:
            # The same member's vote arrived twice at once (a double click, two replicas): the first one stands.
            async with self._db.session() as session:
                vote = await session.scalar(
                    select(ArenaVote).where(ArenaVote.match_id == match_id, ArenaVote.voter_id == voter_id)
                )
            if vote is None:
                raise
            raise AlreadyVotedError(match_id, vote.choice) from None

    async def _vote(
        self,
        match_id: int,
        *,
        guild_id: int,
        voter_id: int,
        choice: str,
        trusted: bool,
        close_after: int,
        now: dt.datetime,
    ) -> RecordedVote:
        closed: MatchClosedError | None = None
        async with self._db.session() as session, session.begin():
            match = await session.get(ArenaMatch, match_id)
            if match is None or match.guild_id != guild_id:
                raise NotFoundError("arena match", match_id, "That match is not one of this server's.")
            existing = await session.scalar(
                select(ArenaVote).where(ArenaVote.match_id == match.id, ArenaVote.voter_id == voter_id)
            )
            if existing is not None:
                raise AlreadyVotedError(match.id, existing.choice)
            if match.closed_at is not None:
                raise MatchClosedError(match.id, closed_now=False)
            if now >= match.closes_at:
                match.closed_at = now  # its time is up: closed by the first vote that finds it so
                closed = MatchClosedError(match.id, closed_now=True)
            else:
                same = choice != "tie" and _same(match)
                vote = ArenaVote(
                    match_id=match.id, guild_id=guild_id, voter_id=voter_id, choice="tie" if same else choice
                )
                session.add(vote)
                await session.flush()
                item: ReviewItem | None = None
                if vote.choice != "tie":
                    item = ReviewItem(
                        kind=ReviewKind.ARENA.value,
                        guild_id=guild_id,
                        author_id=voter_id,
                        reply_id=None,
                        status=(ReviewStatus.APPROVED if trusted else ReviewStatus.PENDING).value,
                        reason="approved on arrival: the author holds a trusted role" if trusted else None,
                        decided_at=now if trusted else None,
                        notified=False,
                    )
                    session.add(item)
                    await session.flush()
                    vote.review_item_id = item.id
                    await session.flush()
                    if trusted:
                        await settle_arena_item(session, item, self._pairs)
                count = int(
                    await session.scalar(
                        select(func.count()).select_from(ArenaVote).where(ArenaVote.match_id == match.id)
                    )
                    or 0
                )
                closes = count >= close_after
                if closes:
                    match.closed_at = now
                await session.flush()
                return RecordedVote(match, vote, item, count, closes, same)
        assert closed is not None
        raise closed

    async def close(self, match_id: int, *, now: dt.datetime | None = None) -> ArenaMatch | None:
        """Close a match (its names become public); ``None`` when there is no such match."""
        async with self._db.session() as session, session.begin():
            match = await session.get(ArenaMatch, match_id)
            if match is not None and match.closed_at is None:
                match.closed_at = now or utcnow()
            return match

    async def for_item(self, item_id: int) -> tuple[ArenaMatch, ArenaVote] | None:
        """The match and vote behind an ``arena`` review item."""
        async with self._db.session() as session:
            vote = await session.scalar(select(ArenaVote).where(ArenaVote.review_item_id == item_id))
            if vote is None:
                return None
            match = await session.get(ArenaMatch, vote.match_id)
        return None if match is None else (match, vote)

    async def games(self, guild_id: int) -> list[tuple[int, str, str, str]]:
        """Every counted vote of ``guild_id`` in the order cast, as ``(match id, model A, model B, choice)``: all
        votes but those a curator rejected."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(ArenaVote.match_id, ArenaMatch.model_a, ArenaMatch.model_b, ArenaVote.choice)
                    .join(ArenaMatch, ArenaMatch.id == ArenaVote.match_id)
                    .outerjoin(ReviewItem, ReviewItem.id == ArenaVote.review_item_id)
                    .where(
                        ArenaVote.guild_id == guild_id,
                        ArenaMatch.guild_id == guild_id,
                        (ReviewItem.id.is_(None)) | (ReviewItem.status != ReviewStatus.REJECTED.value),
                    )
                    .order_by(ArenaVote.id)
                )
            ).all()
        return [(int(m), str(a), str(b), str(c)) for m, a, b, c in rows]

    async def match_count(self, guild_id: int) -> int:
        async with self._db.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(ArenaMatch).where(ArenaMatch.guild_id == guild_id)
            )
        return int(count or 0)
