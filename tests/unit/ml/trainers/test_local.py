"""The ``local`` trainer: real TRL jobs on a tiny model, each in its own detached process.

The slow jobs (supervised, preference, the learning loop, one to cancel) start together once per module,
so their start-up (importing torch and TRL, ~5 s each) overlaps; each test then watches its job through a
fresh :class:`LocalTrainer` on the same directory, which is also what a restarted bot does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

# No test may reach the Hugging Face hub; set before transformers reads it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
# TRL, PEFT and datasets run only in the worker: checked, not imported, here.
if any(importlib.util.find_spec(name) is None for name in ("trl", "peft", "datasets", "accelerate")):
    pytest.skip("the local extra (trl, peft, datasets, accelerate) is not installed", allow_module_level=True)

from hypotez.errors import ConfigError, InvalidInputError, NotFoundError
from hypotez.ml.local_chat import LocalChatBackend
from hypotez.ml.trainers import _local_worker
from hypotez.ml.trainers.base import JobState, JobStatus, Trainer, TrainingMethod, TrainingRequest
from hypotez.ml.trainers.local import LocalTrainer, local_models, model_path
from tests.fakes.tiny_model import (
    make_tiny_model,
    preference_examples,
    supervised_examples,
    synthetic_task,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from hypotez.ml.chat import ChatMessage

#: Training and inference share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)


PAIRS = synthetic_task(50)
#: A few steps of a LoRA adapter (the tiny model would be fully fine-tuned by default).
SMALL = {"max_steps": 6, "batch_size": 4, "seed": 0, "lora": True}


@dataclass
class Jobs:
    work_dir: Path
    base: Path
    env: dict[str, str]
    started_at: dict[str, float]

    def trainer(self, **options: Any) -> LocalTrainer:
        return LocalTrainer(self.work_dir, env=self.env, **options)


def _request(
    key: str, base: Path | str, method: TrainingMethod = TrainingMethod.SUPERVISED, **kw: Any
) -> TrainingRequest:
    examples = supervised_examples(PAIRS) if method is TrainingMethod.SUPERVISED else preference_examples(PAIRS)
    return TrainingRequest(job_key=key, base_model=str(base), method=method, train_examples=examples, **kw)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    root = tmp_path_factory.mktemp("local-trainer")
    base = make_tiny_model(root / "tiny", [f"{q} {a}" for q, a in PAIRS])
    # One thread per worker: four of them share the machine.
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf-home"), "OMP_NUM_THREADS": "1"}
    result = Jobs(root / "jobs", base, env, {})

    async def start_all() -> None:
        trainer = result.trainer()
        requests = [
            _request("cancel-me", base, hyperparameters={"max_steps": 100_000, "batch_size": 1}),
            _request("loop", base),  # every hyperparameter automatic
            _request("sft", base, hyperparameters=SMALL, validation_examples=supervised_examples(PAIRS[:4])),
            _request("dpo", base, TrainingMethod.PREFERENCE, hyperparameters=SMALL),
        ]
        for request in requests:
            result.started_at[request.job_key] = time.monotonic()
            assert await trainer.start(request) == request.job_key
        await trainer.close()

    asyncio.run(start_all())
    yield result
    for job_dir in result.work_dir.iterdir():  # nothing outlives the tests
        pid = (_local_worker.read_json(job_dir / "worker.pid") or {}).get("pid")
        if isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


async def _wait(
    trainer: LocalTrainer, key: str, until: Callable[[JobStatus], bool], within: float = 300.0
) -> JobStatus:
    deadline = time.monotonic() + within
    while True:
        status = await trainer.status(key)
        if until(status):
            return status
        if status.state.finished or time.monotonic() > deadline:
            log = (trainer.job_dir(key) / "worker.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"job {key} ended as {status} (waited {within} s); log:\n{log}")
        await asyncio.sleep(0.1)


def _finished(status: JobStatus) -> bool:
    return status.state is JobState.SUCCEEDED


def _worker_pid(trainer: LocalTrainer, key: str) -> int:
    pid = json.loads((trainer.job_dir(key) / "worker.pid").read_text())["pid"]
    assert json.loads((trainer.job_dir(key) / "status.json").read_text())["pid"] == pid
    return pid


# ---------------------------------------------------------------------------------------------- jobs


@pytest.mark.asyncio
async def test_cancel_stops_a_running_job(jobs: Jobs) -> None:
    trainer = jobs.trainer(cancel_grace=5.0)
    running = await _wait(trainer, "cancel-me", lambda s: (s.step or 0) >= 1)
    assert running.state is JobState.RUNNING
    assert running.total_steps == 100_000

    asked = time.monotonic()
    await trainer.cancel("cancel-me")
    status = await _wait(trainer, "cancel-me", lambda s: s.state is JobState.CANCELLED, within=5.0)
    assert time.monotonic() - asked < 5.0
    assert status.result_model is None
    assert not (trainer.job_dir("cancel-me") / "model").exists()
    assert (await trainer.events("cancel-me"))[-1].message == "Training cancelled."
    await trainer.cancel("cancel-me")  # cancelling a finished job does nothing
    await trainer.close()


@pytest.mark.asyncio
async def test_supervised_job_runs_in_its_own_process_with_metrics(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    assert isinstance(trainer, Trainer)
    status = await _wait(trainer, "sft", _finished)
    assert _worker_pid(trainer, "sft") != os.getpid()
    assert status.result_model == "local:sft"
    assert (status.step, status.total_steps) == (6, 6)
    assert status.error is None
    assert status.trained_tokens

    events = await trainer.events("sft")
    metrics = [e for e in events if e.kind == "metrics" and "train_loss" in e.data]
    assert [e.data["step"] for e in metrics] == [1, 2, 3, 4, 5, 6]
    validation = [e for e in events if e.kind == "metrics" and "valid_loss" in e.data]
    assert validation
    assert all(isinstance(e.data["valid_loss"], float) for e in validation)
    for event in metrics:
        assert isinstance(event.data["train_loss"], float)
        assert event.data["total_steps"] == 6
        assert {"learning_rate", "epoch"} <= event.data.keys()
    assert [e.external_id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert events == sorted(events, key=lambda e: e.created_at)
    # With a validation split the model is the best checkpoint by validation loss, and the final event says so.
    assert events[-1].message.startswith("Training finished: the model is local:sft, the best checkpoint by validation")

    adapter = model_path(jobs.work_dir, "local:sft")
    assert (adapter / "adapter_config.json").is_file()
    assert "local:sft" in local_models(jobs.work_dir)


@pytest.mark.asyncio
async def test_preference_job_trains_with_dpo(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    status = await _wait(trainer, "dpo", _finished)
    assert _worker_pid(trainer, "dpo") != os.getpid()
    assert status.result_model == "local:dpo"
    metrics = [e for e in await trainer.events("dpo") if e.kind == "metrics"]
    steps = [e.data["step"] for e in metrics]
    assert steps == sorted(steps)
    assert steps[-1] == 6
    assert all(isinstance(e.data["train_loss"], float) for e in metrics)
    assert "reward_margin" in metrics[-1].data
    assert (model_path(jobs.work_dir, "local:dpo") / "adapter_config.json").is_file()


@pytest.mark.asyncio
async def test_a_restarted_bot_reports_the_job_and_start_is_idempotent(jobs: Jobs) -> None:
    first = jobs.trainer()
    await _wait(first, "sft", _finished)
    await first.close()
    pid = _worker_pid(first, "sft")

    again = jobs.trainer()  # as after a restart of the bot
    status = await again.status("sft")
    assert status.state is JobState.SUCCEEDED
    assert status.result_model == "local:sft"
    assert await again.start(_request("sft", jobs.base, hyperparameters=SMALL)) == "sft"
    assert _worker_pid(again, "sft") == pid
    started = [e for e in await again.events("sft") if e.message.startswith("Worker started")]
    assert len(started) == 1
    assert "local:sft" in await again.models()


@pytest.mark.asyncio
async def test_the_adapter_answers_through_the_local_chat_backend(jobs: Jobs) -> None:
    await _wait(jobs.trainer(), "sft", _finished)
    backend = LocalChatBackend.for_work_dir(jobs.work_dir, max_new_tokens=8)
    assert "local:sft" in await backend.list_models()
    messages: list[ChatMessage] = [{"role": "user", "content": PAIRS[0][0]}]
    result = await backend.complete(messages, "local:sft")
    assert isinstance(result.content, str)
    assert result.model == "local:sft"
    assert result.prompt_tokens
    assert result.completion_tokens
    await backend.close()


async def _accuracy(backend: LocalChatBackend, model: str) -> float:
    right = 0
    for question, answer in PAIRS:
        result = await backend.complete([{"role": "user", "content": question}], model)
        right += result.content.strip() == answer
    return right / len(PAIRS)


@pytest.mark.asyncio
async def test_the_loop_works(jobs: Jobs) -> None:
    """The automatic hyperparameters teach the tiny model, through the trainer, 50 facts it could not know."""
    trainer = jobs.trainer()
    backend = LocalChatBackend.for_work_dir(jobs.work_dir, max_new_tokens=8)
    before = await _accuracy(backend, str(jobs.base))
    status = await _wait(trainer, "loop", _finished, within=500.0)
    job_seconds = time.monotonic() - jobs.started_at["loop"]
    after = await _accuracy(backend, "local:loop")
    await backend.close()

    train_seconds = next(e.data["train_seconds"] for e in await trainer.events("loop") if "train_seconds" in e.data)
    print(
        f"\nloop: {status.total_steps} steps, training {train_seconds:.1f} s, job {job_seconds:.1f} s "
        f"(start-up included), exact match {before:.0%} -> {after:.0%}"
    )
    # Exactly what the rules resolved when the job was written: 100 passes of 4 steps (batch 16 of 50).
    request = json.loads((trainer.job_dir("loop") / "request.json").read_text())
    assert request["hyperparameters"] == LocalTrainer.resolve(_request("loop", jobs.base)).values
    assert (request["hyperparameters"]["lora"], request["hyperparameters"]["epochs"]) == (False, 100)
    assert status.total_steps == 400
    assert before <= 0.04
    assert after >= 0.9


# ------------------------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_a_missing_base_model_fails_with_a_clear_error(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    missing = jobs.work_dir.parent / "no-such-model"
    await trainer.start(_request("missing-base", missing, hyperparameters=SMALL))
    status = await _wait(trainer, "missing-base", lambda s: s.state is JobState.FAILED, within=20)
    assert status.error == f"The base model directory {missing} does not exist."
    assert "Traceback" in (trainer.job_dir("missing-base") / "worker.log").read_text()
    assert (await trainer.events("missing-base"))[-1].level == "error"


@pytest.mark.asyncio
async def test_bad_examples_fail_with_a_clear_error(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    examples = supervised_examples(PAIRS[:3])
    examples[1] = {"messages": [{"role": "user", "content": "no answer"}]}
    request = TrainingRequest("bad-examples", str(jobs.base), TrainingMethod.SUPERVISED, examples)
    await trainer.start(request)
    status = await _wait(trainer, "bad-examples", lambda s: s.state is JobState.FAILED, within=20)
    assert status.error == "Training example 2 does not end with an assistant message."


@pytest.mark.asyncio
async def test_a_bad_hyperparameter_is_refused_before_anything_runs(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    with pytest.raises(InvalidInputError) as refused:
        await trainer.start(_request("bad-lr", jobs.base, hyperparameters={"learning_rate": "fast"}))
    assert refused.value.user_message == "Invalid training options: `learning_rate` must be a valid number."
    with pytest.raises(InvalidInputError, match="`n_epochs` applies to the openai trainer only"):
        await trainer.start(_request("bad-name", jobs.base, hyperparameters={"n_epochs": 2}))
    assert not trainer.job_dir("bad-lr").exists()


@pytest.mark.asyncio
async def test_a_request_written_by_hand_with_auto_left_fails_clearly(jobs: Jobs, tmp_path: Path) -> None:
    """The worker trains with the resolved values only; it never fills in a value itself."""
    job = _local_worker.JobFiles(tmp_path / "unresolved")
    job.root.mkdir()
    job.request.write_text(
        json.dumps(
            {
                "method": "supervised",
                "base_model": str(jobs.base),
                "train_examples": supervised_examples(PAIRS[:2]),
                "hyperparameters": {"lora": False, "epochs": 1, "learning_rate": "auto", "batch_size": 2, "seed": 0},
            }
        )
    )
    assert _local_worker.run(job.root) == 1
    status = json.loads(job.status.read_text())
    assert (status["state"], status["error"]) == ("failed", "The hyperparameter `learning_rate` was not resolved.")


@pytest.mark.asyncio
async def test_without_the_local_extra_start_names_it(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local_worker, "LOCAL_EXTRA_MODULES", ("torch", "hypotez_no_such_module"))
    trainer = jobs.trainer()
    with pytest.raises(ConfigError, match=r"pip install 'hypotez\[local\]'") as caught:
        await trainer.start(_request("no-extra", jobs.base))
    assert "hypotez_no_such_module" in str(caught.value)
    assert not trainer.job_dir("no-extra").exists()


@pytest.mark.asyncio
async def test_bad_ids(jobs: Jobs) -> None:
    trainer = jobs.trainer()
    with pytest.raises(InvalidInputError):
        await trainer.start(_request("../escape", jobs.base))
    with pytest.raises(NotFoundError):
        await trainer.status("never-started")
    with pytest.raises(NotFoundError):
        await trainer.events("../sft")
    with pytest.raises(NotFoundError):
        model_path(jobs.work_dir, "local:never-started")
    with pytest.raises(NotFoundError):
        model_path(jobs.work_dir, "gpt-4o-mini")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(("asked_to_cancel", "expected"), [(False, JobState.FAILED), (True, JobState.CANCELLED)])
@pytest.mark.asyncio
async def test_a_worker_that_vanished_is_reported(tmp_path: Path, asked_to_cancel: bool, expected: JobState) -> None:
    job = _local_worker.JobFiles(tmp_path / "jobs" / "lost")
    job.root.mkdir(parents=True)
    job.request.write_text("{}")
    _local_worker.write_json_atomic(job.status, {"state": "running", "step": 3, "total_steps": 10})
    _local_worker.write_json_atomic(job.pid, {"pid": _dead_pid()})
    if asked_to_cancel:
        job.cancel.touch()

    trainer = LocalTrainer(tmp_path / "jobs")
    status = await trainer.status("lost")
    assert status.state is expected
    assert status.step == 3
    if expected is JobState.FAILED:
        assert (
            status.error == "The training process exited unexpectedly; see worker.log of job lost on the bot's machine."
        )
        assert str(job.log.parent.parent) not in status.error  # no server paths reach Discord
    assert (await LocalTrainer(tmp_path / "jobs").status("lost")).state is expected  # recorded


@pytest.mark.asyncio
async def test_events_skip_a_line_still_being_written(tmp_path: Path) -> None:
    job = _local_worker.JobFiles(tmp_path / "jobs" / "partial")
    job.root.mkdir(parents=True)
    job.request.write_text("{}")
    _local_worker.append_event(job, "Worker started.")
    _local_worker.append_event(job, "Step 1/2", kind="metrics", data={"step": 1, "total_steps": 2, "train_loss": 1.5})
    with job.events.open("a") as out:
        out.write('{"time": "2026-01-01T00:00:00+00:00", "kind": "metr')
    events = await LocalTrainer(tmp_path / "jobs").events("partial")
    assert [(e.external_id, e.kind) for e in events] == [("1", "message"), ("2", "metrics")]
    assert events[1].data["train_loss"] == 1.5


def _stubborn_worker(tmp_path: Path) -> tuple[_local_worker.JobFiles, subprocess.Popen[bytes]]:
    """A process that passes for the job's worker (its command line names the job) and ignores the cancel file."""
    job = _local_worker.JobFiles(tmp_path.resolve() / "jobs" / "stubborn")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(job.root)], start_new_session=True
    )
    job.root.mkdir(parents=True)
    job.request.write_text("{}")
    _local_worker.write_json_atomic(job.status, {"state": "running", "step": 1, "total_steps": 10})
    _local_worker.write_json_atomic(job.pid, {"pid": child.pid})
    return job, child


@pytest.mark.asyncio
async def test_a_worker_that_ignores_cancel_is_terminated_after_the_grace_period(tmp_path: Path) -> None:
    _, child = _stubborn_worker(tmp_path)
    try:
        trainer = LocalTrainer(tmp_path / "jobs", cancel_grace=0.5)
        await trainer.cancel("stubborn")
        assert (await trainer.status("stubborn")).state is JobState.RUNNING  # still within the grace period
        status = await _wait(trainer, "stubborn", lambda s: s.state is JobState.CANCELLED, within=5.0)
        assert status.step == 1
        assert child.wait(timeout=5) == -signal.SIGTERM
        await trainer.close()
    finally:
        child.kill()
        child.wait()


@pytest.mark.asyncio
async def test_after_a_restart_status_enforces_an_overdue_cancel(tmp_path: Path) -> None:
    job, child = _stubborn_worker(tmp_path)
    try:
        job.cancel.touch()
        asked = time.time() - 3
        os.utime(job.cancel, (asked, asked))  # asked 3 s ago, by a bot that has since stopped
        trainer = LocalTrainer(tmp_path / "jobs", cancel_grace=1.0)
        assert (await trainer.status("stubborn")).state is JobState.RUNNING  # the signal goes out now
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert (await trainer.status("stubborn")).state is JobState.CANCELLED
    finally:
        child.kill()
        child.wait()


@pytest.mark.asyncio
async def test_an_interpreter_that_cannot_run_is_a_config_error(tmp_path: Path) -> None:
    trainer = LocalTrainer(tmp_path / "jobs", python=str(tmp_path / "no-python"))
    with pytest.raises(ConfigError, match="cannot be run"):
        await trainer.start(_request("no-python", tmp_path))
    status = await trainer.status("no-python")
    assert status.state is JobState.FAILED
    assert status.error == "The training process could not be started."
