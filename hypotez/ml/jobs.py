"""The job tracker (the original ``save_job_id``): every training job persisted, polled in the background,
resumed after a restart, and started at most once per request.

Trainers that run on this machine (those with ``prepare`` and ``launch``: the local one) are queued: a job is
prepared, waits as ``queued`` until a training slot frees (:class:`LocalLimits`, counted in the database so the
limits hold across processes sharing it), and is launched by :meth:`JobTracker.start_waiting`, which
:meth:`JobTracker.poll_once` calls."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hypotez.errors import HypotezError, InvalidInputError, NotFoundError
from hypotez.ml.trainers.base import (
    Checkpoint,
    CheckpointingTrainer,
    JobEventRecord,
    JobState,
    JobStatus,
    Trainer,
    TrainingRequest,
)
from hypotez.storage.models import JobEvent, TrainingJob, utcnow
from hypotez.text import redact

if TYPE_CHECKING:
    from hypotez.storage.repositories import JobRepository

__all__ = ["JobSpec", "JobTracker", "JobUpdate", "LocalLimits", "SlotTrainer", "queue_position", "request_hash"]

_LOGGER = logging.getLogger(__name__)

#: How long a job may take to be accepted by its trainer (uploads included) before it counts as interrupted.
STARTING_GRACE = dt.timedelta(minutes=15)


@runtime_checkable
class SlotTrainer(Protocol):
    """A trainer whose jobs wait for a training slot: ``prepare`` stores the request, ``launch`` starts it."""

    async def prepare(self, request: TrainingRequest) -> str: ...

    async def launch(self, external_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class LocalLimits:
    """How many queued-trainer jobs may run at once: in all, and per server."""

    concurrent: int = 1
    per_server: int = 1


def queue_position(job: TrainingJob) -> int | None:
    """A job's place in the training queue (1 = next), or ``None`` when it is not waiting for a slot."""
    if job.status != JobState.QUEUED.value or job.external_id is not None:
        return None
    position = (job.metrics or {}).get("queue_position")
    return position if isinstance(position, int) else None


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

    def __init__(
        self,
        jobs: JobRepository,
        trainers: Mapping[str, Trainer],
        *,
        poll_interval: float = 15.0,
        local_limits: LocalLimits | None = None,
    ) -> None:
        self._jobs = jobs
        self.trainers = dict(trainers)
        self.poll_interval = poll_interval
        #: Slots of the trainers that queue (see :class:`SlotTrainer`); counted in the database.
        self.local_limits = local_limits or LocalLimits()
        self._slot_lock = asyncio.Lock()
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
        return await self._jobs.find_duplicate(request_hash(spec), grace=STARTING_GRACE)

    async def fail_interrupted(self) -> int:
        """Jobs whose start was interrupted (the process stopped between saving the job and the trainer
        accepting it) are failed, so they neither block identical requests nor wait forever."""
        return await self._jobs.fail_interrupted(grace=STARTING_GRACE)

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
            if isinstance(trainer, SlotTrainer):
                # Prepared, then queued: it starts when a slot frees (now, when one is free).
                await trainer.prepare(built)
                await self._update(job.id, status=JobState.QUEUED.value, metrics={"queue_position": 0})
                await self.start_waiting()
                return await self.get(job.id), True
            external_id = await trainer.start(built)
        except Exception as exc:
            # Stored and shown: a trainer's message may quote its service, so credentials are redacted.
            reason = (
                redact(exc.user_message) if isinstance(exc, HypotezError) else "the trainer could not start the job"
            )
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
        stored, created = await self._jobs.insert(job)
        return stored if created else (stored, False)

    async def set_status_message(self, job_id: int, channel_id: int, message_id: int) -> None:
        await self._update(job_id, status_channel_id=channel_id, status_message_id=message_id)

    async def _update(self, job_id: int, **values: Any) -> None:
        await self._jobs.update(job_id, **values)

    # -- reading ----------------------------------------------------------------------------------------------

    async def get(self, job_id: int) -> TrainingJob:
        job = await self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("training job", job_id, f"There is no training job #{job_id}.")
        return job

    async def by_status_message(self, message_id: int) -> TrainingJob | None:
        return await self._jobs.by_status_message(message_id)

    async def list(self, guild_id: int | None, *, limit: int = 25) -> list[TrainingJob]:
        return await self._jobs.list(guild_id, limit=limit)

    async def events(self, job_id: int, *, limit: int = 1000) -> list[JobEvent]:
        return await self._jobs.events(job_id, limit=limit)

    async def unfinished(self) -> list[TrainingJob]:
        return await self._jobs.unfinished()

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
                await self._notify(update)
        return update

    async def _store(
        self, job_id: int, state: JobState, status: JobStatus, records: Sequence[JobEventRecord]
    ) -> JobUpdate:
        if status.error is not None:
            # Stored, shown on the status message and in the channel: never a credential the service echoed.
            status = replace(status, error=redact(status.error))
        job, new_events, changed = await self._jobs.store_refresh(job_id, state, status, records)
        return JobUpdate(job, new_events, changed)

    async def claim_refresh(self, job_id: int, *, within: float) -> bool:
        """Whether a member's refresh of the job should ask its trainer: not when one did less than ``within``
        seconds ago (recorded in the database, so it holds across replicas)."""
        return await self._jobs.claim_refresh(job_id, within=dt.timedelta(seconds=within))

    # -- checkpoints ------------------------------------------------------------------------------------------

    def _checkpointing(self, job: TrainingJob) -> tuple[CheckpointingTrainer, str]:
        trainer = self.trainer(job.trainer)
        if not isinstance(trainer, CheckpointingTrainer):
            raise InvalidInputError(f"The `{job.trainer}` trainer keeps no checkpoints.")
        if job.external_id is None:
            raise InvalidInputError(f"Training job #{job.id} has not started yet: it has no checkpoints.")
        return trainer, job.external_id

    async def checkpoints(self, job_id: int) -> list[Checkpoint]:
        """The job's checkpoints, oldest first, as its trainer keeps them."""
        trainer, external_id = self._checkpointing(await self.get(job_id))
        return await trainer.checkpoints(external_id)

    async def register_checkpoint(self, job_id: int, step: int) -> str:
        """Make the job's checkpoint at ``step`` a model of the job's server (registered like a job's result, so
        ``/model use`` offers it); returns its name.  Registering it again returns the same name."""
        job = await self.get(job_id)
        trainer, external_id = self._checkpointing(job)
        name = await trainer.register_checkpoint(external_id, step)
        await self._jobs.register_model(job.id, name)
        return name

    async def cancel(self, job_id: int) -> TrainingJob:
        job = await self.get(job_id)
        if JobState(job.status).finished:
            raise InvalidInputError(f"Training job #{job_id} has already {job.status}.")
        if job.external_id is None:
            # Not accepted by its trainer yet (waiting for a slot, or interrupted while starting): nothing runs.
            await self._update(job_id, status=JobState.CANCELLED.value, finished_at=utcnow())
            await self.start_waiting()  # the jobs behind it move up
            return await self.get(job_id)
        await self.trainer(job.trainer).cancel(job.external_id)
        await self.refresh(job_id)
        return await self.get(job_id)

    # -- the training queue -------------------------------------------------------------------------------

    async def start_waiting(self) -> list[TrainingJob]:
        """Start the queued jobs that have a free slot, oldest first (a server at its own limit waits; the next
        server's job may go first); renumber the rest.  Returns the jobs started."""
        slot_trainers = [name for name, t in self.trainers.items() if isinstance(t, SlotTrainer)]
        if not slot_trainers:
            return []
        started: list[TrainingJob] = []
        async with self._slot_lock:
            waiting = await self._jobs.waiting(slot_trainers)
            for job in waiting:
                claimed = await self._jobs.claim_slot(
                    job.id,
                    max_total=max(1, self.local_limits.concurrent),
                    max_per_guild=max(1, self.local_limits.per_server),
                )
                if claimed:
                    started.append(await self._launch(job))
            still = [job for job in waiting if job.id not in {s.id for s in started}]
            for position, job in enumerate(still, 1):
                if queue_position(job) != position:
                    await self._update(job.id, metrics={**(job.metrics or {}), "queue_position": position})
                    await self._notify(JobUpdate(await self.get(job.id)))
        for job in started:
            await self._notify(JobUpdate(job, state_changed=True))
        return started

    async def _launch(self, job: TrainingJob) -> TrainingJob:
        trainer = self.trainer(job.trainer)
        assert isinstance(trainer, SlotTrainer)
        key = f"job-{job.id}"
        try:
            await trainer.launch(key)
        except Exception as exc:
            reason = (
                redact(exc.user_message) if isinstance(exc, HypotezError) else "the trainer could not start the job"
            )
            _LOGGER.exception("could not start queued training job %s", job.id)
            await self._update(job.id, status=JobState.FAILED.value, error=reason, finished_at=utcnow())
        else:
            await self._update(job.id, external_id=key, status=JobState.QUEUED.value)
        return await self.get(job.id)

    async def _notify(self, update: JobUpdate) -> None:
        for listener in self._listeners:
            try:
                await listener(update)
            except Exception:
                _LOGGER.exception("job listener failed for job %s", update.job.id)

    async def poll_once(self) -> None:
        """Refresh every unfinished job, then start the queued ones whose slot has freed."""
        for job in await self.unfinished():
            try:
                await self.refresh(job.id)
            except Exception:
                _LOGGER.exception("could not refresh training job %s", job.id)
        try:
            await self.start_waiting()
        except Exception:
            _LOGGER.exception("could not start queued training jobs")

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
