"""The live status message of a training job: an embed with a progress bar, the loss chart, and the Refresh /
Cancel buttons (handled in :mod:`hypotez.plugins.jobs`; the job is found from the message they are on).

Times come from the trainer's clock: elapsed since the trainer started the job, remaining from the trainer's
estimate or from the pace so far.  The chart (training loss, its smoothed curve, the validation loss, and the
rewards of preference training) is uploaded again only when points were added, at most every
``job_chart_interval_s`` seconds, and once more when the job ends; the edits between keep the uploaded file.
Which chart the message holds is stored with the job, so replicas sharing the database agree on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, cast

import hikari

from hypotez.keys import Key
from hypotez.ml.charts import loss_chart_png
from hypotez.ml.jobs import queue_position
from hypotez.ml.trainers.base import JobState
from hypotez.plugins._components import button, button_row
from hypotez.storage.models import utcnow
from hypotez.text import redact

if TYPE_CHECKING:
    from hypotez.ml.jobs import JobUpdate
    from hypotez.storage.models import TrainingJob
    from hypotez.storage.repositories import JobRepository

__all__ = [
    "JobMessages",
    "chart_name",
    "chart_points",
    "job_actions_row",
    "job_embed",
    "job_times",
    "progress_bar",
    "render",
]

_LOGGER = logging.getLogger(__name__)

_COLOURS = {
    JobState.SUCCEEDED: hikari.Color(0x57F287),
    JobState.FAILED: hikari.Color(0xED4245),
    JobState.CANCELLED: hikari.Color(0x99AAB5),
}


def progress_bar(step: int | None, total: int | None, width: int = 20) -> str:
    """``▰▰▰▰▱▱▱▱ 50% (150/300 steps)``; an empty bar when the total is not known yet."""
    if not total or step is None:
        return "▱" * width + " waiting to start"
    done = max(0, min(step, total))
    filled = round(width * done / total)
    return f"{'▰' * filled}{'▱' * (width - filled)} {done / total:.0%} ({done}/{total} steps)"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def _series(job: TrainingJob, name: str) -> list[list[float]]:
    """A series the tracker stores in the job's metrics: ``[[step, value], ...]`` (``loss`` is the training loss,
    ``valid`` the validation loss, ``reward_accuracies`` / ``reward_margins`` those of preference training)."""
    raw: Any = (job.metrics or {}).get(name) or []
    points: list[list[float]] = []
    for point in cast("list[Any]", raw if isinstance(raw, list) else []):
        if isinstance(point, list) and len(cast("list[Any]", point)) == 2:
            points.append([float(v) for v in cast("list[float]", point)])
    return points


_CHART_SERIES = ("loss", "valid", "reward_accuracies", "reward_margins")


def chart_points(job: TrainingJob) -> int:
    """How many points the job's chart has (what tells whether a new chart is worth uploading)."""
    return sum(len(_series(job, name)) for name in _CHART_SERIES)


def chart_name(job: TrainingJob) -> str:
    """The file name of the job's chart on its status message."""
    return f"loss-{job.id}.png"


def job_times(job: TrainingJob, *, now: dt.datetime) -> tuple[float | None, float | None]:
    """``(elapsed, remaining)`` in seconds, by the trainer's clock: elapsed since the trainer started the job,
    remaining from the trainer's own estimate, else ``elapsed / step × (total − step)``.  ``None`` where unknown
    (not started, or the trainer did not say when it started)."""
    started = job.trainer_started_at
    if started is None:
        return None, None
    state = JobState(job.status)
    end = job.finished_at if state.finished and job.finished_at is not None else now
    elapsed = max(0.0, (end - started).total_seconds())
    if state.finished:
        return elapsed, None
    if job.estimated_finish_at is not None:
        return elapsed, max(0.0, (job.estimated_finish_at - now).total_seconds())
    metrics = job.metrics or {}
    step, total = metrics.get("step"), metrics.get("total_steps")
    if isinstance(step, int) and isinstance(total, int) and 0 < step < total:
        return elapsed, elapsed / step * (total - step)
    return elapsed, None


def _at(point: list[float]) -> str:
    return f"{point[1]:.4f} at step {int(point[0])}"


def _add_metrics(embed: hikari.Embed, job: TrainingJob) -> None:
    loss = _series(job, "loss")
    if loss:
        embed.add_field("Training loss", _at(loss[-1]), inline=True)
    valid = _series(job, "valid")
    if valid:
        best = min(valid, key=lambda p: (p[1], p[0]))
        text = _at(valid[-1])
        if best is not valid[-1] and best[1] < valid[-1][1]:
            # Rising since its best: the run is overfitting (a checkpointing trainer keeps the best).
            text += f"\nbest {_at(best)} ↑"
        embed.add_field("Validation loss", text, inline=True)
    for name, label in (("reward_accuracies", "Reward accuracy"), ("reward_margins", "Reward margin")):
        points = _series(job, name)
        if points:
            value = f"{points[-1][1]:.0%}" if name == "reward_accuracies" else f"{points[-1][1]:.4f}"
            embed.add_field(label, f"{value} at step {int(points[-1][0])}", inline=True)


def job_embed(job: TrainingJob, *, now: dt.datetime | None = None) -> hikari.Embed:
    """The status of a job as members see it."""
    now = now or utcnow()
    state = JobState(job.status)
    metrics = job.metrics or {}
    step = metrics.get("step")
    total = metrics.get("total_steps")
    position = queue_position(job)
    waiting = f" · position {position} in the training queue" if position else ""
    embed = hikari.Embed(
        title=f"Training job #{job.id} · {job.trainer}",
        description=f"**{state.value}**{waiting}\n{progress_bar(step, total)}",
        color=_COLOURS.get(state, hikari.Color(0x5865F2)),
    )
    embed.add_field("Base model", f"`{job.base_model[:200]}`", inline=True)
    embed.add_field("Method", job.method, inline=True)
    elapsed, remaining = job_times(job, now=now)
    if elapsed is not None:
        embed.add_field("Elapsed", _duration(elapsed), inline=True)
    elif state is JobState.RUNNING:
        embed.add_field("Elapsed", "unknown (the trainer did not say when it started)", inline=True)
    if remaining is not None:
        label = "Remaining (trainer's estimate)" if job.estimated_finish_at is not None else "Remaining (estimate)"
        embed.add_field(label, _duration(remaining), inline=True)
    _add_metrics(embed, job)
    if job.result_model:
        embed.add_field("Model", f"`{job.result_model}` — switch with `/model use`", inline=False)
    if job.error:
        embed.add_field("Reason", redact(job.error, limit=1000), inline=False)
    embed.set_footer(f"requested by {job.requested_by} · external id {job.external_id or '—'}")
    return embed


def job_actions_row() -> hikari.api.MessageActionRowBuilder:
    return button_row(
        button(Key.JOB_REFRESH.value, emoji="🔄", label="Refresh"),
        button(Key.JOB_CANCEL.value, label="Cancel", style=hikari.ButtonStyle.DANGER),
    )


def _chart_png(job: TrainingJob) -> bytes:
    return loss_chart_png(
        _series(job, "loss"),
        title=f"job #{job.id} · {job.method}",
        valid=_series(job, "valid"),
        reward_accuracy=_series(job, "reward_accuracies"),
        reward_margin=_series(job, "reward_margins"),
    )


async def render(job: TrainingJob, *, chart: bool = True) -> tuple[hikari.Embed, hikari.Bytes | None]:
    """The embed, and (with ``chart``, when there are metrics) the chart, rendered in a worker thread and set as
    the embed's image."""
    embed = job_embed(job)
    if not chart or not chart_points(job):
        return embed, None
    png = await asyncio.to_thread(_chart_png, job)
    image = hikari.Bytes(png, chart_name(job))
    embed.set_image(image)
    return embed, image


class JobMessages:
    """Keeps each job's status message current and tells the requester when it ends."""

    def __init__(self, rest: hikari.api.RESTClient, jobs: JobRepository, *, chart_interval: float = 30.0) -> None:
        self.rest = rest
        self.jobs = jobs
        #: Seconds between two uploads of a job's chart (the final one excepted).
        self.chart_interval = chart_interval

    async def post(self, job: TrainingJob, channel_id: int) -> hikari.Message:
        embed, _ = await render(job, chart=False)
        return await self.rest.create_message(channel_id, embed=embed, components=[job_actions_row()])

    async def update(self, update: JobUpdate) -> None:
        job = update.job
        if job.status_channel_id is None or job.status_message_id is None:
            return
        await self.edit(job)
        if update.finished_now:
            await self.notify(job)

    async def edit(self, job: TrainingJob) -> None:
        """Edit the status message: a new chart when points were added and the last upload is older than
        ``chart_interval`` (or the job has ended), else the text alone, keeping the chart already there."""
        assert job.status_channel_id is not None
        assert job.status_message_id is not None
        finished = JobState(job.status).finished
        points = chart_points(job)
        had_chart = job.chart_points > 0
        upload = points > 0 and await self.jobs.claim_chart(
            job.id, points, interval=dt.timedelta(seconds=self.chart_interval), final=finished
        )
        embed, image = await render(job, chart=upload)
        if image is None and had_chart:
            # The file uploaded earlier stays on the message; the embed points at it again.
            embed.set_image(hikari.URL(f"attachment://{chart_name(job)}"))
        try:
            await self.rest.edit_message(
                job.status_channel_id,
                job.status_message_id,
                embed=embed,
                components=[] if finished else [job_actions_row()],
            )
        except Exception:
            if upload:
                await self.jobs.release_chart(job.id)  # the next update uploads it
            raise

    async def notify(self, job: TrainingJob) -> None:
        assert job.status_channel_id is not None
        state = JobState(job.status)
        if state is JobState.SUCCEEDED:
            text = (
                f"<@{job.requested_by}> training job #{job.id} succeeded: `{job.result_model}` is ready. "
                "Switch to it with `/model use`."
            )
        elif state is JobState.FAILED:
            # Public: a reason stored before redaction existed is redacted here too.
            reason = redact(job.error) if job.error else "no reason given"
            text = f"<@{job.requested_by}> training job #{job.id} failed: {reason}"
        else:
            text = f"<@{job.requested_by}> training job #{job.id} was cancelled."
        await self.rest.create_message(
            job.status_channel_id,
            text,
            user_mentions=[job.requested_by],
            reply=job.status_message_id or hikari.UNDEFINED,
        )
