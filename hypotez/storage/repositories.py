"""Typed data access.  Plugins and ``ml/`` call these; no SQL lives anywhere else."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from typing import cast as cast_type

from sqlalchemy import Text, and_, case, cast, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.tokens import estimate_tokens
from hypotez.storage.models import (
    AuditEntry,
    BotReply,
    Correction,
    Dataset,
    DatasetExample,
    Feedback,
    GuildSettings,
    ReplyMessage,
    utcnow,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from sqlalchemy import Select, Table
    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database

__all__ = [
    "AuditLog",
    "CorrectionRepository",
    "DatasetCounts",
    "DatasetOverview",
    "DatasetRepository",
    "EffectiveSettings",
    "FeedbackRepository",
    "GuildSettingsRepository",
    "MessagePart",
    "ModelFeedbackStats",
    "ReplyRepository",
    "StoredExample",
    "content_hash",
    "examples_from_correction",
]


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Settings in force in one channel: the channel's override, else the guild's, else ``None``."""

    active_model: str | None
    system_prompt: str | None
    capability_roles: dict[str, list[int]]


class GuildSettingsRepository:
    """Per-guild and per-channel settings (``channel_id=0`` is the guild itself)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def effective(self, guild_id: int | None, channel_id: int) -> EffectiveSettings:
        if guild_id is None:
            return EffectiveSettings(None, None, {})
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(GuildSettings).where(
                        GuildSettings.guild_id == guild_id, GuildSettings.channel_id.in_((0, channel_id))
                    )
                )
            ).all()
        guild = next((r for r in rows if r.channel_id == 0), None)
        channel = next((r for r in rows if r.channel_id == channel_id and channel_id != 0), None)

        def pick(attr: str) -> Any:
            for row in (channel, guild):
                if row is not None and getattr(row, attr) is not None:
                    return getattr(row, attr)
            return None

        roles: dict[str, list[int]] = dict(guild.capability_roles) if guild else {}
        return EffectiveSettings(pick("active_model"), pick("system_prompt"), roles)

    async def update(self, guild_id: int, channel_id: int = 0, **values: Any) -> None:
        """Set fields (``active_model``, ``system_prompt``, ``capability_roles``) on a scope; ``None`` clears."""
        allowed = {"active_model", "system_prompt", "capability_roles"}
        if unknown := set(values) - allowed:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        async with self._db.session() as session, session.begin():
            row = await session.get(GuildSettings, (guild_id, channel_id))
            if row is None:
                row = GuildSettings(guild_id=guild_id, channel_id=channel_id, capability_roles={})
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)


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


@dataclass(frozen=True, slots=True)
class MessagePart:
    """Where one Discord message's text sits in a reply."""

    message_id: int
    start: int
    end: int


class ReplyRepository:
    """The bot's replies, the messages that carry them, and the conversations they form."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, reply: BotReply, parts: Sequence[MessagePart]) -> BotReply:
        """Store a reply that was delivered, with the messages carrying it (the first is ``message_id``)."""
        async with self._db.session() as session, session.begin():
            if parts:
                reply.message_id = parts[0].message_id
            session.add(reply)
            await session.flush()
            for index, part in enumerate(parts):
                session.add(
                    ReplyMessage(
                        message_id=part.message_id, reply_id=reply.id, part=index, start=part.start, end=part.end
                    )
                )
        return reply

    async def get(self, reply_id: int) -> BotReply | None:
        async with self._db.session() as session:
            return await session.get(BotReply, reply_id)

    async def by_message(
        self, message_id: int, *, guild_id: int | None, user_id: int | None = None, channel_id: int | None = None
    ) -> tuple[BotReply, ReplyMessage] | None:
        """The reply a Discord message belongs to, and that message's part — only a reply given in
        ``guild_id``; outside servers (``guild_id`` ``None``) only a reply in the caller's own DM or group DM
        ``channel_id`` (everyone there sees it), or one of ``user_id``'s own replies."""
        query = (
            select(BotReply, ReplyMessage)
            .join(ReplyMessage, ReplyMessage.reply_id == BotReply.id)
            .where(ReplyMessage.message_id == message_id)
        )
        if guild_id is not None:
            query = query.where(BotReply.guild_id == guild_id)
        else:
            visible = BotReply.author_id == (user_id or 0)
            if channel_id is not None:
                visible = or_(visible, BotReply.channel_id == channel_id)
            query = query.where(BotReply.guild_id.is_(None), visible)
        async with self._db.session() as session:
            row = (await session.execute(query)).first()
        return (row[0], row[1]) if row is not None else None

    async def parts(self, reply_id: int) -> list[ReplyMessage]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ReplyMessage).where(ReplyMessage.reply_id == reply_id).order_by(ReplyMessage.part)
            )
            return list(rows.all())

    async def thread(self, reply: BotReply, *, limit: int = 50) -> list[BotReply]:
        """The conversation ending with ``reply``, oldest first (at most ``limit`` replies)."""
        chain = [reply]
        async with self._db.session() as session:
            current = reply
            while current.parent_id is not None and len(chain) < limit:
                parent = await session.get(BotReply, current.parent_id)
                if parent is None:
                    break
                chain.append(parent)
                current = parent
        chain.reverse()
        return chain

    async def latest_in_channel(self, channel_id: int) -> BotReply | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(BotReply).where(BotReply.channel_id == channel_id).order_by(BotReply.id.desc()).limit(1)
            )

    async def recent_for_author(self, channel_id: int, author_id: int, *, limit: int = 25) -> list[BotReply]:
        """A member's most recent replies in a channel, newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(BotReply)
                .where(BotReply.channel_id == channel_id, BotReply.author_id == author_id)
                .order_by(BotReply.id.desc())
                .limit(limit)
            )
            return list(rows.all())


class CorrectionRepository:
    """Corrections of replies, and the training examples they yield.

    Each correction keeps two examples in its guild's ``corrections`` dataset: a supervised chat example
    (the context, then the corrected reply) and a preference pair (preferred: the correction, rejected: the
    original reply).  A member's second correction of a reply replaces their first, examples included.
    """

    DATASET = "corrections"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(
        self, reply: BotReply, *, author_id: int, corrected_text: str, source: str
    ) -> tuple[Correction, bool]:
        """Store (or replace) ``author_id``'s correction of ``reply``; returns it and whether it is new."""
        try:
            return await self._upsert(reply, author_id=author_id, corrected_text=corrected_text, source=source)
        except IntegrityError:
            # A concurrent submission (a double click, or the server's first corrections at once) won the
            # insert; the second attempt finds its rows and replaces them.
            return await self._upsert(reply, author_id=author_id, corrected_text=corrected_text, source=source)

    async def _upsert(
        self, reply: BotReply, *, author_id: int, corrected_text: str, source: str
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
            for example in examples_from_correction(correction):
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


def content_hash(payload: object) -> str:
    """A stable hash of an example's content, for deduplication."""
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def examples_from_correction(correction: Correction) -> list[DatasetExample]:
    """The supervised example and the preference pair a correction yields (not yet attached to a dataset)."""
    context = [dict(m) for m in correction.context]
    chat = [*context, {"role": "assistant", "content": correction.corrected_text}]
    ref = f"correction:{correction.id}"
    return [
        DatasetExample(
            kind="chat",
            label="positive",
            origin="correction",
            source_ref=ref,
            messages=chat,
            content_hash=content_hash(chat),
            token_count=estimate_tokens(" ".join(m["content"] for m in chat)),
        ),
        DatasetExample(
            kind="preference",
            label="positive",
            origin="correction",
            source_ref=ref,
            messages=context,
            preferred=correction.corrected_text,
            rejected=correction.original_text,
            content_hash=content_hash([context, correction.corrected_text, correction.original_text]),
            token_count=estimate_tokens(
                " ".join([*(m["content"] for m in context), correction.corrected_text, correction.original_text])
            ),
        ),
    ]


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


class FeedbackRepository:
    """Thumbs on replies and 1-5 ratings with comments."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def rate(self, reply: BotReply, *, author_id: int, up: bool) -> Feedback:
        """A member's thumb on a reply; pressing again replaces their earlier thumb."""
        return await self._put(reply, author_id=author_id, kind="thumbs", rating=1 if up else -1, comment=None)

    async def add_rating(
        self,
        *,
        author_id: int,
        guild_id: int | None,
        channel_id: int | None,
        rating: int,
        comment: str | None,
        reply: BotReply | None,
    ) -> Feedback:
        """A 1-5 rating with a comment: about one reply (a member's later rating replaces theirs) or general."""
        if not 1 <= rating <= 5:
            raise InvalidInputError("A rating is a whole number from 1 to 5.")
        if reply is not None:
            return await self._put(reply, author_id=author_id, kind="rating", rating=rating, comment=comment or None)
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

    async def _put(self, reply: BotReply, *, author_id: int, kind: str, rating: int, comment: str | None) -> Feedback:
        """Insert or replace a member's feedback of one kind on a reply (one row each: a unique constraint;
        a concurrent double click that loses the insert replaces the winner's row instead)."""
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


def _insert_rows(examples: Sequence[DatasetExample]) -> list[dict[str, Any]]:
    """Column values of ``examples``, each content once (in order)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for example in examples:
        if example.content_hash in seen:
            continue
        seen.add(example.content_hash)
        rows.append({name: getattr(example, name) for name in _EXAMPLE_FIELDS})
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
            if not version_text.isdigit():
                raise InvalidInputError(f"`{ref[:120]}`: write a version as `name@2`.")
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
    ) -> tuple[Dataset, int, int]:
        """Write a new version of ``name`` holding ``examples`` (and, with ``extend``, the newest live version's).

        Returns the version, how many examples were added, and how many were already there.  The examples are
        written with bulk INSERTs of :data:`EXAMPLE_CHUNK` rows (their values read in a worker thread), not as ORM
        objects; the previous version's are copied inside the database.
        """
        rows = await asyncio.to_thread(_insert_rows, examples)
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
                known: set[str] = set()
                if extend and previous is not None and previous.archived_at is None:
                    known = set(
                        (
                            await session.scalars(
                                select(DatasetExample.content_hash).where(DatasetExample.dataset_id == previous.id)
                            )
                        ).all()
                    )
                    columns = ["kind", "label", "origin", "source_ref", "messages", "preferred", "rejected"]
                    columns += ["token_count", "content_hash", "created_at"]
                    await session.execute(
                        insert(DatasetExample).from_select(
                            ["dataset_id", *columns],
                            select(literal(dataset.id), *(getattr(DatasetExample, c) for c in columns)).where(
                                DatasetExample.dataset_id == previous.id
                            ),
                        )
                    )
                new_rows = [row for row in rows if row["content_hash"] not in known] if known else rows
                for start in range(0, len(new_rows), EXAMPLE_CHUNK):
                    chunk = new_rows[start : start + EXAMPLE_CHUNK]
                    for row in chunk:
                        row["dataset_id"] = dataset.id
                    await session.execute(insert(_EXAMPLES), chunk)
                added = len(new_rows)
                if added == 0 and known:
                    assert previous is not None
                    raise InvalidInputError(
                        f"Nothing new: every example is already in `{name}` (version {previous.version})."
                    )
        except IntegrityError:
            raise InvalidInputError(
                f"Dataset `{name}` was changed by someone else at the same moment; try again."
            ) from None
        return dataset, added, len(examples) - added

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
        self, guild_id: int, *, since: dt.datetime | None, channel_id: int | None, model: str | None
    ) -> list[Correction]:
        """Corrections in a guild, optionally since a time, in a channel, of one model's replies."""
        query = (
            select(Correction)
            .join(BotReply, BotReply.id == Correction.reply_id)
            .where(Correction.guild_id == guild_id, BotReply.guild_id == guild_id)
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
        self, guild_id: int, *, since: dt.datetime | None, channel_id: int | None, model: str | None
    ) -> list[tuple[BotReply, list[tuple[str, int]]]]:
        """Replies with feedback under the same filters, each with its ``(kind, rating)`` pairs.

        Both the feedback and the reply must belong to ``guild_id``: feedback left in one guild on another guild's
        reply never brings that conversation into this guild's datasets.
        """
        query = (
            select(Feedback.reply_id, Feedback.kind, Feedback.rating)
            .join(BotReply, BotReply.id == Feedback.reply_id)
            .where(Feedback.guild_id == guild_id, BotReply.guild_id == guild_id)
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
