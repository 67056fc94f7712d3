"""Datasets: named, versioned sets of training examples, and the corrections and rated replies they are built
from."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from typing import cast as cast_type

from sqlalchemy import Text, and_, case, cast, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.storage.models import (
    BotReply,
    Correction,
    Dataset,
    DatasetExample,
    Feedback,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    utcnow,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterable, AsyncIterator, Sequence

    from sqlalchemy import Select, Table

    from hypotez.storage.db import Database

__all__ = ["DatasetCounts", "DatasetOverview", "DatasetRepository", "StoredExample"]


@dataclass(frozen=True, slots=True)
class DatasetCounts:
    """Examples of one dataset version by (kind, label, origin): how many, and their estimated tokens."""

    groups: dict[tuple[str, str, str], tuple[int, int]]

    @property
    def total(self) -> int:
        return sum(n for n, _ in self.groups.values())

    @property
    def tokens(self) -> int:
        return sum(t for _, t in self.groups.values())

    def by(self, field: str) -> dict[str, int]:
        """Counts by ``kind``, ``label`` or ``origin``."""
        index = ("kind", "label", "origin").index(field)
        totals: dict[str, int] = {}
        for key, (n, _) in self.groups.items():
            totals[key[index]] = totals.get(key[index], 0) + n
        return dict(sorted(totals.items()))


@dataclass(frozen=True, slots=True)
class StoredExample:
    """A stored example's fields, read without building ORM objects (datasets run to tens of thousands)."""

    id: int
    kind: str
    label: str
    origin: str
    source_ref: str | None
    messages: list[dict[str, Any]]
    preferred: str | None
    rejected: str | None
    token_count: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class DatasetOverview:
    """What training would use of one version, from SQL aggregates (``/dataset show``).

    ``supervised``: positive chat examples and preference pairs, a pair not counted again when a positive chat
    example of the same source (a correction's two examples) says the same; ``supervised_tokens`` estimates
    their tokens (a pair without its other answer).  ``stored_pairs``: preference pairs as stored.
    ``sample_supervised`` and ``sample_pair``: the first example of each, ``None`` when there is none.
    """

    supervised: int
    supervised_tokens: int
    stored_pairs: int
    positive_chats: int
    negative_chats: int
    sample_supervised: StoredExample | None
    sample_pair: StoredExample | None


#: How many examples one INSERT writes, and one fetch reads, at a time: each chunk is a short stretch of event
#: loop work with a wait on the database between chunks.
EXAMPLE_CHUNK = 1000
#: The examples' table: bulk INSERTs go to it directly, without the ORM's per-row bookkeeping.
_EXAMPLES = cast_type("Table", DatasetExample.__table__)
_EXAMPLE_FIELDS = (
    "kind",
    "label",
    "origin",
    "source_ref",
    "messages",
    "preferred",
    "rejected",
    "token_count",
    "content_hash",
)


def _stored_columns() -> tuple[Any, ...]:
    # ``messages`` as the JSON text the database holds: decoded in a worker thread, not by the driver on the loop.
    return (
        DatasetExample.id,
        DatasetExample.kind,
        DatasetExample.label,
        DatasetExample.origin,
        DatasetExample.source_ref,
        cast(DatasetExample.messages, Text),
        DatasetExample.preferred,
        DatasetExample.rejected,
        DatasetExample.token_count,
        DatasetExample.content_hash,
    )


def _stored(row: Sequence[Any]) -> StoredExample:
    ident, kind, label, origin, source_ref, messages, preferred, rejected, tokens, digest = row[:10]
    return StoredExample(
        int(ident),
        str(kind),
        str(label),
        str(origin),
        source_ref,
        json.loads(messages) if isinstance(messages, str) else messages,
        preferred,
        rejected,
        int(tokens),
        str(digest),
    )


def _orm_examples(dataset_id: int, raw: Sequence[Sequence[Any]]) -> list[DatasetExample]:
    examples: list[DatasetExample] = []
    for row in raw:
        stored = _stored(row)
        examples.append(
            DatasetExample(
                id=stored.id,
                dataset_id=dataset_id,
                created_at=row[10],
                **{name: getattr(stored, name) for name in _EXAMPLE_FIELDS},
            )
        )
    return examples


def _insert_rows(examples: Sequence[DatasetExample], dataset_id: int) -> list[dict[str, Any]]:
    """Column values of ``examples`` in version ``dataset_id``, each content once (in order)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for example in examples:
        if example.content_hash in seen:
            continue
        seen.add(example.content_hash)
        row = {name: getattr(example, name) for name in _EXAMPLE_FIELDS}
        row["dataset_id"] = dataset_id
        rows.append(row)
    return rows


class DatasetRepository:
    """Datasets and their examples.  A dataset is a name in a guild with numbered versions; a version's
    examples never change once written (``corrections``, kept live by :class:`CorrectionRepository`, excepted).
    ``name@3`` names version 3; a bare name, the newest version that is not archived."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, dataset_id: int) -> Dataset | None:
        async with self._db.session() as session:
            return await session.get(Dataset, dataset_id)

    async def versions(self, guild_id: int, name: str) -> list[Dataset]:
        """Every version of ``name``, oldest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Dataset).where(Dataset.guild_id == guild_id, Dataset.name == name).order_by(Dataset.version)
            )
            return list(rows.all())

    async def resolve(self, guild_id: int, ref: str, *, include_archived: bool = False) -> Dataset:
        """The dataset version ``ref`` (``name`` or ``name@version``) names; :class:`NotFoundError` otherwise."""
        name, _, version_text = ref.strip().partition("@")
        versions = await self.versions(guild_id, name)
        if version_text:
            if not (version_text.isascii() and version_text.isdigit()):
                raise InvalidInputError(f"`{ref[:120]}`: write a version as `name@2` (digits 0-9 only).")
            if len(version_text) > 18:
                raise NotFoundError(
                    "dataset",
                    ref[:120],
                    f"Dataset `{name[:100]}` has no version {version_text[:20]}…. See `/dataset show`.",
                )
            found = next((d for d in versions if d.version == int(version_text)), None)
            if found is None:
                raise NotFoundError(
                    "dataset", ref, f"Dataset `{name[:100]}` has no version {version_text}. See `/dataset show`."
                )
            return found
        live = [d for d in versions if include_archived or d.archived_at is None]
        if live:
            return live[-1]
        if versions:
            raise NotFoundError(
                "dataset",
                name,
                f"Dataset `{name[:100]}` is archived; `{name[:100]}@{versions[-1].version}` still names it.",
            )
        raise NotFoundError("dataset", name, f"No dataset called `{name[:100]}` here. See `/dataset list`.")

    async def latest(self, guild_id: int, *, include_archived: bool = False) -> list[Dataset]:
        """The newest version of every dataset name in a guild, by name."""
        async with self._db.session() as session:
            rows = (await session.scalars(select(Dataset).where(Dataset.guild_id == guild_id))).all()
        newest: dict[str, Dataset] = {}
        for row in rows:
            if not include_archived and row.archived_at is not None:
                continue
            if row.name not in newest or row.version > newest[row.name].version:
                newest[row.name] = row
        return [newest[n] for n in sorted(newest)]

    async def add_version(
        self,
        guild_id: int,
        name: str,
        examples: Sequence[DatasetExample],
        *,
        created_by: int | None,
        description: str | None = None,
        extend: bool = True,
        max_examples: int | None = None,
    ) -> tuple[Dataset, int, int]:
        """Write a new version of ``name`` holding ``examples`` (and, with ``extend``, the newest live version's).

        Returns the version, how many examples were added, and how many were already there (or repeated).
        See :meth:`add_version_stream`, which this calls with ``examples`` in chunks.
        """

        async def chunks() -> AsyncIterator[Sequence[DatasetExample]]:
            for start in range(0, len(examples), EXAMPLE_CHUNK):
                yield examples[start : start + EXAMPLE_CHUNK]

        return await self.add_version_stream(
            guild_id,
            name,
            chunks(),
            created_by=created_by,
            description=description,
            extend=extend,
            max_examples=max_examples,
        )

    async def add_version_stream(
        self,
        guild_id: int,
        name: str,
        chunks: AsyncIterable[Sequence[DatasetExample]],
        *,
        created_by: int | None,
        description: str | None = None,
        extend: bool = True,
        max_examples: int | None = None,
    ) -> tuple[Dataset, int, int]:
        """Write a new version of ``name`` from ``chunks`` of examples as they come (and, with ``extend``, the
        newest live version's examples, copied inside the database first).

        All in one transaction: readers see the whole version or none of it; when ``chunks`` raises, a limit is
        passed or nothing is new, the version is rolled back.  Repeated content (within the chunks, or already
        in the previous version) is left to the database's unique (version, content hash) constraint: each chunk
        is one bulk ``INSERT ... ON CONFLICT DO NOTHING``, its values read in a worker thread, so memory holds one
        chunk at a time, never the file.  ``max_examples`` bounds the version's size (previous examples included).

        Returns the version, how many examples were added, and how many offered were already there (or repeated).
        """
        offered = added = 0
        try:
            async with self._db.session() as session, session.begin():
                previous = await session.scalar(
                    select(Dataset)
                    .where(Dataset.guild_id == guild_id, Dataset.name == name)
                    .order_by(Dataset.version.desc())
                    .limit(1)
                )
                dataset = Dataset(
                    guild_id=guild_id,
                    name=name,
                    version=previous.version + 1 if previous else 1,
                    description=description,
                    created_by=created_by,
                )
                session.add(dataset)
                await session.flush()
                kept = 0
                if extend and previous is not None and previous.archived_at is None:
                    columns = ["kind", "label", "origin", "source_ref", "messages", "preferred", "rejected"]
                    columns += ["token_count", "content_hash", "created_at"]
                    copied = await session.execute(
                        insert(DatasetExample).from_select(
                            ["dataset_id", *columns],
                            select(literal(dataset.id), *(getattr(DatasetExample, c) for c in columns)).where(
                                DatasetExample.dataset_id == previous.id
                            ),
                        )
                    )
                    kept = int(cast_type("Any", copied).rowcount or 0)
                    if kept < 0:  # a driver that does not count: ask
                        kept = int(
                            await session.scalar(
                                select(func.count(DatasetExample.id)).where(DatasetExample.dataset_id == dataset.id)
                            )
                            or 0
                        )
                statement = self._insert_new().returning(DatasetExample.id)
                async for chunk in chunks:
                    rows = await asyncio.to_thread(_insert_rows, chunk, dataset.id)
                    offered += len(chunk)
                    if not rows:
                        continue
                    added += len((await session.execute(statement, rows)).all())
                    if max_examples is not None and kept + added > max_examples:
                        raise InvalidInputError(
                            f"Nothing was imported: `{name[:100]}` would hold more than {max_examples:,} examples, "
                            "the most a dataset version may hold (`dataset_max_examples`). Split the file, or "
                            "import into a new dataset name."
                        )
                if added == 0 and kept:
                    assert previous is not None
                    raise InvalidInputError(
                        f"Nothing new: every example is already in `{name}` (version {previous.version})."
                    )
        except IntegrityError:
            raise InvalidInputError(
                f"Dataset `{name}` was changed by someone else at the same moment; try again."
            ) from None
        return dataset, added, offered - added

    def _insert_new(self) -> Any:
        """An INSERT into the examples that leaves out content the version already holds (either dialect)."""
        if self._db.dialect == "postgresql":
            return pg_insert(_EXAMPLES).on_conflict_do_nothing(index_elements=["dataset_id", "content_hash"])
        return sqlite_insert(_EXAMPLES).on_conflict_do_nothing(index_elements=["dataset_id", "content_hash"])

    async def examples(self, dataset_id: int, *, kind: str | None = None) -> list[DatasetExample]:
        """A version's examples in the order they were added (detached objects, built in a worker thread)."""
        raw = await self._fetch(self._example_query(dataset_id, kind, DatasetExample.created_at))
        return await asyncio.to_thread(_orm_examples, dataset_id, raw)

    async def rows(self, dataset_id: int, *, kind: str | None = None) -> list[StoredExample]:
        """A version's examples in the order they were added, as plain values: read in chunks, decoded in a
        worker thread, so a large dataset does not hold up the event loop."""
        raw = await self._fetch(self._example_query(dataset_id, kind))
        return await asyncio.to_thread(lambda: [_stored(row) for row in raw])

    @staticmethod
    def _example_query(dataset_id: int, kind: str | None, *extra: Any) -> Select[*tuple[Any, ...]]:
        query = select(*_stored_columns(), *extra).where(DatasetExample.dataset_id == dataset_id)
        if kind is not None:
            query = query.where(DatasetExample.kind == kind)
        return query.order_by(DatasetExample.id)

    async def _fetch(self, query: Select[*tuple[Any, ...]]) -> list[Any]:
        """Every row of ``query`` (ordered by example id, the id first), a page of :data:`EXAMPLE_CHUNK` rows per
        round trip: the event loop runs other work between pages."""
        raw: list[Any] = []
        last = 0
        async with self._db.session() as session:
            while True:
                page = (await session.execute(query.where(DatasetExample.id > last).limit(EXAMPLE_CHUNK))).all()
                raw += page
                if len(page) < EXAMPLE_CHUNK:
                    return raw
                last = int(page[-1][0])

    async def overview(self, dataset_id: int) -> DatasetOverview:
        """What training would use of a version, counted by the database (see :class:`DatasetOverview`)."""
        ex = DatasetExample
        in_version = ex.dataset_id == dataset_id
        positive_chat = and_(ex.kind == "chat", ex.label == "positive")
        negative_chat = and_(ex.kind == "chat", ex.label != "positive")
        pair = ex.kind == "preference"
        # A pair whose source also gave a positive chat example (a correction gives both) adds no supervised line.
        twins = select(ex.source_ref).where(in_version, positive_chat, ex.source_ref.is_not(None))
        twinned = and_(ex.source_ref.is_not(None), ex.source_ref.in_(twins.scalar_subquery()))
        counted_pair = and_(pair, ~twinned)
        # A pair's supervised line holds one of its answers: the other one's tokens (about 4 characters each) out.
        unused = case((ex.label == "negative", ex.preferred), else_=ex.rejected)
        pair_tokens = ex.token_count - (func.coalesce(func.length(unused), 0) + 3) // 4
        totals = select(
            func.coalesce(func.sum(case((positive_chat, 1), else_=0)), 0),
            func.coalesce(func.sum(case((negative_chat, 1), else_=0)), 0),
            func.coalesce(func.sum(case((counted_pair, 1), else_=0)), 0),
            func.coalesce(func.sum(case((pair, 1), else_=0)), 0),
            func.coalesce(func.sum(case((positive_chat, ex.token_count), (counted_pair, pair_tokens), else_=0)), 0),
        ).where(in_version)
        async with self._db.session() as session:
            positives, negatives, pairs_used, pairs, tokens = (await session.execute(totals)).one()
            first_supervised = (
                await session.execute(
                    select(*_stored_columns()).where(in_version, positive_chat | pair).order_by(ex.id).limit(1)
                )
            ).first()
            first_pair = (
                await session.execute(select(*_stored_columns()).where(in_version, pair).order_by(ex.id).limit(1))
            ).first()
        return DatasetOverview(
            supervised=int(positives) + int(pairs_used),
            supervised_tokens=max(int(tokens), 0),
            stored_pairs=int(pairs),
            positive_chats=int(positives),
            negative_chats=int(negatives),
            sample_supervised=_stored(first_supervised) if first_supervised is not None else None,
            sample_pair=_stored(first_pair) if first_pair is not None else None,
        )

    async def counts(self, dataset_ids: Sequence[int]) -> dict[int, DatasetCounts]:
        """Example counts and tokens of each version in ``dataset_ids``."""
        groups: dict[int, dict[tuple[str, str, str], tuple[int, int]]] = {i: {} for i in dataset_ids}
        if not dataset_ids:
            return {}
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        DatasetExample.dataset_id,
                        DatasetExample.kind,
                        DatasetExample.label,
                        DatasetExample.origin,
                        func.count(DatasetExample.id),
                        func.coalesce(func.sum(DatasetExample.token_count), 0),
                    )
                    .where(DatasetExample.dataset_id.in_(list(dataset_ids)))
                    .group_by(
                        DatasetExample.dataset_id, DatasetExample.kind, DatasetExample.label, DatasetExample.origin
                    )
                )
            ).all()
        for dataset_id, kind, label, origin, count, tokens in rows:
            groups[int(dataset_id)][(str(kind), str(label), str(origin))] = (int(count), int(tokens))
        return {i: DatasetCounts(g) for i, g in groups.items()}

    async def archive(self, guild_id: int, name: str) -> list[Dataset]:
        """Mark every live version of ``name`` archived; returns them."""
        async with self._db.session() as session, session.begin():
            rows = list(
                (
                    await session.scalars(
                        select(Dataset).where(
                            Dataset.guild_id == guild_id, Dataset.name == name, Dataset.archived_at.is_(None)
                        )
                    )
                ).all()
            )
            if rows:
                await session.execute(
                    update(Dataset).where(Dataset.id.in_([d.id for d in rows])).values(archived_at=utcnow())
                )
        return rows

    async def corrections_for_build(
        self,
        guild_id: int,
        *,
        since: dt.datetime | None,
        channel_id: int | None,
        model: str | None,
        include_pending: bool = False,
    ) -> list[Correction]:
        """Approved corrections in a guild (and pending ones with ``include_pending``; rejected ones never),
        optionally since a time, in a channel, of one model's replies."""
        query = (
            select(Correction)
            .join(BotReply, BotReply.id == Correction.reply_id)
            .join(
                ReviewItem,
                (ReviewItem.correction_id == Correction.id) & (ReviewItem.kind == ReviewKind.CORRECTION.value),
            )
            .where(
                Correction.guild_id == guild_id,
                BotReply.guild_id == guild_id,
                ReviewItem.status.in_(_usable(include_pending)),
            )
        )
        if since is not None:
            query = query.where(Correction.updated_at >= since)
        if channel_id is not None:
            query = query.where(Correction.channel_id == channel_id)
        if model is not None:
            query = query.where(BotReply.model == model)
        async with self._db.session() as session:
            return list((await session.scalars(query.order_by(Correction.id))).all())

    async def rated_replies(
        self,
        guild_id: int,
        *,
        since: dt.datetime | None,
        channel_id: int | None,
        model: str | None,
        include_pending: bool = False,
    ) -> list[tuple[BotReply, list[tuple[str, int]]]]:
        """Replies with approved feedback (and pending with ``include_pending``) under the same filters, each with
        its ``(kind, rating)`` pairs.

        Both the feedback and the reply must belong to ``guild_id``: feedback left in one guild on another guild's
        reply never brings that conversation into this guild's datasets.
        """
        query = (
            select(Feedback.reply_id, Feedback.kind, Feedback.rating)
            .join(BotReply, BotReply.id == Feedback.reply_id)
            .join(ReviewItem, (ReviewItem.feedback_id == Feedback.id) & (ReviewItem.kind == ReviewKind.RATING.value))
            .where(
                Feedback.guild_id == guild_id,
                BotReply.guild_id == guild_id,
                ReviewItem.status.in_(_usable(include_pending)),
            )
        )
        if since is not None:
            query = query.where(Feedback.created_at >= since)
        if channel_id is not None:
            query = query.where(Feedback.channel_id == channel_id)
        if model is not None:
            query = query.where(Feedback.model == model)
        async with self._db.session() as session:
            rows = (await session.execute(query.order_by(Feedback.id))).all()
            ratings: dict[int, list[tuple[str, int]]] = {}
            for reply_id, kind, rating in rows:
                if reply_id is not None:
                    ratings.setdefault(int(reply_id), []).append((str(kind), int(rating)))
            if not ratings:
                return []
            rated = query.with_only_columns(Feedback.reply_id).scalar_subquery()
            replies = (
                await session.scalars(
                    select(BotReply).where(BotReply.guild_id == guild_id, BotReply.id.in_(rated)).order_by(BotReply.id)
                )
            ).all()
        return [(reply, ratings[reply.id]) for reply in replies if reply.id in ratings]


def _usable(include_pending: bool) -> list[str]:
    """The review statuses a dataset build takes: approved, and pending on request; never rejected."""
    return [ReviewStatus.APPROVED.value, *([ReviewStatus.PENDING.value] if include_pending else [])]
