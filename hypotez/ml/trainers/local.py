"""The ``local`` trainer: TRL (SFT or DPO, LoRA by default) in a separate process on this machine.

Each job lives in ``<work_dir>/<job_key>/``: the bot writes ``request.json`` and starts
``python -m hypotez.ml.trainers._local_worker <job dir>``, which detaches into its own session and
trains; from then on the bot only reads the files the worker writes (see
:class:`~hypotez.ml.trainers._local_worker.JobFiles`).  Nothing ties the worker to the bot's process,
so a job keeps running across a restart of the bot, and a new :class:`LocalTrainer` on the same
``work_dir`` reports on it.

The trained model is ``local:<job_key>``, saved in ``<work_dir>/<job_key>/model`` (a LoRA adapter, or
a full model with ``lora`` false); :func:`model_path` finds it for the chat backend.  The hyperparameters
are :class:`~hypotez.ml.hyperparameters.LocalOptions`; the worker trains with them exactly as resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import hypotez
from hypotez.errors import ConfigError, InvalidInputError, NotFoundError
from hypotez.ml.hyperparameters import DataFacts, Hyperparameters, options_for, read_model_facts, resolve
from hypotez.ml.trainers import _local_worker
from hypotez.ml.trainers._local_worker import EXTRA_HINT, JobFiles, read_json, write_json_atomic
from hypotez.ml.trainers.base import Checkpoint, JobEventRecord, JobState, JobStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hypotez.ml.trainers.base import TrainingRequest

__all__ = ["MODEL_PREFIX", "LocalTrainer", "local_models", "missing_local_dependencies", "model_path"]

log = logging.getLogger(__name__)

#: Models trained here are named ``local:<job_key>``.
MODEL_PREFIX = "local:"
WORKER_MODULE = "hypotez.ml.trainers._local_worker"
# A job key becomes a directory name: no separators, no leading dot.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# How long the launcher (which only forks) may take to start Python and exit.
_LAUNCH_TIMEOUT = 60.0


def missing_local_dependencies() -> list[str]:
    """The modules of the ``local`` extra that this Python cannot import (found without importing them)."""
    return [name for name in _local_worker.LOCAL_EXTRA_MODULES if importlib.util.find_spec(name) is None]


def model_path(work_dir: Path, result_model: str) -> Path:
    """The directory of the model ``local:<job_key>`` trained in ``work_dir``.

    Raises :class:`~hypotez.errors.NotFoundError` when the id is not a local model or it does not exist (yet).
    """
    key = result_model.removeprefix(MODEL_PREFIX)
    if not result_model.startswith(MODEL_PREFIX) or not _KEY.fullmatch(key):
        raise NotFoundError("model", result_model, f"`{result_model}` is not the name of a locally trained model.")
    path = JobFiles(Path(work_dir) / key).model
    if not path.is_dir():
        raise NotFoundError("model", result_model, f"The local model `{result_model}` does not exist (yet).")
    return path


def local_models(work_dir: Path) -> list[str]:
    """Every model trained in ``work_dir`` (``local:<job_key>``), sorted."""
    try:
        entries = list(Path(work_dir).iterdir())
    except OSError:
        return []
    return sorted(
        MODEL_PREFIX + entry.name for entry in entries if _KEY.fullmatch(entry.name) and JobFiles(entry).model.is_dir()
    )


def _worker_alive(pid: int, job_dir: Path) -> bool:
    """Whether ``pid`` is still this job's worker (not gone, not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the pid was reused, but we cannot tell; assume alive
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): the signal check is all there is
    if stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"]):
        return False
    return os.fsencode(str(job_dir)) in cmdline


def _read_pid(files: JobFiles) -> int | None:
    data = read_json(files.pid)
    pid = data.get("pid") if data else None
    return pid if isinstance(pid, int) and pid > 0 else None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The worker leads its own process group (setsid), so this reaches any helper process it started too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LocalTrainer:
    """Trains with TRL in a detached process per job; state in files under ``work_dir``.

    ``python`` is the interpreter that runs the worker (it needs ``hypotez[local]``); ``env`` adds to the
    worker's environment (``HF_HUB_OFFLINE``, ``CUDA_VISIBLE_DEVICES``...).  A cancelled worker that has not
    stopped ``cancel_grace`` seconds later is terminated.
    """

    name = "local"

    def __init__(
        self,
        work_dir: Path,
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        cancel_grace: float = 10.0,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.python = python
        self.env = dict(env or {})
        self.cancel_grace = cancel_grace
        self._start_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._launching: set[str] = set()  # job keys whose worker has no pid file yet, by design
        self._record_lock = threading.Lock()  # status() runs in threads: one records a lost worker, once

    # ------------------------------------------------------------------------------------------ paths

    def job_dir(self, external_id: str) -> Path:
        """The directory of the job ``external_id`` (which is its job key)."""
        if not _KEY.fullmatch(external_id):
            raise NotFoundError("training job", external_id)
        return self.work_dir / external_id

    def _existing(self, external_id: str) -> JobFiles:
        files = JobFiles(self.job_dir(external_id))
        if not files.request.is_file():
            raise NotFoundError("training job", external_id, f"No local training job `{external_id}` was found.")
        return files

    async def models(self) -> list[str]:
        """The models trained so far (``local:<job_key>``)."""
        return await asyncio.to_thread(local_models, self.work_dir)

    # ------------------------------------------------------------------------------------------ start

    async def prepare(self, request: TrainingRequest) -> str:
        """Write the request without starting a worker (the job waits for a training slot); returns the job
        key, which :meth:`launch` starts.  A job key that already has a request is left as it is."""
        files = self._files_for(request)
        async with self._start_lock:
            if not await asyncio.to_thread(files.request.is_file):
                await asyncio.to_thread(self._prepare, files, request)
        return files.root.name

    async def launch(self, external_id: str) -> None:
        """Start the worker of a job written by :meth:`prepare`; nothing when it has one or has finished."""
        files = self._existing(external_id)
        async with self._start_lock:
            data = await asyncio.to_thread(read_json, files.status)
            if _read_pid(files) is not None or _state(data or {}).finished:
                return
            self._launching.add(external_id)
            try:
                await self._launch(files)
            finally:
                self._launching.discard(external_id)

    def _files_for(self, request: TrainingRequest) -> JobFiles:
        key = request.job_key
        if not _KEY.fullmatch(key):
            raise InvalidInputError(
                f"The job key {key!r} cannot name a local job: use letters, digits, '.', '_' and '-' (at most 128)."
            )
        return JobFiles(self.work_dir / key)

    async def start(self, request: TrainingRequest) -> str:
        """Write the request and start the worker; returns the job key.  A second call for a job key that
        already has a request starts nothing and returns the same id."""
        files = self._files_for(request)
        key = files.root.name
        async with self._start_lock:
            if await asyncio.to_thread(files.request.is_file):
                return key
            await asyncio.to_thread(self._prepare, files, request)
            self._launching.add(key)
            try:
                await self._launch(files)
            finally:
                self._launching.discard(key)
        return key

    def _check_dependencies(self) -> None:
        # Only this interpreter can be asked cheaply; another one reports a missing extra as a failed job.
        # (Paths compared without resolving links: two virtual environments link to the same interpreter.)
        if os.path.abspath(shutil.which(self.python) or self.python) != os.path.abspath(sys.executable):
            return
        missing = missing_local_dependencies()
        if missing:
            raise ConfigError(f"{EXTRA_HINT} Missing here: {', '.join(missing)}.")

    @staticmethod
    def resolve(request: TrainingRequest) -> Hyperparameters:
        """The request's hyperparameters with every option left out (or ``"auto"``) decided by the rules of
        :mod:`hypotez.ml.hyperparameters`; what was given is kept as it is.  ``/train`` sends every value
        resolved already, so nothing changes then.  Reads the base model's ``config.json`` (blocking)."""
        given = {k: v for k, v in request.hyperparameters.items() if v is not None}
        options = options_for("local", given, method=str(request.method))
        return resolve(
            options,
            method=str(request.method),
            data=DataFacts.of(request.train_examples),
            model=read_model_facts(request.base_model),
        )

    @classmethod
    def _payload(cls, request: TrainingRequest) -> str:
        data = dataclasses.asdict(request)
        data["method"] = str(request.method)
        data["hyperparameters"] = cls.resolve(request).values
        # A relative directory would be read relative to the worker's directory (the job's), so pin it now.
        base = Path(request.base_model).expanduser()
        if base.exists():
            data["base_model"] = str(base.resolve())
        try:
            return json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"The training examples cannot be written as JSON ({exc}).") from exc

    def _prepare(self, files: JobFiles, request: TrainingRequest) -> None:
        self._check_dependencies()
        payload = self._payload(request)
        files.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(files.status, {"state": str(JobState.QUEUED)})
        # request.json last: its presence means "this job exists" (see start's idempotency check).
        tmp = files.root / ".request.json.tmp"
        tmp.write_text(payload, encoding="utf-8")
        os.replace(tmp, files.request)

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        # The worker must import this very hypotez, installed or not.
        source_root = str(Path(next(iter(hypotez.__path__))).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizers library warns after a fork otherwise
        return env

    async def _launch(self, files: JobFiles) -> None:
        log_file = await asyncio.to_thread(files.log.open, "ab")
        try:
            launcher = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                WORKER_MODULE,
                str(files.root),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                cwd=files.root,
                env=self._worker_env(),
                start_new_session=True,
            )
        except OSError as exc:
            await asyncio.to_thread(self._mark_failed, files, "The training process could not be started.")
            raise ConfigError(
                f"The Python interpreter for local training ({self.python}) cannot be run: {exc.strerror or exc}."
            ) from exc
        finally:
            log_file.close()
        try:
            # The launcher forks the worker and exits at once; waiting for it leaves no zombie behind.
            code = await asyncio.wait_for(launcher.wait(), _LAUNCH_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                launcher.kill()
            await launcher.wait()
            code = -1
        if code != 0 and _read_pid(files) is None:
            await asyncio.to_thread(
                self._mark_failed,
                files,
                _log_hint("could not be started", files),
            )

    @staticmethod
    def _mark_failed(files: JobFiles, error: str) -> None:
        _local_worker.append_event(files, f"Training failed: {error}", level="error")
        write_json_atomic(files.status, {"state": str(JobState.FAILED), "error": error})

    # ------------------------------------------------------------------------------------------ status

    async def status(self, external_id: str) -> JobStatus:
        files = self._existing(external_id)
        return await asyncio.to_thread(self._status, files)

    def _status(self, files: JobFiles) -> JobStatus:
        data = read_json(files.status) or {}
        state = _state(data)
        if not state.finished:
            pid = _read_pid(files)
            alive = pid is not None and _worker_alive(pid, files.root)
            if alive and pid is not None:
                self._enforce_cancel_deadline(files, pid)
            elif files.root.name not in self._launching:
                with self._record_lock:
                    # The worker may have finished (or another read recorded it) meanwhile: look again.
                    data = read_json(files.status) or {}
                    state = _state(data)
                    if not state.finished:
                        data = self._record_lost_worker(files, data)
                        state = _state(data)
        return JobStatus(
            state=state,
            step=_int(data.get("step")),
            total_steps=_int(data.get("total_steps")),
            result_model=data.get("result_model") if isinstance(data.get("result_model"), str) else None,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            trained_tokens=_int(data.get("trained_tokens")),
            started_at=_time(data.get("started_at")),
        )

    def _record_lost_worker(self, files: JobFiles, data: dict[str, Any]) -> dict[str, Any]:
        """The worker is gone without a final state: cancelled if asked to stop, else failed.  Recorded, so
        every later read agrees."""
        if files.cancel.exists():
            data = {**data, "state": str(JobState.CANCELLED)}
            _local_worker.append_event(files, "Training cancelled.")
        else:
            error = _log_hint("exited unexpectedly", files)
            data = {**data, "state": str(JobState.FAILED), "error": error}
            _local_worker.append_event(files, f"Training failed: {error}", level="error")
        write_json_atomic(files.status, data)
        return data

    def _enforce_cancel_deadline(self, files: JobFiles, pid: int) -> None:
        """A worker asked to stop more than ``cancel_grace`` seconds ago is terminated (then killed 5 s later).
        Checked on every status read, so it holds after a restart of the bot too."""
        try:
            asked = files.cancel.stat().st_mtime
        except OSError:
            return
        overdue = time.time() - asked - self.cancel_grace
        if overdue > 5:
            _signal_group(pid, signal.SIGKILL)
        elif overdue > 0:
            _signal_group(pid, signal.SIGTERM)

    # ------------------------------------------------------------------------------------------ events

    async def events(self, external_id: str) -> list[JobEventRecord]:
        files = self._existing(external_id)
        return await asyncio.to_thread(_read_events, files)

    # ------------------------------------------------------------------------------------------ checkpoints

    @staticmethod
    def checkpoint_model(external_id: str, step: int) -> str:
        """The name a job's checkpoint gets as a model: ``local:<job_key>.step-<step>``."""
        return f"{MODEL_PREFIX}{external_id}.step-{step}"

    async def checkpoints(self, external_id: str) -> list[Checkpoint]:
        """The checkpoints the job still keeps (it saves one at each evaluation of a validation split and
        keeps the best and the latest), oldest first, and those registered as models."""
        files = self._existing(external_id)
        return await asyncio.to_thread(self._checkpoints, files)

    def _checkpoints(self, files: JobFiles) -> list[Checkpoint]:
        records, best = _local_worker.checkpoint_listing(files)
        found: list[Checkpoint] = []
        for record in records:
            step = _int(record.get("step"))
            if step is None:
                continue
            name = self.checkpoint_model(files.root.name, step)
            registered = JobFiles(self.work_dir / name.removeprefix(MODEL_PREFIX)).model.is_dir()
            if not registered and not (files.checkpoints / f"checkpoint-{step}").is_dir():
                continue  # rotated away
            found.append(
                Checkpoint(
                    step=step,
                    train_loss=_float(record.get("train_loss")),
                    valid_loss=_float(record.get("valid_loss")),
                    best=step == best,
                    model=name if registered else None,
                )
            )
        return found

    async def register_checkpoint(self, external_id: str, step: int) -> str:
        """Copy the checkpoint at ``step`` (its adapter or model, and the tokenizer) into a model directory of
        its own, so it is the local model ``local:<job_key>.step-<step>``; returns that name."""
        files = self._existing(external_id)
        name = self.checkpoint_model(external_id, step)
        if not _KEY.fullmatch(name.removeprefix(MODEL_PREFIX)):
            raise InvalidInputError(f"The checkpoint at step {step} cannot be named as a model.")
        async with self._start_lock:
            await asyncio.to_thread(self._register_checkpoint, files, step, name)
        return name

    def _register_checkpoint(self, files: JobFiles, step: int, name: str) -> None:
        target = JobFiles(self.work_dir / name.removeprefix(MODEL_PREFIX))
        if target.model.is_dir():
            return
        source = files.checkpoints / f"checkpoint-{step}"
        if not source.is_dir():
            steps = ", ".join(str(c.step) for c in self._checkpoints(files)) or "none"
            raise NotFoundError(
                "checkpoint", step, f"Job {files.root.name} keeps no checkpoint at step {step} (kept: {steps})."
            )
        target.root.mkdir(parents=True, exist_ok=True)
        tmp = target.root / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # The weights and the tokenizer; not the trainer's own state (optimizer, scheduler, random state).
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*_TRAINER_STATE))
        os.replace(tmp, target.model)

    # ------------------------------------------------------------------------------------------ cancel

    async def cancel(self, external_id: str) -> None:
        """Ask the worker to stop at its next step; terminate it if it has not within ``cancel_grace`` seconds.

        Returns at once; :meth:`status` says ``cancelled`` once the worker has stopped."""
        files = self._existing(external_id)
        data = await asyncio.to_thread(read_json, files.status)
        if _state(data or {}).finished:
            return
        await asyncio.to_thread(files.cancel.touch)
        task = asyncio.create_task(self._stop_after_grace(files))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_after_grace(self, files: JobFiles) -> None:
        for sig, wait in ((signal.SIGTERM, self.cancel_grace), (signal.SIGKILL, 5.0)):
            if await self._gone_within(files, wait):
                break
            pid = _read_pid(files)
            if pid is not None:
                log.info("Local training job %s did not stop when asked; sending %s", files.root.name, sig.name)
                _signal_group(pid, sig)
        else:
            await self._gone_within(files, 5.0)
        await asyncio.to_thread(self._status, files)  # records "cancelled" if the worker could not

    @staticmethod
    async def _gone_within(files: JobFiles, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            pid = _read_pid(files)
            if pid is None or not await asyncio.to_thread(_worker_alive, pid, files.root):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        """Stop watching; running workers go on (a later :class:`LocalTrainer` reports on them)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_hint(what: str, files: JobFiles) -> str:
    """An error naming the job's log without the server's paths (the text reaches Discord)."""
    return f"The training process {what}; see worker.log of job {files.root.name} on the bot's machine."


def _state(data: dict[str, Any]) -> JobState:
    try:
        return JobState(data.get("state", JobState.QUEUED))
    except ValueError:
        return JobState.FAILED


def _time(value: object) -> dt.datetime | None:
    """An ISO time the worker wrote (``None`` when missing or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


#: Files of a checkpoint that only resuming the training needs.
_TRAINER_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "trainer_state.json",
    "training_args.bin",
)


def _read_events(files: JobFiles) -> list[JobEventRecord]:
    """Events oldest first; the id is the line number, so it never changes.  A line the worker is still
    writing (or a damaged one) is skipped."""
    try:
        text = files.events.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[JobEventRecord] = []
    for number, line in enumerate(text.split("\n"), 1):
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict):
            continue
        event = cast("dict[str, Any]", raw)
        try:
            created = dt.datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            created = dt.datetime.now(dt.UTC)
        data = event.get("data")
        records.append(
            JobEventRecord(
                external_id=str(number),
                created_at=created,
                message=str(event.get("message", "")),
                level=str(event.get("level", "info")),
                kind=str(event.get("kind", "message")),
                data=cast("dict[str, Any]", data) if isinstance(data, dict) else {},
            )
        )
    return records
