"""``/jobs`` (the original ``save_job_id``): the job tracker's list, status, events and cancel, and the
Refresh / Cancel buttons under every job's status message."""

from __future__ import annotations

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.keys import Key
from hypotez.ml.jobs import JobTracker
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import allowed, bounded
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.plugins._components import ComponentContext, handler
from hypotez.plugins._job_status import JobMessages, render
from hypotez.storage.models import TrainingJob
from hypotez.storage.repositories import AuditLog

loader = lightbulb.Loader()


@bounded
async def job_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    caller: Caller = lightbulb.di.INJECTED,
    jobs: JobTracker = lightbulb.di.INJECTED,
) -> None:
    """Recent jobs of this server, newest first: ``#12 succeeded · local · ft-name`` (for trainers only)."""
    if not allowed(caller, Capability.TRAIN):
        await ctx.respond([])
        return
    typed = str(ctx.focused.value or "").lstrip("#").strip()
    offered: list[hikari.impl.AutocompleteChoiceBuilder] = []
    for job in await jobs.list(caller.guild_id, limit=50):
        label = f"#{job.id} {job.status} · {job.trainer} · {job.base_model}"
        if typed and typed not in str(job.id) and typed.lower() not in label.lower():
            continue
        offered.append(hikari.impl.AutocompleteChoiceBuilder(name=label[:100], value=str(job.id)))
    await ctx.respond(offered[:25])


def _job_id(value: str) -> int:
    text = value.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidInputError(f"“{value[:50]}” is not a job number; pick one from the list.")
    return int(text)


async def _own_job(jobs: JobTracker, caller: Caller, value: str) -> int:
    job_id = _job_id(value)
    try:
        job = await jobs.get(job_id)
    except NotFoundError:
        job = None
    if job is None or job.guild_id != caller.guild_id:
        raise NotFoundError("training job", value, f"There is no training job #{job_id} in this server.")
    return job.id


async def cancel_job(jobs: JobTracker, audit: AuditLog, caller: Caller, job_id: int) -> TrainingJob:
    """Cancel one of the caller's server's jobs and audit it (``/jobs cancel`` and the Cancel button)."""
    job = await jobs.cancel(job_id)
    await audit.record("job.cancel", guild_id=caller.guild_id, actor_id=caller.user_id, target=f"job:{job_id}")
    return job


jobs_group = lightbulb.Group("jobs", "Training jobs", **STAFF_IN_SERVERS)


@jobs_group.register
class JobsList(
    lightbulb.SlashCommand, name="list", description="Recent training jobs", hooks=[require(Capability.TRAIN)]
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        rows = await jobs.list(caller.guild_id, limit=15)
        if not rows:
            await ctx.respond("No training jobs yet. Start one with `/train`.", ephemeral=True)
            return
        lines = [
            f"`#{j.id}` **{j.status}** · {j.trainer} · `{j.base_model[:60]}`"
            + (f" → `{j.result_model[:80]}`" if j.result_model else "")
            + f" · <t:{int(j.created_at.timestamp())}:R>"
            for j in rows
        ]
        await ctx.respond("\n".join(lines)[:2000], ephemeral=True)


@jobs_group.register
class JobsStatus(
    lightbulb.SlashCommand, name="status", description="A job's status", hooks=[require(Capability.TRAIN)]
):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        await ctx.defer(ephemeral=True)
        await jobs.refresh(job_id)
        embed, _ = await render(await jobs.get(job_id))
        await ctx.respond(embed=embed, ephemeral=True)


@jobs_group.register
class JobsEvents(
    lightbulb.SlashCommand, name="events", description="A job's events", hooks=[require(Capability.TRAIN)]
):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        events = await jobs.events(job_id)
        if not events:
            await ctx.respond(f"Job #{job_id} has no events yet.", ephemeral=True)
            return
        lines = [f"<t:{int(e.created_at.timestamp())}:T> [{e.level}] {e.message}" for e in events]
        text = "\n".join(lines)
        if len(text) <= 1900:
            await ctx.respond(f"Events of job #{job_id}:\n{text}", ephemeral=True)
        else:
            await ctx.respond(
                f"Events of job #{job_id} ({len(events)}):",
                attachment=hikari.Bytes(text.encode(), f"job-{job_id}-events.txt"),
                ephemeral=True,
            )


@jobs_group.register
class JobsCancel(lightbulb.SlashCommand, name="cancel", description="Cancel a job", hooks=[require(Capability.TRAIN)]):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, jobs: JobTracker, audit: AuditLog) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        await ctx.defer(ephemeral=True)
        job = await cancel_job(jobs, audit, caller, job_id)
        await ctx.respond(f"Cancelling training job #{job.id} ({job.status}).", ephemeral=True)


loader.command(jobs_group)


async def _job_of_message(ctx: ComponentContext, jobs: JobTracker, caller: Caller) -> TrainingJob:
    """The job whose status message the button is on, if it belongs to the caller's server."""
    job = await jobs.by_status_message(int(ctx.message.id))
    if job is None or job.guild_id != caller.guild_id:
        raise NotFoundError("training job", ctx.message.id, "This message is not a training job's status here.")
    return job


@handler(loader, Key.JOB_REFRESH, capability=Capability.TRAIN)
async def refresh_job(ctx: ComponentContext, caller: Caller, jobs: JobTracker, messages: JobMessages) -> None:
    job = await _job_of_message(ctx, jobs, caller)
    await ctx.defer(ephemeral=True)
    await jobs.refresh(job.id)
    job = await jobs.get(job.id)
    await messages.edit(job)
    await ctx.respond(f"Job #{job.id}: {job.status}.", ephemeral=True)


@handler(loader, Key.JOB_CANCEL, capability=Capability.TRAIN)
async def cancel_job_button(ctx: ComponentContext, caller: Caller, jobs: JobTracker, audit: AuditLog) -> None:
    job = await _job_of_message(ctx, jobs, caller)
    await ctx.defer(ephemeral=True)
    job = await cancel_job(jobs, audit, caller, job.id)
    await ctx.respond(f"Cancelling training job #{job.id} ({job.status}).", ephemeral=True)
