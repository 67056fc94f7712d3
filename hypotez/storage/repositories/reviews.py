"""The review queue: what members made that would become training data, the curators' votes on it, the server's
review policy, and what the authors have been told.

An item becomes training data only once approved: a correction's examples enter the server's live ``corrections``
dataset at that moment (and leave it if the item stops being approved); a rating counts in ``/dataset build``
only when approved; an arena vote's preference pair enters the live ``arena`` dataset while approved.  One
curator's rejection is final.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.storage.models import (
    ArenaMatch,
    ArenaVote,
    BotReply,
    Correction,
    Dataset,
    DatasetExample,
    Feedback,
    GuildSettings,
    MemberPreferences,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    ReviewVote,
    utcnow,
)
from hypotez.storage.repositories.arena import PairBuilder, settle_arena_item

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database

__all__ = [
    "CORRECTIONS_DATASET",
    "CuratorStats",
    "Decision",
    "ReviewContext",
    "ReviewPolicy",
    "ReviewRepository",
    "ReviewStats",
    "corrections_dataset",
    "open_item",
    "settle",
]

#: The live dataset approved corrections feed.
CORRECTIONS_DATASET = "corrections"


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """How a server reviews: approvals needed, roles trusted on arrival, self-approval, the review channel."""

    approvals: int = 1
    trusted_roles: frozenset[int] = frozenset()
    self_approval: bool = False
    channel_id: int | None = None

    def trusts(self, role_ids: Iterable[int]) -> bool:
        return bool(self.trusted_roles & set(role_ids))


@dataclass(frozen=True, slots=True)
class ReviewContext:
    """An item with everything a curator needs to decide on it."""

    item: ReviewItem
    reply: BotReply | None
    correction: Correction | None
    feedback: Feedback | None
    votes: list[ReviewVote]
    #: An ``arena`` item's match and the member's vote on it.
    arena: tuple[ArenaMatch, ArenaVote] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    item: ReviewItem
    #: The status before this vote (``item.status`` is the one after).
    previous: str

    @property
    def changed(self) -> bool:
        return self.previous != self.item.status


@dataclass(frozen=True, slots=True)
class CuratorStats:
    curator_id: int
    approved: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ReviewStats:
    curators: list[CuratorStats]
    #: Items by status.
    statuses: dict[str, int] = field(default_factory=dict[str, int])
    #: Items with more than one reviewer, and the share of reviewer pairs on them that agreed.
    multi_reviewed: int = 0
    agreement: float | None = None

    @property
    def approval_rate(self) -> float | None:
        decided = self.statuses.get(ReviewStatus.APPROVED, 0) + self.statuses.get(ReviewStatus.REJECTED, 0)
        return None if decided == 0 else self.statuses.get(ReviewStatus.APPROVED, 0) / decided


async def corrections_dataset(session: AsyncSession, guild_id: int) -> Dataset:
    """The guild's live ``corrections`` dataset (created on first use)."""
    dataset = await session.scalar(
        select(Dataset).where(Dataset.guild_id == guild_id, Dataset.name == CORRECTIONS_DATASET).limit(1)
    )
    if dataset is None:
        dataset = Dataset(
            guild_id=guild_id,
            name=CORRECTIONS_DATASET,
            description="Examples from members' corrections, once curators approved them.",
        )
        session.add(dataset)
        await session.flush()
    return dataset


async def _withdraw(session: AsyncSession, correction: Correction) -> None:
    dataset = await corrections_dataset(session, correction.guild_id or 0)
    await session.execute(
        delete(DatasetExample).where(
            DatasetExample.dataset_id == dataset.id, DatasetExample.source_ref == f"correction:{correction.id}"
        )
    )


async def _publish(
    session: AsyncSession, correction: Correction, examples: Callable[[Correction], Iterable[DatasetExample]]
) -> None:
    await _withdraw(session, correction)
    dataset = await corrections_dataset(session, correction.guild_id or 0)
    for example in examples(correction):
        example.dataset_id = dataset.id
        session.add(example)


async def settle(
    session: AsyncSession,
    item: ReviewItem,
    status: str,
    examples: Callable[[Correction], Iterable[DatasetExample]],
    *,
    reason: str | None = None,
    pairs: PairBuilder | None = None,
) -> None:
    """Give ``item`` its status, keeping its correction's examples in the live dataset exactly while approved (an
    arena vote's preference pair in the live ``arena`` dataset, built by ``pairs``)."""
    previous = item.status
    item.status = status
    item.decided_at = None if status == ReviewStatus.PENDING else utcnow()
    if reason is not None or status == ReviewStatus.PENDING:
        item.reason = reason
    if status != previous:
        item.notified = False
    if item.kind == ReviewKind.CORRECTION and item.correction_id is not None:
        correction = await session.get(Correction, item.correction_id)
        if correction is not None:
            if status == ReviewStatus.APPROVED:
                await _publish(session, correction, examples)
            else:
                await _withdraw(session, correction)
    elif item.kind == ReviewKind.ARENA:
        if pairs is None:
            raise RuntimeError("settling an arena vote needs the builder of its preference pair")
        await settle_arena_item(session, item, pairs)


async def open_item(
    session: AsyncSession,
    *,
    kind: ReviewKind,
    guild_id: int | None,
    author_id: int,
    reply_id: int | None,
    correction_id: int | None = None,
    feedback_id: int | None = None,
    trusted: bool,
    examples: Callable[[Correction], Iterable[DatasetExample]],
) -> ReviewItem:
    """The item for a new (or changed) correction or rating: pending, its earlier votes cleared, or approved on
    arrival for a trusted member."""
    query = select(ReviewItem).where(ReviewItem.kind == kind.value)
    query = (
        query.where(ReviewItem.correction_id == correction_id)
        if correction_id is not None
        else query.where(ReviewItem.feedback_id == feedback_id)
    )
    item = await session.scalar(query)
    if item is None:
        item = ReviewItem(
            kind=kind.value,
            guild_id=guild_id,
            author_id=author_id,
            reply_id=reply_id,
            correction_id=correction_id,
            feedback_id=feedback_id,
            status=ReviewStatus.PENDING.value,
            notified=False,
        )
        session.add(item)
        await session.flush()
    else:
        await session.execute(delete(ReviewVote).where(ReviewVote.item_id == item.id))
        item.created_at = utcnow()
    await settle(
        session,
        item,
        ReviewStatus.APPROVED.value if trusted else ReviewStatus.PENDING.value,
        examples,
        reason="approved on arrival: the author holds a trusted role" if trusted else None,
    )
    return item


class ReviewRepository:
    """The review queue of every server, and each server's review policy."""

    def __init__(
        self,
        db: Database,
        examples: Callable[[Correction], Iterable[DatasetExample]],
        pairs: PairBuilder | None = None,
    ) -> None:
        self._db = db
        self._examples = examples
        self._pairs = pairs

    # -- policy -----------------------------------------------------------------------------------------------

    async def policy(self, guild_id: int | None) -> ReviewPolicy:
        if guild_id is None:
            return ReviewPolicy()
        async with self._db.session() as session:
            row = await session.get(GuildSettings, (guild_id, 0))
        if row is None:
            return ReviewPolicy()
        return ReviewPolicy(
            approvals=row.review_approvals or 1,
            trusted_roles=frozenset(int(r) for r in (row.review_trusted_roles or [])),
            self_approval=bool(row.review_self_approval),
            channel_id=row.review_channel_id,
        )

    async def set_policy(self, guild_id: int, **values: Any) -> ReviewPolicy:
        """Set ``approvals``, ``trusted_roles``, ``self_approval`` or ``channel_id`` (``None`` keeps a value;
        ``channel_id=0`` removes the review channel)."""
        columns = {
            "approvals": "review_approvals",
            "trusted_roles": "review_trusted_roles",
            "self_approval": "review_self_approval",
            "channel_id": "review_channel_id",
        }
        if unknown := set(values) - set(columns):
            raise ValueError(f"unknown review settings: {sorted(unknown)}")
        async with self._db.session() as session, session.begin():
            row = await session.get(GuildSettings, (guild_id, 0))
            if row is None:
                row = GuildSettings(guild_id=guild_id, channel_id=0, capability_roles={})
                session.add(row)
            for key, given in values.items():
                if given is None:
                    continue
                value: Any = given
                if key == "trusted_roles":
                    value = sorted(int(r) for r in given)
                elif key == "channel_id" and given == 0:
                    value = None
                setattr(row, columns[key], value)
        return await self.policy(guild_id)

    # -- the queue --------------------------------------------------------------------------------------------

    async def get(self, item_id: int) -> ReviewItem | None:
        async with self._db.session() as session:
            return await session.get(ReviewItem, item_id)

    async def for_correction(self, correction_id: int) -> ReviewItem | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(ReviewItem).where(
                    ReviewItem.kind == ReviewKind.CORRECTION.value, ReviewItem.correction_id == correction_id
                )
            )

    async def context(self, item_id: int) -> ReviewContext | None:
        async with self._db.session() as session:
            item = await session.get(ReviewItem, item_id)
            if item is None:
                return None
            reply = await session.get(BotReply, item.reply_id) if item.reply_id is not None else None
            correction = await session.get(Correction, item.correction_id) if item.correction_id is not None else None
            feedback = await session.get(Feedback, item.feedback_id) if item.feedback_id is not None else None
            arena: tuple[ArenaMatch, ArenaVote] | None = None
            if item.kind == ReviewKind.ARENA:
                vote = await session.scalar(select(ArenaVote).where(ArenaVote.review_item_id == item.id))
                match = await session.get(ArenaMatch, vote.match_id) if vote is not None else None
                arena = (match, vote) if match is not None and vote is not None else None
            votes = list(
                (
                    await session.scalars(
                        select(ReviewVote).where(ReviewVote.item_id == item.id).order_by(ReviewVote.id)
                    )
                ).all()
            )
        return ReviewContext(item, reply, correction, feedback, votes, arena)

    async def next_pending(
        self, guild_id: int, curator_id: int, *, after_id: int = 0, self_approval: bool = False
    ) -> ReviewItem | None:
        """The oldest pending item after ``after_id`` that this curator has not voted on (nor made, unless the
        server allows approving one's own)."""
        voted = select(ReviewVote.item_id).where(ReviewVote.curator_id == curator_id)
        query = (
            select(ReviewItem)
            .where(
                ReviewItem.guild_id == guild_id,
                ReviewItem.status == ReviewStatus.PENDING.value,
                ReviewItem.id > after_id,
                ReviewItem.id.not_in(voted),
            )
            .order_by(ReviewItem.id)
            .limit(1)
        )
        if not self_approval:
            query = query.where(ReviewItem.author_id != curator_id)
        async with self._db.session() as session:
            return await session.scalar(query)

    async def pending_count(self, guild_id: int) -> int:
        async with self._db.session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(ReviewItem)
                .where(ReviewItem.guild_id == guild_id, ReviewItem.status == ReviewStatus.PENDING.value)
            )
        return int(count or 0)

    async def vote(
        self,
        item_id: int,
        *,
        guild_id: int,
        curator_id: int,
        vote: str,
        policy: ReviewPolicy,
        reason: str | None = None,
        edited_text: str | None = None,
    ) -> Decision:
        """Record a curator's approval or rejection (an approval with ``edited_text`` replaces the correction's
        text first, and clears the other approvals: they were for the old text)."""
        if vote not in {"approve", "reject"}:
            raise ValueError(vote)
        async with self._db.session() as session, session.begin():
            item = await session.get(ReviewItem, item_id)
            if item is None or item.guild_id != guild_id:
                raise NotFoundError("review item", item_id, "That item is no longer in this server's review queue.")
            previous = item.status
            if item.status == ReviewStatus.REJECTED:
                raise InvalidInputError("This item was already rejected by a curator; a rejection is final.")
            if vote == "approve" and item.author_id == curator_id and not policy.self_approval:
                raise InvalidInputError(
                    "You cannot approve what you made yourself here: another curator has to (the server's review "
                    "settings can allow it)."
                )
            if vote == "approve" and item.kind == ReviewKind.NEEDS_CORRECTION and edited_text is None:
                raise InvalidInputError("This reply needs a correction: write one with **Correct it**, or reject.")
            if edited_text is not None:
                await self._apply_edit(session, item, edited_text)
            existing = await session.scalar(
                select(ReviewVote).where(ReviewVote.item_id == item.id, ReviewVote.curator_id == curator_id)
            )
            if existing is None:
                existing = ReviewVote(item_id=item.id, curator_id=curator_id, vote=vote)
                session.add(existing)
            existing.vote, existing.reason, existing.edited = vote, reason, edited_text is not None
            existing.created_at = utcnow()
            await session.flush()
            votes = list((await session.scalars(select(ReviewVote).where(ReviewVote.item_id == item.id))).all())
            approvals = sum(1 for v in votes if v.vote == "approve")
            if any(v.vote == "reject" for v in votes):
                await settle(
                    session, item, ReviewStatus.REJECTED.value, self._examples, reason=reason, pairs=self._pairs
                )
            elif approvals >= policy.approvals:
                await settle(session, item, ReviewStatus.APPROVED.value, self._examples, pairs=self._pairs)
            else:
                await settle(session, item, ReviewStatus.PENDING.value, self._examples, pairs=self._pairs)
            await session.flush()
            return Decision(item, previous)

    async def _apply_edit(self, session: AsyncSession, item: ReviewItem, text: str) -> None:
        text = text.strip()
        if not text:
            raise InvalidInputError("An edited correction cannot be empty.")
        if item.kind != ReviewKind.CORRECTION or item.correction_id is None:
            raise InvalidInputError("Only corrections can be edited.")
        correction = await session.get(Correction, item.correction_id)
        if correction is None:
            raise NotFoundError("correction", item.correction_id, "That correction was removed.")
        correction.corrected_text = text
        correction.updated_at = utcnow()
        await session.execute(delete(ReviewVote).where(ReviewVote.item_id == item.id, ReviewVote.vote == "approve"))

    async def set_posted(self, item_id: int, channel_id: int, message_id: int) -> None:
        async with self._db.session() as session, session.begin():
            item = await session.get(ReviewItem, item_id)
            if item is not None:
                item.posted_channel_id, item.posted_message_id = channel_id, message_id

    # -- counts and agreement ---------------------------------------------------------------------------------

    async def counts(self, guild_id: int) -> dict[tuple[str, str], int]:
        """Items by (kind, status)."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(ReviewItem.kind, ReviewItem.status, func.count())
                    .where(ReviewItem.guild_id == guild_id)
                    .group_by(ReviewItem.kind, ReviewItem.status)
                )
            ).all()
        return {(str(kind), str(status)): int(n) for kind, status, n in rows}

    async def stats(self, guild_id: int) -> ReviewStats:
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(ReviewVote.item_id, ReviewVote.curator_id, ReviewVote.vote)
                    .join(ReviewItem, ReviewItem.id == ReviewVote.item_id)
                    .where(ReviewItem.guild_id == guild_id)
                    .order_by(ReviewVote.item_id, ReviewVote.id)
                )
            ).all()
        per_curator: dict[int, Counter[str]] = {}
        per_item: dict[int, list[str]] = {}
        for item_id, curator_id, vote in rows:
            per_curator.setdefault(int(curator_id), Counter())[str(vote)] += 1
            per_item.setdefault(int(item_id), []).append(str(vote))
        pairs = agreeing = multi = 0
        for votes in per_item.values():
            if len(votes) < 2:
                continue
            multi += 1
            for a, b in itertools.combinations(votes, 2):
                pairs += 1
                agreeing += a == b
        totals: Counter[str] = Counter()
        for (_, status), n in (await self.counts(guild_id)).items():
            totals[status] += n
        curators = sorted(
            (CuratorStats(c, v["approve"], v["reject"]) for c, v in per_curator.items()),
            key=lambda s: (-(s.approved + s.rejected), s.curator_id),
        )
        return ReviewStats(curators, dict(totals), multi, agreeing / pairs if pairs else None)

    # -- telling the authors ----------------------------------------------------------------------------------

    async def undelivered(self, author_id: int, *, limit: int = 5) -> list[ReviewContext]:
        """Decisions on what ``author_id`` made that they have not been told about yet."""
        async with self._db.session() as session:
            ids = list(
                (
                    await session.scalars(
                        select(ReviewItem.id)
                        .where(
                            ReviewItem.author_id == author_id,
                            ReviewItem.status != ReviewStatus.PENDING.value,
                            ReviewItem.notified.is_(False),
                        )
                        .order_by(ReviewItem.decided_at)
                        .limit(limit)
                    )
                ).all()
            )
        found = [await self.context(i) for i in ids]
        return [c for c in found if c is not None]

    async def mark_notified(self, item_ids: Sequence[int]) -> None:
        if not item_ids:
            return
        async with self._db.session() as session, session.begin():
            for item in (await session.scalars(select(ReviewItem).where(ReviewItem.id.in_(item_ids)))).all():
                item.notified = True

    async def wants_dm(self, user_id: int) -> bool:
        async with self._db.session() as session:
            row = await session.get(MemberPreferences, user_id)
        return bool(row and row.review_dm)

    async def set_wants_dm(self, user_id: int, value: bool) -> None:
        async with self._db.session() as session, session.begin():
            row = await session.get(MemberPreferences, user_id)
            if row is None:
                session.add(MemberPreferences(user_id=user_id, review_dm=value))
            else:
                row.review_dm = value
