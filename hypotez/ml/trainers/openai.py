"""The ``openai`` trainer: OpenAI's fine-tuning API, or any server that implements it.

OpenAI stopped self-serve fine-tuning for new organisations on 2026-05-07 and stops new jobs for everyone
on 2027-01-06 (fine-tunes of the gpt-4o and gpt-4.1 families stop serving on 2027-01-14).  A refusal names
the ``local`` trainer.  Servers other than OpenAI's are not held to those dates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING, Any, cast

import openai

from hypotez.errors import BackendAuthError, InvalidInputError, NotFoundError
from hypotez.ml.chat import backend_error_from_openai
from hypotez.ml.hyperparameters import AUTO, OpenAIOptions, options_for
from hypotez.ml.trainers.base import (
    Checkpoint,
    JobEventRecord,
    JobState,
    JobStatus,
    TrainingMethod,
    TrainingRequest,
)
from hypotez.text import jsonl_line, redact

if TYPE_CHECKING:
    from openai.types.fine_tuning import FineTuningJob
    from openai.types.fine_tuning.job_create_params import Method

__all__ = ["OPENAI_NEW_JOBS_END", "OpenAITrainer"]

_LOGGER = logging.getLogger(__name__)

#: OpenAI accepts no new fine-tuning jobs from this day on.
OPENAI_NEW_JOBS_END = dt.date(2027, 1, 6)

FORBIDDEN = (
    "This OpenAI account cannot create fine-tuning jobs: OpenAI closed self-serve fine-tuning to new "
    "organisations on 2026-05-07 and accepts no new jobs from anyone from 2027-01-06. "
    "Train with `trainer:local` instead (a Hugging Face base model, trained on this server's machine)."
)

#: The event OpenAI writes when a job starts running.
_STARTED_MESSAGE = "Fine-tuning job started"

_STATES = {
    "validating_files": JobState.VALIDATING,
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


def _jsonl(examples: list[dict[str, Any]]) -> bytes:
    return "".join(jsonl_line(e) for e in examples).encode("utf-8")


def _as_dict(value: object) -> dict[str, Any]:
    """An event's ``data`` (an untyped object in the SDK) as a plain dict."""
    if not isinstance(value, dict):
        return {}
    mapping = cast("dict[object, Any]", value)
    return {str(k): v for k, v in mapping.items()}


def _is_openai(base_url: str) -> bool:
    return "api.openai.com" in base_url


class OpenAITrainer:
    """Fine-tuning through ``files`` + ``fine_tuning.jobs`` of an OpenAI-compatible API."""

    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI, *, today: dt.date | None = None) -> None:
        self.client = client
        self._today = today
        self._newest_seen: dict[str, str] = {}
        self._started: dict[str, dt.datetime] = {}

    def _check_deadline(self) -> None:
        today = self._today or dt.datetime.now(dt.UTC).date()
        if today >= OPENAI_NEW_JOBS_END and _is_openai(str(self.client.base_url)):
            raise BackendAuthError(FORBIDDEN, backend=self.name, status=403)

    def _shown(self, text: str, *, limit: int | None = 300) -> str:
        """The service's text as members see it and it is stored: the API key and credentials redacted, cut."""
        return redact(text, secrets=[self.client.api_key], limit=limit)

    def _error(self, exc: openai.OpenAIError) -> Exception:
        if isinstance(exc, openai.PermissionDeniedError):
            return BackendAuthError(FORBIDDEN, backend=self.name, status=403)
        if isinstance(exc, openai.BadRequestError):
            detail = _as_dict(exc.body).get("message")
            _LOGGER.warning("the fine-tuning service refused a request: %s", detail or exc)
            shown = self._shown(str(detail)) if detail else "bad request"
            return InvalidInputError(f"The fine-tuning service refused the job: {shown}")
        return backend_error_from_openai(exc, backend=self.name)

    async def _existing(self, marks: dict[str, str]) -> str | None:
        """A job already created for this request (a retry after a crash between create and saving its id).

        Matched on the job key *and* a hash of the training data, so another installation sharing the API key,
        or this one after its database was recreated (job numbers start again), is never mistaken for it.
        """
        page = await self.client.fine_tuning.jobs.list(limit=100)
        for job in page.data:
            metadata = job.metadata or {}
            if all(metadata.get(k) == v for k, v in marks.items()):
                return job.id
        return None

    async def _upload(self, name: str, examples: list[dict[str, Any]]) -> str:
        content = await asyncio.to_thread(_jsonl, examples)
        uploaded = await self.client.files.create(file=(name, content, "application/jsonl"), purpose="fine-tune")
        return uploaded.id

    @staticmethod
    def method(request: TrainingRequest) -> tuple[Method, int | None]:
        """OpenAI's ``method`` object for the request (its typed :class:`OpenAIOptions`, ``"auto"`` where not
        given: OpenAI decides) and the seed (``None``: OpenAI's own)."""
        if request.method is TrainingMethod.SUPERVISED_PREFERENCE:
            raise InvalidInputError(
                "OpenAI trains one method a job: train `method:supervised`, then `method:preference` from the "
                "fine-tuned model."
            )
        given = {k: v for k, v in request.hyperparameters.items() if v is not None}
        options = options_for("openai", given, method=str(request.method))
        if not isinstance(options, OpenAIOptions):  # pragma: no cover - options_for("openai") gives these
            raise TypeError(type(options).__name__)
        kind = "dpo" if request.method is TrainingMethod.PREFERENCE else "supervised"
        hyperparameters: dict[str, Any] = {
            "n_epochs": options.n_epochs,
            "batch_size": options.batch_size,
            "learning_rate_multiplier": options.learning_rate_multiplier,
        }
        if kind == "dpo":
            hyperparameters["beta"] = options.beta
        seed = None if options.seed == AUTO else int(options.seed)
        return cast("Method", {"type": kind, kind: {"hyperparameters": hyperparameters}}), seed

    async def start(self, request: TrainingRequest) -> str:
        self._check_deadline()
        if not request.train_examples:
            raise InvalidInputError("The dataset has no examples to train on.")
        method, seed = self.method(request)  # refused before anything is uploaded
        train_jsonl = await asyncio.to_thread(_jsonl, request.train_examples)
        marks = {"hypotez_job": request.job_key, "hypotez_data": hashlib.sha256(train_jsonl).hexdigest()[:32]}
        try:
            existing = await self._existing(marks)
            if existing is not None:
                return existing
            training_file = await self._upload(f"{request.job_key}-train.jsonl", request.train_examples)
            validation_file = (
                await self._upload(f"{request.job_key}-valid.jsonl", request.validation_examples)
                if request.validation_examples
                else None
            )
            job = await self.client.fine_tuning.jobs.create(
                model=request.base_model,
                training_file=training_file,
                validation_file=validation_file,
                suffix=request.suffix,
                method=method,
                metadata=marks,
                seed=seed,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        return job.id

    async def _retrieve(self, external_id: str) -> FineTuningJob:
        try:
            return await self.client.fine_tuning.jobs.retrieve(external_id)
        except openai.NotFoundError as exc:
            raise NotFoundError("fine-tuning job", external_id) from exc
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def status(self, external_id: str) -> JobStatus:
        job = await self._retrieve(external_id)
        state = _STATES.get(job.status, JobState.RUNNING)
        error = None
        if job.error is not None and state is JobState.FAILED:
            full = job.error.message or job.error.code or "the job failed"
            _LOGGER.warning("fine-tuning job %s failed: %s", external_id, full)
            error = self._shown(full)
        elif state is JobState.FAILED:
            error = "the job failed"
        started = None
        if state not in (JobState.VALIDATING, JobState.QUEUED):
            started = await self._started_at(external_id)
        finish = job.estimated_finish
        return JobStatus(
            state=state,
            result_model=job.fine_tuned_model,
            error=error,
            trained_tokens=job.trained_tokens,
            started_at=started,
            estimated_finish_at=dt.datetime.fromtimestamp(finish, dt.UTC) if finish else None,
        )

    async def _started_at(self, external_id: str) -> dt.datetime | None:
        """When the job started running, by OpenAI's clock.

        The job object has no such field (``created_at`` is when it was queued, before validation and the
        queue): its ``Fine-tuning job started`` event is the moment, and where a server writes none, its first
        metrics event.  Found once per job and process (the newest events first, paging back)."""
        known = self._started.get(external_id)
        if known is not None:
            return known
        first_metrics: int | None = None
        try:
            async for event in self.client.fine_tuning.jobs.list_events(external_id, limit=100):
                if event.message == _STARTED_MESSAGE:
                    self._started[external_id] = dt.datetime.fromtimestamp(event.created_at, dt.UTC)
                    return self._started[external_id]
                if event.type == "metrics":
                    first_metrics = event.created_at if first_metrics is None else min(first_metrics, event.created_at)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        if first_metrics is None:
            return None
        self._started[external_id] = dt.datetime.fromtimestamp(first_metrics, dt.UTC)
        return self._started[external_id]

    async def events(self, external_id: str) -> list[JobEventRecord]:
        """New events since the last call (all of them on the first call), oldest first.

        The API lists newest first, one page at a time: paging stops at the newest event already seen, so a
        long job's every poll costs one request instead of one per hundred events.
        """
        records: list[JobEventRecord] = []
        seen = self._newest_seen.get(external_id)
        try:
            async for event in self.client.fine_tuning.jobs.list_events(external_id, limit=100):
                if event.id == seen:
                    break
                if event.message == _STARTED_MESSAGE:
                    self._started.setdefault(external_id, dt.datetime.fromtimestamp(event.created_at, dt.UTC))
                data = _as_dict(event.data)
                records.append(
                    JobEventRecord(
                        external_id=event.id,
                        created_at=dt.datetime.fromtimestamp(event.created_at, dt.UTC),
                        message=self._shown(event.message, limit=1000),
                        level=event.level,
                        kind=event.type or "message",
                        data=data,
                    )
                )
            if records:
                self._newest_seen[external_id] = records[0].external_id
            records.reverse()  # the API lists newest first
            # Checkpoints (the last epochs' models, usable for chat) are events too.
            async for checkpoint in self.client.fine_tuning.jobs.checkpoints.list(external_id, limit=100):
                metrics = checkpoint.metrics.model_dump(exclude_none=True) if checkpoint.metrics else {}
                records.append(
                    JobEventRecord(
                        external_id=checkpoint.id,
                        created_at=dt.datetime.fromtimestamp(checkpoint.created_at, dt.UTC),
                        message=(
                            f"Checkpoint at step {checkpoint.step_number}: {checkpoint.fine_tuned_model_checkpoint}"
                        ),
                        kind="checkpoint",
                        data={
                            "step": checkpoint.step_number,
                            "model": checkpoint.fine_tuned_model_checkpoint,
                            **metrics,
                        },
                    )
                )
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        records.sort(key=lambda r: r.created_at)  # stable: events of the same second keep their order
        return records

    async def checkpoints(self, external_id: str) -> list[Checkpoint]:
        """The job's checkpoints (OpenAI keeps those of the last epochs), oldest first; the best is the one with
        the lowest validation loss (none is marked without a validation file).  Each is already a model."""
        found: list[Checkpoint] = []
        try:
            async for checkpoint in self.client.fine_tuning.jobs.checkpoints.list(external_id, limit=100):
                metrics = checkpoint.metrics
                valid = metrics.full_valid_loss if metrics.full_valid_loss is not None else metrics.valid_loss
                found.append(
                    Checkpoint(
                        step=checkpoint.step_number,
                        train_loss=metrics.train_loss,
                        valid_loss=valid,
                        model=checkpoint.fine_tuned_model_checkpoint,
                    )
                )
        except openai.NotFoundError as exc:
            raise NotFoundError("fine-tuning job", external_id) from exc
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        found.sort(key=lambda c: c.step)
        scored = [c for c in found if c.valid_loss is not None]
        if scored:
            best = min(scored, key=lambda c: (c.valid_loss, -c.step))
            found = [dataclasses.replace(c, best=c is best) for c in found]
        return found

    async def register_checkpoint(self, external_id: str, step: int) -> str:
        """The checkpoint's own model id (OpenAI serves every checkpoint as a model)."""
        for checkpoint in await self.checkpoints(external_id):
            if checkpoint.step == step and checkpoint.model:
                return checkpoint.model
        raise NotFoundError("checkpoint", step, f"This job has no checkpoint at step {step}.")

    async def cancel(self, external_id: str) -> None:
        try:
            await self.client.fine_tuning.jobs.cancel(external_id)
        except openai.BadRequestError as exc:
            raise InvalidInputError("This job has already finished; there is nothing to cancel.") from exc
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc

    async def close(self) -> None:
        """The client belongs to the chat backend, which closes it."""
