"""What the local trainer's hyperparameters teach the tests' tiny model, and how long it takes.

``python -m bench.training_quality [--examples 20 50] [--configs auto lora old ...]`` builds the tiny model of
``tests/fakes/tiny_model.py`` for each number of examples of its synthetic task (code words of made-up names:
an untrained model scores 0 %), trains it through :class:`~hypotez.ml.trainers.local.LocalTrainer` (the
detached worker, as ``/train`` does) with each configuration, and prints, per run: greedy exact match on the
task, preference accuracy on its pairs (chosen: the right code word, rejected: another name's), the steps,
and the training time (wall and CPU seconds of the worker's training, start-up excluded).

Configurations (every option not named is ``"auto"``):

* ``auto``: the automatic choices (:mod:`hypotez.ml.hyperparameters`);
* ``lora``: ``lora`` true, the rest automatic;
* ``full``: ``lora`` false, the rest automatic;
* ``old``: the defaults before automatic choices existed (LoRA, rate 2e-4, 3 epochs, batch 8);
* ``loop``: what the loop test used to give explicitly (full, 300 steps, batch 16, rate 3e-3);
* ``sft+dpo``: ``method:supervised+preference`` on the pairs, automatic (the supervised stage's model is
  measured too).

Runs go one after the other: on a shared machine the times are only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hypotez.ml.trainers.base import JobState, TrainingMethod, TrainingRequest
from hypotez.ml.trainers.local import LocalTrainer
from tests.fakes.tiny_model import (
    exact_match,
    make_tiny_model,
    preference_examples,
    score_preferences,
    supervised_examples,
    synthetic_task,
)

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "auto": ("supervised", {}),
    "lora": ("supervised", {"lora": True}),
    "full": ("supervised", {"lora": False}),
    "old": (
        "supervised",
        {"lora": True, "learning_rate": 2e-4, "epochs": 3, "batch_size": 8, "lora_rank": 16, "lora_alpha": 32},
    ),
    "loop": ("supervised", {"lora": False, "max_steps": 300, "batch_size": 16, "learning_rate": 3e-3}),
    "sft+dpo": ("supervised+preference", {}),
}


async def _train(work: Path, key: str, base: Path, config: tuple[str, dict[str, Any]], pairs: list[Any]) -> Path:
    method, options = config
    trainer = LocalTrainer(work, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf-home")})
    kind = TrainingMethod(method)
    examples = supervised_examples(pairs) if kind is TrainingMethod.SUPERVISED else preference_examples(pairs)
    request = TrainingRequest(key, str(base), kind, examples, hyperparameters=options)
    print(f"  {key}: {LocalTrainer.resolve(request).values}", flush=True)
    await trainer.start(request)
    while True:
        status = await trainer.status(key)
        if status.state.finished:
            break
        await asyncio.sleep(0.5)
    if status.state is not JobState.SUCCEEDED:
        raise SystemExit(f"{key} {status.state}: {status.error}")
    return trainer.job_dir(key)


@dataclass
class _Run:
    """What the job's events say: training time (wall and CPU), steps, and the training loss at both ends."""

    wall: float = 0.0
    cpu: float = 0.0
    steps: int = 0
    losses: list[float] = field(default_factory=list[float])

    @classmethod
    def of(cls, job: Path) -> _Run:
        run = cls()
        for line in (job / "events.jsonl").read_text().splitlines():
            data = json.loads(line).get("data", {})
            run.wall = data.get("train_seconds", run.wall)
            run.cpu = data.get("train_cpu_seconds", run.cpu)
            run.steps = max(run.steps, int(data.get("step", 0)))
            if "train_loss" in data and data.get("stage") != "preference":
                run.losses.append(float(data["train_loss"]))
        return run

    @property
    def loss(self) -> str:
        return f"{self.losses[0]:.2f} → {self.losses[-1]:.2f}" if self.losses else ""


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=0, help="shuffles the task's answers and draws the model's weights")
    args = parser.parse_args(argv)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.examples:
            pairs = synthetic_task(n, seed=args.seed)
            base = make_tiny_model(Path(tmp) / f"tiny-{n}", [f"{q} {a}" for q, a in pairs], seed=args.seed)
            pairs_examples = preference_examples(pairs)
            before = await asyncio.to_thread(exact_match, base, pairs)
            start = await asyncio.to_thread(score_preferences, base, pairs_examples)
            rows.append(
                f"| {n} | untrained | {before:.0%} | {start.accuracy:.0%} (margin {start.margin:+.1f}) | | | | |"
            )
            for name in args.configs:
                started = time.perf_counter()
                job = await _train(Path(tmp) / "jobs", f"{name.replace('+', '-')}-{n}", base, CONFIGS[name], pairs)
                run = _Run.of(job)
                measured = [("", job / "model")]
                if (job / "supervised-model").is_dir():
                    measured.insert(0, (" (its SFT stage)", job / "supervised-model"))
                for label, model in measured:
                    exact = await asyncio.to_thread(exact_match, model, pairs)
                    prefs = await asyncio.to_thread(score_preferences, model, pairs_examples)
                    rows.append(
                        f"| {n} | {name}{label} | {exact:.0%} | {prefs.accuracy:.0%} (margin {prefs.margin:+.1f}) "
                        f"| {run.loss} | {run.steps} | {run.wall:.1f} s | {run.cpu:.1f} s |"
                    )
                print(rows[-1], f"(job {time.perf_counter() - started:.0f} s with start-up)", flush=True)
    print("\n| examples | configuration | exact match | preference accuracy | SFT loss | steps | training | CPU |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
