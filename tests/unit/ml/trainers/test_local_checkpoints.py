"""Checkpoints of the ``local`` trainer: with a validation split it saves one at each evaluation, keeps the best
by validation loss (and the latest), ends with the best as its model, and registers any kept one as a model.

The overfitting job trains on one mapping of names to code words and is validated on another mapping of the same
names: the validation loss falls while the model learns the answers' form, then rises as it memorises the
training mapping — so the best checkpoint is not the last, which is what the test needs to tell them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
if any(importlib.util.find_spec(name) is None for name in ("trl", "peft", "datasets", "accelerate", "safetensors")):
    pytest.skip("the local extra (trl, peft, datasets, accelerate) is not installed", allow_module_level=True)

from hypotez.errors import NotFoundError
from hypotez.ml.local_chat import LocalChatBackend
from hypotez.ml.trainers import _local_worker
from hypotez.ml.trainers.base import CheckpointingTrainer, JobState, JobStatus, TrainingMethod, TrainingRequest
from hypotez.ml.trainers.local import LocalTrainer, local_models, model_path
from tests.fakes.tiny_model import make_tiny_model, preference_examples, supervised_examples, synthetic_task

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(600)

TRAIN = synthetic_task(50, seed=0)
#: The same questions with other answers: what the model memorises from TRAIN is wrong here.
VALID = synthetic_task(50, seed=1)
OVERFIT = {"lora": False, "max_steps": 150, "batch_size": 16, "learning_rate": 3e-3, "seed": 0}
ADAPTER = {"max_steps": 10, "batch_size": 8, "seed": 0, "lora": True}
NO_SPLIT = {"max_steps": 4, "batch_size": 8, "seed": 0}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("local-checkpoints")
    base = make_tiny_model(root / "tiny", [f"{q} {a}" for q, a in TRAIN + VALID])
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf-home"), "OMP_NUM_THREADS": "1"}
    work_dir = root / "jobs"

    async def start_all() -> None:
        trainer = LocalTrainer(work_dir, env=env)
        for key, hyperparameters, split in (
            ("overfit", OVERFIT, VALID),
            ("adapter", ADAPTER, VALID[:8]),
            ("nosplit", NO_SPLIT, []),
        ):
            await trainer.start(
                TrainingRequest(
                    job_key=key,
                    base_model=str(base),
                    method=TrainingMethod.SUPERVISED,
                    train_examples=supervised_examples(TRAIN),
                    validation_examples=supervised_examples(split),
                    hyperparameters=hyperparameters,
                )
            )
        await trainer.start(
            TrainingRequest(
                job_key="dpo",
                base_model=str(base),
                method=TrainingMethod.PREFERENCE,
                train_examples=preference_examples(TRAIN[:16]),
                validation_examples=preference_examples(TRAIN[16:24]),
                hyperparameters=ADAPTER,
            )
        )
        await trainer.close()

    asyncio.run(start_all())
    yield work_dir, env
    for job_dir in work_dir.iterdir():
        pid = (_local_worker.read_json(job_dir / "worker.pid") or {}).get("pid")
        if isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


async def _finished(trainer: LocalTrainer, key: str, within: float = 400.0) -> JobStatus:
    deadline = time.monotonic() + within
    while True:
        status = await trainer.status(key)
        if status.state.finished or time.monotonic() > deadline:
            log = (trainer.job_dir(key) / "worker.log").read_text(errors="replace")[-3000:]
            assert status.state is JobState.SUCCEEDED, f"{key}: {status}\n{log}"
            return status
        await asyncio.sleep(0.2)


def _tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.asyncio
async def test_the_best_checkpoint_by_validation_loss_is_the_model_not_the_last(
    work: tuple[Path, dict[str, str]],
) -> None:
    import torch

    work_dir, env = work
    trainer = LocalTrainer(work_dir, env=env)
    assert isinstance(trainer, CheckpointingTrainer)
    status = await _finished(trainer, "overfit")
    events = await trainer.events("overfit")
    # The worker's own start time, which the monitor counts from: before its first step, after it was asked.
    first_step = next(e for e in events if e.kind == "metrics")
    assert status.started_at is not None
    assert events[0].created_at <= status.started_at <= first_step.created_at
    valid = [(e.data["step"], e.data["valid_loss"]) for e in events if "valid_loss" in e.data]
    assert [step for step, _ in valid] == [30, 60, 90, 120, 150]  # an evaluation (and a checkpoint) every 30 steps
    best_step, best_loss = min(valid, key=lambda p: p[1])
    print(f"\nvalidation loss by step: {valid}; best step {best_step}")
    # The scenario holds: the validation loss rose after its best, so the last checkpoint is not the best.
    assert best_step < 150
    assert valid[-1][1] > best_loss

    checkpoints = await trainer.checkpoints("overfit")
    # The best and the latest are kept, the others rotated away; the best is marked.
    assert [c.step for c in checkpoints] == sorted({best_step, 150})
    [best] = [c for c in checkpoints if c.best]
    assert best.step == best_step
    assert best.valid_loss == pytest.approx(best_loss)
    assert best.train_loss is not None
    assert best.model is None  # not registered yet

    # The job's model is the best checkpoint's weights, not the last step's.
    job_dir = trainer.job_dir("overfit")
    final = _tensors(job_dir / "model" / "model.safetensors")
    at_best = _tensors(job_dir / "checkpoints" / f"checkpoint-{best_step}" / "model.safetensors")
    at_last = _tensors(job_dir / "checkpoints" / "checkpoint-150" / "model.safetensors")
    assert final.keys() == at_best.keys()
    assert all(torch.equal(final[name], at_best[name]) for name in final)
    assert not all(torch.equal(final[name], at_last[name]) for name in final)
    finished = events[-1]
    assert finished.message.startswith("Training finished: the model is local:overfit, the best checkpoint")
    assert f"step {best_step}" in finished.message
    assert finished.data["best_step"] == best_step

    # Registered, the best checkpoint is a local model of its own that the chat backend loads.
    name = await trainer.register_checkpoint("overfit", best_step)
    assert name == f"local:overfit.step-{best_step}"
    assert await trainer.register_checkpoint("overfit", best_step) == name  # again: the same model
    assert name in local_models(work_dir)
    registered = model_path(work_dir, name)
    assert not (registered / "optimizer.pt").exists()
    assert (registered / "tokenizer_config.json").is_file()
    copied = _tensors(registered / "model.safetensors")
    assert all(torch.equal(copied[n], at_best[n]) for n in at_best)
    assert [c.model for c in await trainer.checkpoints("overfit") if c.best] == [name]
    backend = LocalChatBackend.for_work_dir(work_dir, max_new_tokens=4)
    answer = await backend.complete([{"role": "user", "content": TRAIN[0][0]}], name)
    assert answer.model == name
    await backend.close()

    rotated = next(step for step, _ in valid if step not in {best_step, 150})
    with pytest.raises(NotFoundError, match=f"no checkpoint at step {rotated}"):
        await trainer.register_checkpoint("overfit", rotated)


@pytest.mark.asyncio
async def test_an_adapter_checkpoint_registers_as_an_adapter(work: tuple[Path, dict[str, str]]) -> None:
    work_dir, env = work
    trainer = LocalTrainer(work_dir, env=env)
    await _finished(trainer, "adapter")
    checkpoints = await trainer.checkpoints("adapter")
    assert checkpoints
    assert sum(c.best for c in checkpoints) == 1
    step = checkpoints[0].step
    name = await trainer.register_checkpoint("adapter", step)
    assert (model_path(work_dir, name) / "adapter_config.json").is_file()
    backend = LocalChatBackend.for_work_dir(work_dir, max_new_tokens=4)
    answer = await backend.complete([{"role": "user", "content": TRAIN[1][0]}], name)
    assert answer.model == name
    await backend.close()


@pytest.mark.asyncio
async def test_without_a_split_only_the_final_model_is_kept(work: tuple[Path, dict[str, str]]) -> None:
    work_dir, env = work
    trainer = LocalTrainer(work_dir, env=env)
    await _finished(trainer, "nosplit")
    assert await trainer.checkpoints("nosplit") == []
    assert not list((trainer.job_dir("nosplit") / "checkpoints").glob("checkpoint-*"))
    assert "local:nosplit" in local_models(work_dir)
    with pytest.raises(NotFoundError, match="keeps no checkpoint at step 2"):
        await trainer.register_checkpoint("nosplit", 2)


@pytest.mark.asyncio
async def test_preference_training_keeps_its_best_checkpoint_too(work: tuple[Path, dict[str, str]]) -> None:
    work_dir, env = work
    trainer = LocalTrainer(work_dir, env=env)
    await _finished(trainer, "dpo")
    events = await trainer.events("dpo")
    assert any("reward_accuracy" in e.data for e in events)  # the rewards stream into the job
    checkpoints = await trainer.checkpoints("dpo")
    assert sum(c.best for c in checkpoints) == 1
    assert all(c.valid_loss is not None for c in checkpoints)
    assert "the best checkpoint by validation loss" in events[-1].message
    name = await trainer.register_checkpoint("dpo", checkpoints[0].step)
    assert (model_path(work_dir, name) / "adapter_config.json").is_file()
