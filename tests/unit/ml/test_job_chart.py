"""A job's chart and embed: training loss with its smoothed curve and the validation loss on one chart, the
rewards of preference training in a second panel; the embed's times, losses and rewards."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from hypotez.ml.charts import ema, loss_chart_png, loss_chart_series
from hypotez.plugins._job_status import chart_points, job_embed, job_times
from hypotez.storage.models import TrainingJob

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TRAIN = [[step, 2.0 * 0.9**step + (0.3 if step % 2 else 0.0)] for step in range(1, 41)]
VALID = [[10, 1.2], [20, 0.9], [30, 1.0], [40, 1.3]]  # best at step 20, rising after it


def _job(**values: object) -> TrainingJob:
    defaults: dict[str, object] = {
        "id": 7,
        "guild_id": 1,
        "requested_by": 2,
        "idempotency_key": "k",
        "trainer": "local",
        "base_model": "tiny",
        "method": "supervised",
        "status": "running",
        "metrics": {},
        "created_at": NOW - dt.timedelta(hours=2),
        "chart_points": 0,
    }
    return TrainingJob(**{**defaults, **values})


def test_ema_smooths_and_is_debiased() -> None:
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # no pull towards 0 at the start
    assert ema([0.0, 10.0], 0.0) == [0.0, 10.0]
    smoothed = ema([0.0, 10.0, 0.0, 10.0], 0.6)
    assert smoothed[1] == pytest.approx(10 * 0.4 / (1 - 0.36))
    assert max(smoothed[1:]) - min(smoothed[1:]) < 10  # the zig-zag flattened


def test_the_chart_holds_training_smoothed_and_validation_loss_with_a_legend() -> None:
    series = loss_chart_series(TRAIN, valid=VALID)
    assert [s.label for s in series] == [
        "training loss",
        "training loss (smoothed, EMA 0.6)",
        "validation loss",
    ]
    raw, smooth, valid = series
    assert raw.style == "faint"
    assert raw.values == [p[1] for p in TRAIN]
    assert smooth.values == pytest.approx(ema([p[1] for p in TRAIN], 0.6))
    assert valid.style == "points"
    assert valid.steps == [10, 20, 30, 40]
    assert all(s.panel == "loss" for s in series)
    # Preference training adds its rewards, in a panel of their own.
    preference = loss_chart_series(TRAIN, reward_accuracy=[[1, 0.5], [2, 0.75]], reward_margin=[[1, 0.1], [2, 0.3]])
    assert [(s.label, s.panel) for s in preference if s.panel == "reward"] == [
        ("reward accuracy", "reward"),
        ("reward margin", "reward"),
    ]


def test_the_png_renders_one_or_two_panels() -> None:
    from PIL import Image

    plain = Image.open(io.BytesIO(loss_chart_png(TRAIN, title="job #7", valid=VALID)))
    rewards = Image.open(io.BytesIO(loss_chart_png(TRAIN, title="job #7", reward_accuracy=[[1, 0.5], [2, 1.0]])))
    assert plain.size == (600, 300)
    assert rewards.size == (600, 450)  # the reward panel below the loss


def test_times_are_by_the_trainers_clock() -> None:
    started = NOW - dt.timedelta(minutes=10)
    running = _job(trainer_started_at=started, metrics={"step": 100, "total_steps": 400})
    assert job_times(running, now=NOW) == (600.0, pytest.approx(600 / 100 * 300))
    estimated = _job(trainer_started_at=started, estimated_finish_at=NOW + dt.timedelta(minutes=3))
    assert job_times(estimated, now=NOW) == (600.0, 180.0)
    finished = _job(status="succeeded", trainer_started_at=started, finished_at=NOW - dt.timedelta(minutes=1))
    assert job_times(finished, now=NOW) == (540.0, None)
    unknown = _job(metrics={"step": 100, "total_steps": 400})
    assert job_times(unknown, now=NOW) == (None, None)  # never counted from when the bot noticed the job
    fields = {f.name: f.value for f in job_embed(running, now=NOW).fields}
    assert fields["Elapsed"] == "10m 00s"
    assert fields["Remaining (estimate)"] == "30m 00s"
    assert "Elapsed" in {f.name for f in job_embed(unknown, now=NOW).fields}  # says it is unknown


def test_the_embed_shows_validation_loss_and_its_best_and_the_rewards() -> None:
    job = _job(
        method="preference",
        metrics={
            "loss": TRAIN,
            "valid": VALID,
            "reward_accuracies": [[40, 0.875]],
            "reward_margins": [[40, 0.4321]],
        },
    )
    fields = {f.name: f.value for f in job_embed(job, now=NOW).fields}
    assert fields["Training loss"] == f"{TRAIN[-1][1]:.4f} at step 40"
    assert fields["Validation loss"] == "1.3000 at step 40\nbest 0.9000 at step 20 ↑"
    assert fields["Reward accuracy"] == "88% at step 40"
    assert fields["Reward margin"] == "0.4321 at step 40"
    assert chart_points(job) == len(TRAIN) + len(VALID) + 2
    falling = _job(metrics={"valid": [[10, 1.2], [20, 0.9]]})
    assert {f.name: f.value for f in job_embed(falling, now=NOW).fields}["Validation loss"] == "0.9000 at step 20"
