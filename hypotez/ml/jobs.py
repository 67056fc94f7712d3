"""The job tracker (the original ``save_job_id``): every training job persisted, polled in the background,
resumed after a restart, and started at most once per request."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.exc import IntegrityError

from hypotez.errors import HypotezError, InvalidInputError, NotFoundError
from hypotez.ml.trainers.base import JobEventRecord, JobState, Trainer, TrainingRequest
from hypotez.storage.models import ACTIVE_JOB, JobEvent, RegisteredModel, TrainingJob, utcnow

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["JobSpec", "JobTracker", "JobUpdate", "request_hash"]

_LOGGER = logging.getLogger(__name__)

#: How long a job may take to be accepted by its trainer (uploads included) before it counts as interrupted.
STARTING_GRACE = dt.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a member asked to train, before anything is uploaded."""

    trainer: str
    base_model: str
    method: str
    hyperparameters: dict[str, Any]
    data_fingerprint: str
    guild_id: int | None
    requested_by: int
    dataset_id: int | None = None
    status_channel_id: int | None = None
    suffix: str | None = None


def request_hash(spec: JobSpec) -> str:
    """Identical requests (same trainer, model, method, data and hyperparameters, same guild) hash alike."""
    payload = [spec.trainer, spec.base_model, spec.method, spec.hyperparameters, spec.data_fingerprint, spec.guild_id]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """What changed in one refresh of a job."""

    job: TrainingJob
    new_events: list[JobEvent] = field(default_factory=list[JobEvent])
    state_changed: bool = False

    @property
    def finished_now(self) -> bool:
        return self.state_changed and JobState(self.job.status).finished


Listener = Callable[[JobUpdate], Awaitable[None]]


class JobTracker:
    """Starts jobs on trainers, stores their events and metrics, polls unfinished ones in the background."""

    def __init__(self, db: Database, trainers: Mapping[str, Trainer], *, poll_interval: float = 15.0) -> None:
        self._db = db
        self.trainers = dict(trainers)
        self.poll_interval = poll_interval
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._refresh_locks: dict[int, asyncio.Lock] = {}
        # Identical requests arriving together in this process wait for each other (see submit).
        self._submit_lock = asyncio.Lock()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every refresh that changed something."""
        self._listeners.append(listener)

    def trainer(self, name: str) -> Trainer:
        try:
            return self.trainers[name]
        except KeyError:
            raise NotFoundError("trainer", name, f"There is no trainer called `{name}`.") from None

    # -- starting ---------------------------------------------------------------------------------------------

    async def find_duplicate(self, spec: JobSpec) -> TrainingJob | None:
        """An unfinished job for an identical request (one stuck before its start does not count)."""
        async with self._db.session() as session:
            return await session.scalar(
                select(TrainingJob)
                .where(
                    TrainingJob.request_hash == request_hash(spec),
                    TrainingJob.status.not_in([s.value for s in JobState if s.finished]),
                    or_(TrainingJob.external_id.is_not(None), TrainingJob.created_at > utcnow() - STARTING_GRACE),
                )
                .limit(1)
            )

    async def fail_interrupted(self) -> int:
        """Jobs whose start was interrupted (the process stopped between saving the job and the trainer
        accepting it) are failed, so they neither block identical requests nor wait forever."""
        async with self._db.session() as session, session.begin():
            stuck = (
                await session.scalars(
                    select(TrainingJob).where(
                        TrainingJob.status == JobState.PENDING.value,
                        TrainingJob.external_id.is_(None),
                        TrainingJob.created_at <= utcnow() - STARTING_GRACE,
                    )
                )
            ).all()
            for job in stuck:
                job.status = JobState.FAILED.value
                job.error = "The bot stopped while this job was starting; start it again."
                job.finished_at = utcnow()
        return len(stuck)

    async def submit(
        self,
        spec: JobSpec,
        request: Callable[[str], Awaitable[TrainingRequest]],
        *,
        idempotency_key: str,
    ) -> tuple[TrainingJob, bool]:
        """Start a job, or return the one already started for this key or an identical unfinished request.

        ``request(job_key)`` builds the training request (examples loaded and validated) once the job row
        exists.  Returns the job and whether it was started by this call.
        """
        trainer = self.trainer(spec.trainer)
        await self.fail_interrupted()  # a start that never finished must not block this request forever
        async with self._submit_lock:
            duplicate = await self.find_duplicate(spec)
            if duplicate is not None:
                return duplicate, False
            created = await self._insert(spec, idempotency_key)
        if isinstance(created, tuple):
            return created
        job = created
        job_key = f"job-{job.id}"
        try:
            built = await request(job_key)
            external_id = await trainer.start(built)
        except Exception as exc:
            reason = exc.user_message if isinstance(exc, HypotezError) else "the trainer could not start the job"
            await self._update(job.id, status=JobState.FAILED.value, error=reason, finished_at=utcnow())
            raise
        await self._update(job.id, external_id=external_id, status=JobState.QUEUED.value)
        refreshed = await self.get(job.id)
        return refreshed, True

    async def _insert(self, spec: JobSpec, idempotency_key: str) -> TrainingJob | tuple[TrainingJob, bool]:
        """The new job's row, or ``(existing, False)`` when this key was already used or an identical request
        is unfinished — checked by the database itself, so replicas sharing it cannot both start one."""
        job = TrainingJob(
            guild_id=spec.guild_id,
            requested_by=spec.requested_by,
            idempotency_key=idempotency_key,
            request_hash=request_hash(spec),
            trainer=spec.trainer,
            method=spec.method,
            base_model=spec.base_model,
            dataset_id=spec.dataset_id,
            hyperparameters=spec.hyperparameters,
            metrics={},
            status=JobState.PENDING.value,
            status_channel_id=spec.status_channel_id,
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(job)
        except IntegrityError:
            async with self._db.session() as session:
                existing = await session.scalar(
                    select(TrainingJob).where(
                        or_(
                            TrainingJob.idempotency_key == idempotency_key,
                            and_(TrainingJob.request_hash == job.request_hash, text(ACTIVE_JOB)),
                        )
                    )
                )
            if existing is None:  # pragma: no cover - one of the two constraints names it
                raise
            return existing, False
        return job

    async def set_status_message(self, job_id: int, channel_id: int, message_id: int) -> None:
        await self._update(job_id, status_channel_id=channel_id, status_message_id=message_id)

    async def _update(self, job_id: int, **values: Any) -> None:
        async with self._db.session() as session, session.begin():
            job = await session.get(TrainingJob, job_id)
            if job is None:
                raise NotFoundError("training job", job_id)
            for key, value in values.items():
                setattr(job, key, value)

    # -- reading ----------------------------------------------------------------------------------------------

    async def get(self, job_id: int) -> TrainingJob:
        async with self._db.session() as session:
            job = await session.get(TrainingJob, job_id)
        if job is None:
            raise NotFoundError("training job", job_id, f"There is no training job #{job_id}.")
        return job

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

    # -- polling ----------------------------------------------------------------------------------------------

    async def refresh(self, job_id: int) -> JobUpdate:
        """Ask the trainer about a job; store new events and metrics; register the model on success."""
        lock = self._refresh_locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            job = await self.get(job_id)
            if job.external_id is None or JobState(job.status).finished:
                return JobUpdate(job)
            trainer = self.trainer(job.trainer)
            status = await trainer.status(job.external_id)
            records = await trainer.events(job.external_id)
            update = await self._store(job.id, status.state, status, records)
            # Still under the job's lock: a slower, older update can never overwrite a newer one.
            if update.state_changed or update.new_events:
                for listener in self._listeners:
                    try:
                        await listener(update)
                    except Exception:
                        _LOGGER.exception("job listener failed for job %s", job_id)
        return update

    async def _store(self, job_id: int, state: JobState, status: Any, records: Sequence[JobEventRecord]) -> JobUpdate:
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
            metrics = dict(job.metrics or {})
            loss: list[list[float]] = [list(p) for p in metrics.get("loss", [])]
            for record in records:
                if record.external_id in known or record.kind != "metrics":
                    continue
                data = record.data
                step = data.get("step")
                if isinstance(step, int | float):
                    metrics["step"] = int(step)
                    if isinstance(data.get("train_loss"), int | float):
                        loss.append([int(step), float(data["train_loss"])])
                for key in ("total_steps", "learning_rate", "epoch", "valid_loss", "train_mean_token_accuracy"):
                    if isinstance(data.get(key), int | float):
                        metrics[key] = data[key]
            if loss:
                metrics["loss"] = sorted(loss)
            if status.step is not None:
                metrics["step"] = status.step
            if status.total_steps is not None:
                metrics["total_steps"] = status.total_steps
            if state is JobState.RUNNING and "started_at" not in metrics:
                metrics["started_at"] = utcnow().isoformat()
            job.metrics = metrics
            changed = job.status != state.value
            job.status = state.value
            if state.finished and job.finished_at is None:
                job.finished_at = utcnow()
                job.error = status.error if state is JobState.FAILED else None
                if state is JobState.SUCCEEDED and status.result_model:
                    job.result_model = status.result_model
                    await self._register_model(session, job)
        return JobUpdate(job, new_events, changed)

    async def _register_model(self, session: Any, job: TrainingJob) -> None:
        exists = await session.scalar(
            select(RegisteredModel).where(
                RegisteredModel.guild_id == (job.guild_id or 0), RegisteredModel.name == job.result_model
            )
        )
        if exists is None:
            session.add(
                RegisteredModel(
                    guild_id=job.guild_id or 0,
                    name=job.result_model,
                    backend="local" if job.trainer == "local" else "openai",
                    origin="fine-tune",
                    base_model=job.base_model,
                    job_id=job.id,
                    dataset_id=job.dataset_id,
                )
            )

    async def cancel(self, job_id: int) -> TrainingJob:
        job = await self.get(job_id)
        if JobState(job.status).finished:
            raise InvalidInputError(f"Training job #{job_id} has already {job.status}.")
        if job.external_id is None:
            # Not accepted by its trainer yet (or interrupted while starting): nothing runs anywhere.
            await self._update(job_id, status=JobState.CANCELLED.value, finished_at=utcnow())
            return await self.get(job_id)
        await self.trainer(job.trainer).cancel(job.external_id)
        await self.refresh(job_id)
        return await self.get(job_id)

    async def poll_once(self) -> None:
        for job in await self.unfinished():
            try:
                await self.refresh(job.id)
            except Exception:
                _LOGGER.exception("could not refresh training job %s", job.id)

    def start(self) -> None:
        """Poll unfinished jobs in the background (those of earlier runs too: that is the resume)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hypotez-job-tracker")

    async def _run(self) -> None:
        try:
            await self.fail_interrupted()
        except Exception:
            _LOGGER.exception("could not check for interrupted training jobs")
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for trainer in self.trainers.values():
            await trainer.close()
