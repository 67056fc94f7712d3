"""Training jobs: their rows (at most one unfinished per identical request), events and metrics, and the model a
succeeded job registers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from hypotez.errors import NotFoundError
from hypotez.storage.models import ACTIVE_JOB, JobEvent, JobState, RegisteredModel, TrainingJob, utcnow
from hypotez.storage.repositories.registered_models import register_job_result

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from sqlalchemy.engine import CursorResult

    from hypotez.storage.db import Database

__all__ = ["JobRepository", "ReportedEvent", "ReportedStatus"]

#: The PostgreSQL advisory lock key under which training slots are claimed, one claim at a time.
_SLOT_LOCK = 0x687A_736C  # "hzsl"
_UNFINISHED = [s.value for s in JobState if not s.finished]
#: Metrics kept as series ``[[step, value], ...]`` (event data key -> metrics key), for the chart.
_SERIES = {
    "train_loss": "loss",
    "valid_loss": "valid",
    "reward_accuracy": "reward_accuracies",
    "reward_margin": "reward_margins",
}
#: Metrics kept as their latest value.
_LATEST = (
    "total_steps",
    "learning_rate",
    "epoch",
    "valid_loss",
    "train_mean_token_accuracy",
    "reward_accuracy",
    "reward_margin",
)


class ReportedStatus(Protocol):
    """A job's status as its trainer reports it (:class:`hypotez.ml.trainers.base.JobStatus`)."""

    @property
    def step(self) -> int | None: ...
    @property
    def total_steps(self) -> int | None: ...
    @property
    def result_model(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def started_at(self) -> dt.datetime | None: ...
    @property
    def estimated_finish_at(self) -> dt.datetime | None: ...


class ReportedEvent(Protocol):
    """One event as a trainer reports it (:class:`hypotez.ml.trainers.base.JobEventRecord`)."""

    @property
    def external_id(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def message(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


class JobRepository:
    """Training jobs and their events."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_duplicate(self, request_hash: str, *, grace: dt.timedelta) -> TrainingJob | None:
        """An unfinished job for an identical request (one stuck before its start, created more than ``grace``
        ago without being accepted by its trainer, does not count)."""
        async with self._db.session() as session:
            return await session.scalar(
                select(TrainingJob)
                .where(
                    TrainingJob.request_hash == request_hash,
                    TrainingJob.status.not_in([s.value for s in JobState if s.finished]),
                    or_(
                        TrainingJob.external_id.is_not(None),
                        TrainingJob.status == JobState.QUEUED.value,  # waiting for a training slot
                        TrainingJob.created_at > utcnow() - grace,
                    ),
                )
                .limit(1)
            )

    async def fail_interrupted(self, *, grace: dt.timedelta) -> int:
        """Fail jobs created more than ``grace`` ago that their trainer never accepted, and jobs that claimed a
        training slot more than ``grace`` ago without being started; returns how many."""
        async with self._db.session() as session, session.begin():
            stuck = (
                await session.scalars(
                    select(TrainingJob).where(
                        TrainingJob.external_id.is_(None),
                        or_(
                            and_(
                                TrainingJob.status == JobState.PENDING.value,
                                TrainingJob.created_at <= utcnow() - grace,
                            ),
                            and_(
                                TrainingJob.status == JobState.VALIDATING.value,
                                TrainingJob.updated_at <= utcnow() - grace,
                            ),
                        ),
                    )
                )
            ).all()
            for job in stuck:
                job.status = JobState.FAILED.value
                job.error = "The bot stopped while this job was starting; start it again."
                job.finished_at = utcnow()
        return len(stuck)

    async def insert(self, job: TrainingJob) -> tuple[TrainingJob, bool]:
        """Store a new job: ``(job, True)``, or ``(existing, False)`` when its idempotency key was already used or
        an identical request (the same ``request_hash``) is unfinished — checked by the database itself (a unique
        key and a partial unique index), so replicas sharing it cannot both start one."""
        try:
            async with self._db.session() as session, session.begin():
                session.add(job)
        except IntegrityError:
            async with self._db.session() as session:
                existing = await session.scalar(
                    select(TrainingJob).where(
                        or_(
                            TrainingJob.idempotency_key == job.idempotency_key,
                            and_(TrainingJob.request_hash == job.request_hash, text(ACTIVE_JOB)),
                        )
                    )
                )
            if existing is None:  # pragma: no cover - one of the two constraints names it
                raise
            return existing, False
        return job, True

    async def update(self, job_id: int, **values: Any) -> None:
        """Set fields of a job; :class:`NotFoundError` when there is no such job."""
        async with self._db.session() as session, session.begin():
            job = await session.get(TrainingJob, job_id)
            if job is None:
                raise NotFoundError("training job", job_id)
            for key, value in values.items():
                setattr(job, key, value)

    async def get(self, job_id: int) -> TrainingJob | None:
        async with self._db.session() as session:
            return await session.get(TrainingJob, job_id)

    async def by_status_message(self, message_id: int) -> TrainingJob | None:
        async with self._db.session() as session:
            return await session.scalar(select(TrainingJob).where(TrainingJob.status_message_id == message_id))

    async def list(self, guild_id: int | None, *, limit: int = 25) -> list[TrainingJob]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(TrainingJob).where(TrainingJob.guild_id == guild_id).order_by(TrainingJob.id.desc()).limit(limit)
            )
            return list(rows.all())

    async def events(self, job_id: int, *, limit: int = 1000) -> list[JobEvent]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id).limit(limit)
            )
            return list(rows.all())

    async def unfinished(self) -> list[TrainingJob]:
        """Jobs accepted by their trainer and not finished, oldest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(TrainingJob)
                .where(
                    TrainingJob.status.not_in([s.value for s in JobState if s.finished]),
                    TrainingJob.external_id.is_not(None),
                )
                .order_by(TrainingJob.id)
            )
            return list(rows.all())

    # -- the status message ---------------------------------------------------------------------------------

    async def _claim(self, job_id: int, *conditions: Any, **values: Any) -> bool:
        async with self._db.session() as session, session.begin():
            result = cast(
                "CursorResult[Any]",
                await session.execute(
                    update(TrainingJob)
                    .where(TrainingJob.id == job_id, *conditions)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1

    async def claim_chart(self, job_id: int, points: int, *, interval: dt.timedelta, final: bool = False) -> bool:
        """Claim the upload of a chart of ``points`` points: only when it holds more points than the one on the
        status message and that one is older than ``interval`` (any age when ``final``).  Decided by the database
        in one statement, so processes sharing it upload each chart once."""
        now = utcnow()
        conditions: list[Any] = [TrainingJob.chart_points < points]
        if not final:
            conditions.append(or_(TrainingJob.chart_posted_at.is_(None), TrainingJob.chart_posted_at <= now - interval))
        return await self._claim(job_id, *conditions, chart_points=points, chart_posted_at=now)

    async def release_chart(self, job_id: int) -> None:
        """The claimed upload failed: the next update uploads the chart again."""
        await self._claim(job_id, chart_points=0, chart_posted_at=None)

    async def claim_refresh(self, job_id: int, *, within: dt.timedelta) -> bool:
        """Record a refresh asked for by a member unless one was recorded less than ``within`` ago (then
        ``False``: the press is answered without asking the trainer again)."""
        now = utcnow()
        return await self._claim(
            job_id,
            or_(TrainingJob.refreshed_at.is_(None), TrainingJob.refreshed_at <= now - within),
            refreshed_at=now,
        )

    async def register_model(self, job_id: int, name: str) -> None:
        """Register ``name`` (a checkpoint of the job made a model) in the job's server, like its result."""
        async with self._db.session() as session, session.begin():
            job = await session.get(TrainingJob, job_id)
            if job is None:
                raise NotFoundError("training job", job_id)
            exists = await session.scalar(
                select(RegisteredModel).where(
                    RegisteredModel.guild_id == (job.guild_id or 0), RegisteredModel.name == name
                )
            )
            if exists is None:
                session.add(
                    RegisteredModel(
                        guild_id=job.guild_id or 0,
                        name=name,
                        backend="local" if job.trainer == "local" else "openai",
                        origin="fine-tune",
                        base_model=job.base_model,
                        job_id=job.id,
                        dataset_id=job.dataset_id,
                    )
                )

    # -- training slots (the queue of trainers that run on this machine) ---------------------------------------

    async def waiting(self, trainers: Sequence[str]) -> list[TrainingJob]:
        """Jobs of ``trainers`` prepared and queued for a training slot, not started yet; oldest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(TrainingJob)
                .where(
                    TrainingJob.trainer.in_(list(trainers)),
                    TrainingJob.status == JobState.QUEUED.value,
                    TrainingJob.external_id.is_(None),
                )
                .order_by(TrainingJob.id)
            )
            return list(rows.all())

    @staticmethod
    def _holding(other: type[TrainingJob], trainer: str) -> list[Any]:
        return [
            other.trainer == trainer,
            other.status.in_(_UNFINISHED),
            or_(other.external_id.is_not(None), other.status == JobState.VALIDATING.value),
        ]

    async def claim_slot(self, job_id: int, *, max_total: int, max_per_guild: int) -> bool:
        """Move a queued job to ``validating`` (starting) when fewer than ``max_total`` jobs of its trainer, and
        fewer than ``max_per_guild`` of its server, hold a slot.  Counted and claimed by the database in one
        statement (under an advisory lock on PostgreSQL), so processes sharing it never exceed the limits."""
        async with self._db.session() as session, session.begin():
            if self._db.dialect == "postgresql":
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SLOT_LOCK})
            job = await session.get(TrainingJob, job_id)
            if job is None or job.status != JobState.QUEUED.value or job.external_id is not None:
                return False
            other = aliased(TrainingJob)
            holding = self._holding(other, job.trainer)
            total = select(func.count()).select_from(other).where(*holding).scalar_subquery()
            of_guild = (
                select(func.count())
                .select_from(other)
                .where(*holding, other.guild_id.is_not_distinct_from(job.guild_id))
                .scalar_subquery()
            )
            metrics = {k: v for k, v in (job.metrics or {}).items() if k != "queue_position"}
            result = cast(
                "CursorResult[Any]",
                await session.execute(
                    update(TrainingJob)
                    .where(
                        TrainingJob.id == job_id,
                        TrainingJob.status == JobState.QUEUED.value,
                        TrainingJob.external_id.is_(None),
                        total < max_total,
                        of_guild < max_per_guild,
                    )
                    .values(status=JobState.VALIDATING.value, metrics=metrics, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1

    async def store_refresh(
        self, job_id: int, state: JobState, status: ReportedStatus, records: Sequence[ReportedEvent]
    ) -> tuple[TrainingJob, list[JobEvent], bool]:
        """Store what a trainer reported of a job, in one transaction: the events not stored yet, the metrics they
        and ``status`` carry, the state, and (when it succeeded now with a model) the model, registered.

        Returns the job, its new events, and whether its state changed.
        """
        async with self._db.session() as session, session.begin():
            job = await session.get(TrainingJob, job_id)
            assert job is not None
            known = set((await session.scalars(select(JobEvent.external_id).where(JobEvent.job_id == job_id))).all())
            new_events = [
                JobEvent(
                    job_id=job_id,
                    external_id=r.external_id,
                    level=r.level,
                    message=r.message,
                    data={"kind": r.kind, **r.data},
                    created_at=r.created_at,
                )
                for r in records
                if r.external_id not in known
            ]
            session.add_all(new_events)
            fresh = [r for r in records if r.external_id not in known and r.kind == "metrics"]
            metrics = _merge_metrics(dict(job.metrics or {}), fresh)
            first_metrics = min((r.created_at for r in fresh), default=None)
            if status.step is not None:
                metrics["step"] = status.step
            if status.total_steps is not None:
                metrics["total_steps"] = status.total_steps
            job.metrics = metrics
            # The trainer's clock: its own start time, or (where it gives none) its first metrics record's.
            if status.started_at is not None:
                job.trainer_started_at = status.started_at
            elif job.trainer_started_at is None and first_metrics is not None:
                job.trainer_started_at = first_metrics
            job.estimated_finish_at = None if state.finished else status.estimated_finish_at
            changed = job.status != state.value
            job.status = state.value
            if state.finished and job.finished_at is None:
                job.finished_at = utcnow()
                job.error = status.error if state is JobState.FAILED else None
                if state is JobState.SUCCEEDED and status.result_model:
                    job.result_model = status.result_model
                    await register_job_result(session, job)
        return job, new_events, changed


def _merge_metrics(metrics: dict[str, Any], records: Sequence[ReportedEvent]) -> dict[str, Any]:
    """``metrics`` with new metrics records added: the series (one point per step) and the latest values."""
    series: dict[str, list[list[float]]] = {name: [list(p) for p in metrics.get(name, [])] for name in _SERIES.values()}
    for record in records:
        data = record.data
        step = data.get("step")
        if isinstance(step, int | float) and not isinstance(step, bool):
            metrics["step"] = max(int(step), int(metrics.get("step") or 0))
            for key, name in _SERIES.items():
                if isinstance(data.get(key), int | float):
                    series[name].append([int(step), float(data[key])])
        for key in _LATEST:
            if isinstance(data.get(key), int | float):
                metrics[key] = data[key]
    for name, points in series.items():
        if points:
            # One point per step (a record read twice, or a trainer repeating itself, adds nothing).
            metrics[name] = [[step, value] for step, value in sorted({int(p[0]): p[1] for p in points}.items())]
    return metrics
