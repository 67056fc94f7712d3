"""A member's data, all of it: exported for them, or forgotten.

:meth:`PrivacyRepository.forget` deletes what a member made and what was made from it, one transaction per table
group, each statement over at most :data:`BATCH` ids (a long history never holds one huge statement, and every
statement awaits the database, so the event loop keeps running):

1. **datasets** — examples whose ``source_ref`` names their corrections (``correction:<id>``), the replies they
   were given or rated (``reply:<id>``) and the arena matches they started (``arena:<match>:<side>``), removed from
   every dataset version that is not archived (archived versions are kept as they are, and counted); the arena
   pair of a match they voted on goes when no other approved vote keeps it;
2. **training records** — examples kept with training jobs and cases of evaluation runs whose texts equal one of
   theirs (a message they wrote, a correction, a transcript: "where identifiable"), removed; the jobs trained on a
   dataset version that held their examples are listed (a trained model cannot un-learn);
3. **review** — the review items they made (or made from their replies) with every vote on them; their own votes
   as a curator on other members' items are kept, anonymised (the curator id becomes a negative number naming
   nobody, their reason is cleared), because those votes decided other members' items;
4. **arena** — their votes, and the matches they started with every vote on them;
5. **conversations** — their replies (``BotReply`` with its ``ReplyMessage`` rows), their corrections and other
   members' corrections of their replies (built on their conversation), their feedback (others' ratings of their
   replies stay, detached);
6. **transcripts** — of their audio, with every correction of them, and their corrections of others' transcripts;
   the audio files are named for removal after the commit (:func:`remove_audio`);
7. **member** — (everywhere only) their preferences and their cooldown counters; in scope, their id is removed
   from training jobs, evaluation runs, datasets and vocabulary terms they made for the server;
8. **audit log** — entries are kept (a security record) with their id replaced by :data:`FORGOTTEN`.

A :class:`Scope` with a ``guild_id`` limits all of this to one server's rows (an administrator forgetting a member
who left); without one it covers the member's rows everywhere.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import ColumnElement, delete, func, or_, select, true, update

from hypotez.storage.models import (
    ArenaMatch,
    ArenaVote,
    AuditEntry,
    BotReply,
    Cooldown,
    Correction,
    Dataset,
    DatasetExample,
    EvaluationRun,
    Feedback,
    JobExample,
    MemberPreferences,
    ReplyMessage,
    ReviewItem,
    ReviewStatus,
    ReviewVote,
    TrainingJob,
    Transcript,
    TranscriptCorrection,
    VocabularyTerm,
)
from hypotez.text import jsonl_line

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database
    from hypotez.storage.files import DataDirectory

__all__ = [
    "BATCH",
    "FORGOTTEN",
    "ForgetReport",
    "MemberData",
    "PrivacyRepository",
    "Scope",
    "StoredAudio",
    "build_export",
    "list_exports",
    "remove_audio",
]

#: Ids per statement.
BATCH: Final = 500
#: The id written where a forgotten member's id was (audit entries, jobs, runs).
FORGOTTEN: Final = 0
#: Texts shorter than this are too common to identify a member in training records.
MIN_IDENTIFYING_CHARS: Final = 12
#: A guild's areas of files made from its data: exports and ``/test`` reports (``hypotez.storage.files.layout``).
_MADE_FROM_DATA: Final = ("exports", "reports")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data, and where: one server's rows (``guild_id``) or every row of theirs (``None``)."""

    user_id: int
    guild_id: int | None = None

    def where(self, column: Any) -> ColumnElement[bool]:
        return true() if self.guild_id is None else column == self.guild_id


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """A recording kept with a transcript: the guild's area and the path relative to it."""

    transcript_id: int
    guild_id: int
    path: str


@dataclass(slots=True)
class ForgetReport:
    """What :meth:`PrivacyRepository.forget` did."""

    #: Rows removed (or anonymised, for ``*.anonymised``) by table.
    counts: Counter[str] = field(default_factory=Counter[str])
    #: Examples removed, by dataset version (``name@version``).
    datasets: dict[str, int] = field(default_factory=dict[str, int])
    #: Archived dataset versions still holding examples of theirs (archives are kept).
    archived: list[str] = field(default_factory=list[str])
    #: Training jobs whose data held theirs (``#id base → result``).
    jobs: list[str] = field(default_factory=list[str])
    #: Recordings to remove from disk (after the commit).
    audio: list[StoredAudio] = field(default_factory=list[StoredAudio])
    #: The bot's Discord messages showing what was deleted (review-channel posts, arena matches they started):
    #: ``(channel id, message id)``, to delete from Discord after the commit.
    posts: list[tuple[int, int]] = field(default_factory=list[tuple[int, int]])
    #: Servers their data was in, and when the oldest of it was made (for listing exports made since).
    guilds: set[int] = field(default_factory=set[int])
    since: dt.datetime | None = None

    def seen(self, guild_id: int | None, when: dt.datetime | None) -> None:
        if guild_id:
            self.guilds.add(guild_id)
        if when is not None and (self.since is None or when < self.since):
            self.since = when


@dataclass(slots=True)
class MemberData:
    """Everything of one member's, table by table (JSON-ready dicts), and their recordings."""

    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict[str, list[dict[str, Any]]])
    audio: list[StoredAudio] = field(default_factory=list[StoredAudio])

    @property
    def empty(self) -> bool:
        return not any(self.sections.values())


def _chunks(ids: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(dict.fromkeys(ids))
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _row(obj: Any, *skip: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(obj, column.key)
        out[column.key] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value.strip()
    elif isinstance(value, dict):
        for item in value.values():  # pyright: ignore[reportUnknownVariableType]
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _strings(item)


def _mentions(value: Any, texts: set[str]) -> bool:
    return any(s in texts for s in _strings(value))


def _scrub(value: Any, user_id: int) -> Any:
    """``value`` with ``user_id`` (as a number or inside a string) replaced by :data:`FORGOTTEN`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return FORGOTTEN if value == user_id else value
    if isinstance(value, str):
        return value.replace(str(user_id), "forgotten-member")
    if isinstance(value, dict):
        return {k: _scrub(v, user_id) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [_scrub(v, user_id) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


@dataclass(slots=True)
class _Owned:
    """The ids of a member's rows, read once before anything is deleted."""

    replies: list[int] = field(default_factory=list[int])
    corrections: list[int] = field(default_factory=list[int])
    feedback: list[int] = field(default_factory=list[int])
    rated: list[int] = field(default_factory=list[int])
    transcripts: list[int] = field(default_factory=list[int])
    votes: list[tuple[int, int, str]] = field(default_factory=list[tuple[int, int, str]])
    matches: list[int] = field(default_factory=list[int])
    texts: set[str] = field(default_factory=set[str])


class PrivacyRepository:
    """Export or forget one member's data (see the module's docstring for what each covers)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reading ------------------------------------------------------------------------------------------------

    async def _owned(self, session: AsyncSession, scope: Scope, report: ForgetReport) -> _Owned:
        uid = scope.user_id
        owned = _Owned()
        for rid, gid, when, text in await session.execute(
            select(BotReply.id, BotReply.guild_id, BotReply.created_at, BotReply.user_text).where(
                BotReply.author_id == uid, scope.where(BotReply.guild_id)
            )
        ):
            owned.replies.append(rid)
            owned.texts.add(text.strip())
            report.seen(gid, when)
        for cid, gid, when, text in await session.execute(
            select(Correction.id, Correction.guild_id, Correction.created_at, Correction.corrected_text).where(
                Correction.author_id == uid, scope.where(Correction.guild_id)
            )
        ):
            owned.corrections.append(cid)
            owned.texts.add(text.strip())
            report.seen(gid, when)
        for chunk in _chunks(owned.replies):  # others' corrections of their replies hold their conversation
            owned.corrections += (
                await session.scalars(select(Correction.id).where(Correction.reply_id.in_(chunk)))
            ).all()
        for fid, gid, when, reply_id in await session.execute(
            select(Feedback.id, Feedback.guild_id, Feedback.created_at, Feedback.reply_id).where(
                Feedback.author_id == uid, scope.where(Feedback.guild_id)
            )
        ):
            owned.feedback.append(fid)
            if reply_id is not None:
                owned.rated.append(reply_id)
            report.seen(gid, when)
        for tid, gid, when, text, audio in await session.execute(
            select(
                Transcript.id, Transcript.guild_id, Transcript.created_at, Transcript.text, Transcript.audio_path
            ).where(Transcript.author_id == uid, scope.where(Transcript.guild_id))
        ):
            owned.transcripts.append(tid)
            owned.texts.add(text.strip())
            if audio and gid:
                report.audio.append(StoredAudio(tid, gid, audio))
            report.seen(gid, when)
        for vid, mid, choice, gid, when in await session.execute(
            select(ArenaVote.id, ArenaVote.match_id, ArenaVote.choice, ArenaVote.guild_id, ArenaVote.created_at).where(
                ArenaVote.voter_id == uid, scope.where(ArenaVote.guild_id)
            )
        ):
            owned.votes.append((vid, mid, choice))
            report.seen(gid, when)
        for mid, gid, when, text in await session.execute(
            select(ArenaMatch.id, ArenaMatch.guild_id, ArenaMatch.created_at, ArenaMatch.user_text).where(
                ArenaMatch.author_id == uid, scope.where(ArenaMatch.guild_id)
            )
        ):
            owned.matches.append(mid)
            owned.texts.add(text.strip())
            report.seen(gid, when)
        owned.texts = {t for t in owned.texts if len(t) >= MIN_IDENTIFYING_CHARS}
        return owned

    # -- forgetting ---------------------------------------------------------------------------------------------

    async def forget(self, scope: Scope) -> ForgetReport:
        """Delete (or anonymise) every row of the member's in ``scope``; see the module docstring."""
        report = ForgetReport()
        async with self._db.session() as session:
            owned = await self._owned(session, scope, report)
        refs = [f"correction:{i}" for i in owned.corrections]
        refs += [f"reply:{i}" for i in [*owned.replies, *owned.rated]]
        refs += [f"arena:{m}:{side}" for m in owned.matches for side in ("a", "b")]
        used: set[int] = set()
        async with self._db.session() as session, session.begin():
            used = await self._forget_examples(session, scope, refs, report)
        async with self._db.session() as session, session.begin():
            await self._forget_training_records(session, scope, owned, used, report)
        async with self._db.session() as session, session.begin():
            await self._forget_review(session, scope, owned, report)
        async with self._db.session() as session, session.begin():
            await self._forget_arena(session, scope, owned, report)
        async with self._db.session() as session, session.begin():
            await self._forget_conversations(session, owned, report)
        async with self._db.session() as session, session.begin():
            await self._forget_transcripts(session, scope, owned, report)
        async with self._db.session() as session, session.begin():
            await self._forget_member(session, scope, report)
        async with self._db.session() as session, session.begin():
            await self._anonymise_audit(session, scope, report)
        return report

    async def _forget_examples(
        self, session: AsyncSession, scope: Scope, refs: Sequence[str], report: ForgetReport
    ) -> set[int]:
        """Remove examples made from ``refs`` from live versions; returns every dataset id that held any."""
        found: Counter[int] = Counter()
        for chunk in _chunks(refs):
            for dataset_id, count in await session.execute(
                select(DatasetExample.dataset_id, func.count())
                .where(DatasetExample.source_ref.in_(chunk))
                .group_by(DatasetExample.dataset_id)
            ):
                found[dataset_id] += int(count)
        if not found:
            return set()
        versions = {
            d.id: d
            for d in (
                await session.scalars(select(Dataset).where(Dataset.id.in_(list(found)), scope.where(Dataset.guild_id)))
            ).all()
        }
        live = [i for i, d in versions.items() if d.archived_at is None]
        for chunk in _chunks(refs):
            result = await session.execute(
                delete(DatasetExample)
                .where(DatasetExample.source_ref.in_(chunk), DatasetExample.dataset_id.in_(live))
                .execution_options(synchronize_session=False)
            )
            report.counts["dataset_examples"] += _rowcount(result)
        for dataset_id, dataset in sorted(versions.items()):
            label = f"{dataset.name}@{dataset.version}"
            if dataset.archived_at is None:
                report.datasets[label] = found[dataset_id]
            else:
                report.archived.append(label)
        return set(versions)

    async def _forget_training_records(
        self, session: AsyncSession, scope: Scope, owned: _Owned, datasets: set[int], report: ForgetReport
    ) -> None:
        job_filter = [TrainingJob.dataset_id.in_(list(datasets))] if datasets else []
        jobs: dict[int, TrainingJob] = {}
        if job_filter:
            jobs = {j.id: j for j in (await session.scalars(select(TrainingJob).where(*job_filter))).all()}
        texts = owned.texts
        if texts:
            # Jobs given their texts without a dataset (an attachment, the corrections collected) count too.
            # Only the servers their data was in (and jobs outside any server) can hold their texts.
            where = scope.where(TrainingJob.guild_id)
            if scope.guild_id is None:
                where = or_(TrainingJob.guild_id.in_(sorted(report.guilds)), TrainingJob.guild_id.is_(None))
            candidates = (await session.scalars(select(TrainingJob).where(where))).all()
            for job in candidates:
                if job.id in jobs:
                    continue
                rows = await session.execute(
                    select(JobExample.id, JobExample.record).where(JobExample.job_id == job.id)
                )
                if any(_mentions(record, texts) for _, record in rows):
                    jobs[job.id] = job
            for job_id in jobs:
                doomed = [
                    ident
                    for ident, record in await session.execute(
                        select(JobExample.id, JobExample.record).where(JobExample.job_id == job_id)
                    )
                    if _mentions(record, texts)
                ]
                for chunk in _chunks(doomed):
                    await session.execute(
                        delete(JobExample).where(JobExample.id.in_(chunk)).execution_options(synchronize_session=False)
                    )
                report.counts["job_examples"] += len(doomed)
            runs_where = scope.where(EvaluationRun.guild_id)
            if scope.guild_id is None:
                runs_where = or_(EvaluationRun.guild_id.in_(sorted(report.guilds)), EvaluationRun.guild_id.is_(None))
            for run in (await session.scalars(select(EvaluationRun).where(runs_where))).all():
                kept = [case for case in run.cases if not _mentions(case, texts)]
                if len(kept) != len(run.cases):
                    report.counts["evaluation_cases"] += len(run.cases) - len(kept)
                    run.cases = kept
        report.jobs = [
            f"#{j.id} ({j.status}{', model ' + j.result_model if j.result_model else ''})"
            for j in sorted(jobs.values(), key=lambda j: j.id)
        ]

    async def _forget_review(self, session: AsyncSession, scope: Scope, owned: _Owned, report: ForgetReport) -> None:
        uid = scope.user_id
        items = set(
            (
                await session.scalars(
                    select(ReviewItem.id).where(ReviewItem.author_id == uid, scope.where(ReviewItem.guild_id))
                )
            ).all()
        )
        for column, ids in (
            (ReviewItem.correction_id, owned.corrections),
            (ReviewItem.feedback_id, owned.feedback),
            (ReviewItem.reply_id, owned.replies),
        ):
            for chunk in _chunks(ids):
                items.update((await session.scalars(select(ReviewItem.id).where(column.in_(chunk)))).all())
        for chunk in _chunks(owned.matches):  # every vote on a match they started goes with it
            items.update(
                i
                for i in (
                    await session.scalars(select(ArenaVote.review_item_id).where(ArenaVote.match_id.in_(chunk)))
                ).all()
                if i is not None
            )
        for chunk in _chunks(items):
            for channel_id, message_id in await session.execute(
                select(ReviewItem.posted_channel_id, ReviewItem.posted_message_id).where(
                    ReviewItem.id.in_(chunk), ReviewItem.posted_message_id.is_not(None)
                )
            ):
                if channel_id is not None and message_id is not None:
                    report.posts.append((channel_id, message_id))
            result = await session.execute(
                delete(ReviewVote).where(ReviewVote.item_id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["review_votes"] += _rowcount(result)
            await session.execute(
                update(ArenaVote).where(ArenaVote.review_item_id.in_(chunk)).values(review_item_id=None)
            )
            result = await session.execute(
                delete(ReviewItem).where(ReviewItem.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["review_items"] += _rowcount(result)
        # Their decisions on other members' items stand, by nobody in particular.
        in_scope = select(ReviewItem.id).where(scope.where(ReviewItem.guild_id)).scalar_subquery()
        result = await session.execute(
            update(ReviewVote)
            .where(ReviewVote.curator_id == uid, ReviewVote.item_id.in_(in_scope))
            .values(curator_id=-ReviewVote.id, reason=None)
            .execution_options(synchronize_session=False)
        )
        report.counts["review_votes.anonymised"] += _rowcount(result)

    async def _forget_arena(self, session: AsyncSession, scope: Scope, owned: _Owned, report: ForgetReport) -> None:
        del scope
        for chunk in _chunks([v for v, _, _ in owned.votes]):
            result = await session.execute(
                delete(ArenaVote).where(ArenaVote.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["arena_votes"] += _rowcount(result)
        started = set(owned.matches)
        for match_id, choice in {(m, c) for _, m, c in owned.votes if c in {"a", "b"} and m not in started}:
            # The pair stays while another approved vote for the same side keeps it.
            approved = await session.scalar(
                select(func.count())
                .select_from(ArenaVote)
                .join(ReviewItem, ReviewItem.id == ArenaVote.review_item_id)
                .where(
                    ArenaVote.match_id == match_id,
                    ArenaVote.choice == choice,
                    ReviewItem.status == ReviewStatus.APPROVED.value,
                )
            )
            if not approved:
                live = select(Dataset.id).where(Dataset.archived_at.is_(None)).scalar_subquery()
                result = await session.execute(
                    delete(DatasetExample)
                    .where(
                        DatasetExample.source_ref == f"arena:{match_id}:{choice}", DatasetExample.dataset_id.in_(live)
                    )
                    .execution_options(synchronize_session=False)
                )
                report.counts["dataset_examples"] += _rowcount(result)
        for chunk in _chunks(owned.matches):
            for channel_id, message_id in await session.execute(
                select(ArenaMatch.channel_id, ArenaMatch.message_id).where(
                    ArenaMatch.id.in_(chunk), ArenaMatch.message_id.is_not(None)
                )
            ):
                if message_id is not None:
                    report.posts.append((channel_id, message_id))
            result = await session.execute(
                delete(ArenaVote).where(ArenaVote.match_id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["arena_votes"] += _rowcount(result)
            result = await session.execute(
                delete(ArenaMatch).where(ArenaMatch.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["arena_matches"] += _rowcount(result)

    async def _forget_conversations(self, session: AsyncSession, owned: _Owned, report: ForgetReport) -> None:
        for chunk in _chunks(owned.corrections):
            result = await session.execute(
                delete(Correction).where(Correction.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["corrections"] += _rowcount(result)
        for chunk in _chunks(owned.feedback):
            result = await session.execute(
                delete(Feedback).where(Feedback.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["feedback"] += _rowcount(result)
        for chunk in _chunks(owned.replies):
            await session.execute(update(Feedback).where(Feedback.reply_id.in_(chunk)).values(reply_id=None))
            await session.execute(update(BotReply).where(BotReply.parent_id.in_(chunk)).values(parent_id=None))
            result = await session.execute(
                delete(ReplyMessage)
                .where(ReplyMessage.reply_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            report.counts["reply_messages"] += _rowcount(result)
            result = await session.execute(
                delete(BotReply).where(BotReply.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["bot_replies"] += _rowcount(result)

    async def _forget_transcripts(
        self, session: AsyncSession, scope: Scope, owned: _Owned, report: ForgetReport
    ) -> None:
        uid = scope.user_id
        result = await session.execute(
            delete(TranscriptCorrection)
            .where(TranscriptCorrection.author_id == uid, scope.where(TranscriptCorrection.guild_id))
            .execution_options(synchronize_session=False)
        )
        report.counts["transcript_corrections"] += _rowcount(result)
        for chunk in _chunks(owned.transcripts):
            result = await session.execute(
                delete(TranscriptCorrection)
                .where(TranscriptCorrection.transcript_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            report.counts["transcript_corrections"] += _rowcount(result)
            result = await session.execute(
                delete(Transcript).where(Transcript.id.in_(chunk)).execution_options(synchronize_session=False)
            )
            report.counts["transcripts"] += _rowcount(result)
        await session.execute(
            update(Transcript)
            .where(Transcript.requested_by == uid, scope.where(Transcript.guild_id))
            .values(requested_by=None)
        )
        await session.execute(
            update(VocabularyTerm)
            .where(VocabularyTerm.added_by == uid, scope.where(VocabularyTerm.guild_id))
            .values(added_by=None)
        )

    async def _forget_member(self, session: AsyncSession, scope: Scope, report: ForgetReport) -> None:
        uid = scope.user_id
        if scope.guild_id is None:  # preferences and cooldowns are the member's everywhere, not a server's
            result = await session.execute(
                delete(MemberPreferences)
                .where(MemberPreferences.user_id == uid)
                .execution_options(synchronize_session=False)
            )
            report.counts["member_preferences"] += _rowcount(result)
            result = await session.execute(
                delete(Cooldown)
                .where(Cooldown.key.endswith(f":user:{uid}", autoescape=True))
                .execution_options(synchronize_session=False)
            )
            report.counts["cooldowns"] += _rowcount(result)
        result = await session.execute(
            update(TrainingJob)
            .where(TrainingJob.requested_by == uid, scope.where(TrainingJob.guild_id))
            .values(requested_by=FORGOTTEN)
        )
        report.counts["training_jobs.anonymised"] += _rowcount(result)
        result = await session.execute(
            update(EvaluationRun)
            .where(EvaluationRun.requested_by == uid, scope.where(EvaluationRun.guild_id))
            .values(requested_by=FORGOTTEN)
        )
        report.counts["evaluation_runs.anonymised"] += _rowcount(result)
        await session.execute(
            update(Dataset).where(Dataset.created_by == uid, scope.where(Dataset.guild_id)).values(created_by=None)
        )

    async def _anonymise_audit(self, session: AsyncSession, scope: Scope, report: ForgetReport) -> None:
        uid = scope.user_id
        text = str(uid)
        before: int | None = None
        while True:
            statement = (
                select(AuditEntry)
                .where(
                    or_(AuditEntry.actor_id == uid, AuditEntry.target.contains(text, autoescape=True)),
                    scope.where(AuditEntry.guild_id),
                )
                .order_by(AuditEntry.id.desc())
                .limit(BATCH)
            )
            if before is not None:
                statement = statement.where(AuditEntry.id < before)
            rows = list((await session.scalars(statement)).all())
            for entry in rows:
                if entry.actor_id == uid:
                    entry.actor_id = FORGOTTEN
                if entry.target:
                    entry.target = _scrub(entry.target, uid)
                entry.details = _scrub(dict(entry.details), uid)
            report.counts["audit_log.anonymised"] += len(rows)
            await session.flush()
            if len(rows) < BATCH:
                return
            before = rows[-1].id

    # -- exporting ----------------------------------------------------------------------------------------------

    async def export(self, scope: Scope) -> MemberData:
        """Every row of the member's in ``scope``, read in batches."""
        uid = scope.user_id
        data = MemberData()
        async with self._db.session() as session:

            async def rows(model: Any, *where: Any) -> list[Any]:
                out: list[Any] = []
                after = 0
                while True:
                    batch = list(
                        (
                            await session.scalars(
                                select(model).where(*where, model.id > after).order_by(model.id).limit(BATCH)
                            )
                        ).all()
                    )
                    out += batch
                    if len(batch) < BATCH:
                        return out
                    after = batch[-1].id

            replies = await rows(BotReply, BotReply.author_id == uid, scope.where(BotReply.guild_id))
            data.sections["replies"] = [
                {
                    **{
                        k: v for k, v in _row(r).items() if k in {"id", "guild_id", "channel_id", "message_id", "model"}
                    },
                    "created_at": r.created_at.isoformat(),
                    "your_message": r.user_text,
                    "reply": r.content,
                    "conversation": r.prompt_messages,
                }
                for r in replies
            ]
            data.sections["corrections"] = [
                _row(c) for c in await rows(Correction, Correction.author_id == uid, scope.where(Correction.guild_id))
            ]
            data.sections["feedback"] = [
                _row(f) for f in await rows(Feedback, Feedback.author_id == uid, scope.where(Feedback.guild_id))
            ]
            transcripts = await rows(Transcript, Transcript.author_id == uid, scope.where(Transcript.guild_id))
            data.sections["transcripts"] = [_row(t) for t in transcripts]
            data.audio = [
                StoredAudio(t.id, t.guild_id, t.audio_path) for t in transcripts if t.audio_path and t.guild_id
            ]
            data.sections["transcript_corrections"] = [
                _row(c)
                for c in await rows(
                    TranscriptCorrection,
                    TranscriptCorrection.author_id == uid,
                    scope.where(TranscriptCorrection.guild_id),
                )
            ]
            votes = await rows(ArenaVote, ArenaVote.voter_id == uid, scope.where(ArenaVote.guild_id))
            questions: dict[int, str] = {}
            for chunk in _chunks([v.match_id for v in votes]):
                for match_id, text in await session.execute(
                    select(ArenaMatch.id, ArenaMatch.user_text).where(ArenaMatch.id.in_(chunk))
                ):
                    questions[match_id] = text
            data.sections["arena_votes"] = [{**_row(v), "question": questions.get(v.match_id)} for v in votes]
            data.sections["arena_matches"] = [
                _row(m, "model_a", "model_b")  # the names of an open match stay blind
                if m.closed_at is None
                else _row(m)
                for m in await rows(ArenaMatch, ArenaMatch.author_id == uid, scope.where(ArenaMatch.guild_id))
            ]
            data.sections["review_items"] = [
                _row(i) for i in await rows(ReviewItem, ReviewItem.author_id == uid, scope.where(ReviewItem.guild_id))
            ]
            in_scope = select(ReviewItem.id).where(scope.where(ReviewItem.guild_id)).scalar_subquery()
            data.sections["review_votes"] = [
                _row(v) for v in await rows(ReviewVote, ReviewVote.curator_id == uid, ReviewVote.item_id.in_(in_scope))
            ]
            if scope.guild_id is None:
                prefs = await session.get(MemberPreferences, uid)
                data.sections["preferences"] = [_row(prefs)] if prefs is not None else []
        return data


# -- files (blocking: call through asyncio.to_thread) ------------------------------------------------------------


def _audio_file(data_dir: DataDirectory, audio: StoredAudio) -> Path | None:
    root = data_dir.for_guild(audio.guild_id).root.resolve()
    path = (root / audio.path).resolve()
    return path if path.is_relative_to(root) else None


def remove_audio(data_dir: DataDirectory, audio: Sequence[StoredAudio]) -> int:
    """Delete the recordings ``audio`` names (inside their guild's area only); returns how many were removed."""
    removed = 0
    for item in audio:
        path = _audio_file(data_dir, item)
        if path is not None and path.is_file():
            path.unlink()
            removed += 1
    return removed


def list_exports(data_dir: DataDirectory, guilds: Iterable[int], since: dt.datetime | None) -> list[str]:
    """Files in the guilds' ``exports/`` and ``reports/`` areas written since ``since``: they may hold the
    member's data.  The ``archive/`` areas are not listed: archives are kept as they are."""
    if since is None:
        return []
    found: list[str] = []
    for guild_id in sorted(guilds):
        area = data_dir.for_guild(guild_id)
        for name in _MADE_FROM_DATA:
            folder = area.root / name
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) >= since:
                    found.append(f"{guild_id}/{area.relative(path)}")
    return found


def build_export(data: MemberData, data_dir: DataDirectory, *, limit: int, note: str) -> tuple[bytes, list[str]]:
    """A zip of ``data`` (one JSONL file per section, ``README.txt`` with ``note``), with the recordings when the
    zip stays within ``limit`` bytes; returns the zip and the recordings left out (listed in the zip too)."""

    def write(with_audio: bool) -> tuple[bytes, list[str]]:
        buffer = io.BytesIO()
        left_out: list[str] = []
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("README.txt", note)
            for name, rows in data.sections.items():
                zf.writestr(f"{name}.jsonl", "".join(jsonl_line(r, default=str) for r in rows))
            for audio in data.audio:
                path = _audio_file(data_dir, audio)
                if path is None or not path.is_file():
                    continue
                if with_audio:
                    zf.write(path, f"audio/{audio.transcript_id}{path.suffix}")
                else:
                    left_out.append(f"transcript {audio.transcript_id}: {audio.path}")
            if left_out:
                zf.writestr(
                    "audio-not-included.txt",
                    "These recordings did not fit in the upload limit; ask the server's administrators for them:\n"
                    + "\n".join(left_out)
                    + "\n",
                )
        return buffer.getvalue(), left_out

    packed, left_out = write(True)
    if len(packed) > limit and data.audio:
        packed, left_out = write(False)
    return packed, left_out
