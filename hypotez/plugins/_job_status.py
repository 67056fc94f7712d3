"""The live status message of a training job: an embed with a progress bar, the loss chart, and the Refresh /
Cancel buttons (handled in :mod:`hypotez.plugins.jobs`; the job is found from the message they are on)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

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

__all__ = ["JobMessages", "job_actions_row", "job_embed", "progress_bar", "render"]

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


def _loss(job: TrainingJob) -> list[list[float]]:
    """The loss series the tracker stores: ``[[step, loss], ...]``."""
    raw: list[list[float]] = (job.metrics or {}).get("loss") or []
    return raw


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
    started = metrics.get("started_at")
    begin = dt.datetime.fromisoformat(started) if isinstance(started, str) else job.created_at
    end = job.finished_at or now
    embed.add_field("Elapsed", _duration((end - begin).total_seconds()), inline=True)
    if not state.finished and isinstance(step, int) and isinstance(total, int) and 0 < step < total:
        remaining = (now - begin).total_seconds() / step * (total - step)
        embed.add_field("Remaining (estimate)", _duration(remaining), inline=True)
    loss = _loss(job)
    if loss:
        embed.add_field("Latest loss", f"{loss[-1][1]:.4f} at step {int(loss[-1][0])}", inline=True)
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


async def render(job: TrainingJob) -> tuple[hikari.Embed, hikari.Bytes | None]:
    """The embed, and the loss chart when there are metrics (rendered in a worker thread)."""
    embed = job_embed(job)
    loss = _loss(job)
    if not loss:
        return embed, None
    png = await asyncio.to_thread(loss_chart_png, loss, title=f"job #{job.id}")
    chart = hikari.Bytes(png, f"loss-{job.id}.png")
    embed.set_image(chart)
    return embed, chart


class JobMessages:
    """Keeps each job's status message current and tells the requester when it ends."""

    def __init__(self, rest: hikari.api.RESTClient) -> None:
        self.rest = rest

    async def post(self, job: TrainingJob, channel_id: int) -> hikari.Message:
        embed, _ = await render(job)
        return await self.rest.create_message(channel_id, embed=embed, components=[job_actions_row()])

    async def update(self, update: JobUpdate) -> None:
        job = update.job
        if job.status_channel_id is None or job.status_message_id is None:
            return
        await self.edit(job)
        if update.finished_now:
            await self.notify(job)

    async def edit(self, job: TrainingJob) -> None:
        assert job.status_channel_id is not None
        assert job.status_message_id is not None
        embed, _ = await render(job)
        finished = JobState(job.status).finished
        await self.rest.edit_message(
            job.status_channel_id,
            job.status_message_id,
            embed=embed,
            components=[] if finished else [job_actions_row()],
        )

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
