"""``/jobs`` (the original ``save_job_id``): the job tracker's list, status, events, checkpoints and cancel, and
the Refresh / Cancel buttons under every job's status message.

Refresh asks the trainer at most once every ``job_refresh_debounce_s`` seconds per job (recorded with the job, so
it holds across replicas); a press sooner answers from what is stored.  Cancel asks first: an ephemeral message
with Confirm / Keep, whose ids carry the job's number, checked again (capability and server) when pressed.
"""

from __future__ import annotations

import datetime as dt

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.keys import Key, build_key
from hypotez.ml.jobs import JobTracker
from hypotez.ml.trainers.base import JobState
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import allowed, bounded
from hypotez.plugins._checks import STAFF_IN_SERVERS, require
from hypotez.plugins._components import ComponentContext, button, button_row, handler
from hypotez.plugins._job_status import JobMessages, render
from hypotez.storage.models import TrainingJob
from hypotez.storage.repositories import AuditLog, RegisteredModelRepository

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


async def _job_here(jobs: JobTracker, caller: Caller, job_id: int) -> TrainingJob:
    """The job ``job_id`` if it belongs to the caller's server (another server's is answered as missing)."""
    try:
        job = await jobs.get(job_id)
    except NotFoundError:
        job = None
    if job is None or job.guild_id != caller.guild_id:
        raise NotFoundError("training job", job_id, f"There is no training job #{job_id} in this server.")
    return job


async def _own_job(jobs: JobTracker, caller: Caller, value: str) -> int:
    return (await _job_here(jobs, caller, _job_id(value))).id


def _utc(moment: dt.datetime) -> str:
    """A time written out in UTC, for files (Discord's ``<t:...>`` markup is for message text only)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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
            # A file is read as it is: plain UTC times, not Discord's markup.
            plain = "".join(f"{_utc(e.created_at)} [{e.level}] {e.message}\n" for e in events)
            first, last = events[0].created_at, events[-1].created_at
            await ctx.respond(
                f"Events of job #{job_id} ({len(events)}, <t:{int(first.timestamp())}:f> to "
                f"<t:{int(last.timestamp())}:T>; times in the file are UTC):",
                attachment=hikari.Bytes(plain.encode(), f"job-{job_id}-events.txt"),
                ephemeral=True,
            )


def _loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@jobs_group.register
class JobsCheckpoints(
    lightbulb.SlashCommand,
    name="checkpoints",
    description="A job's checkpoints; register one as a model",
    hooks=[require(Capability.TRAIN)],
):
    job = lightbulb.string("job", "Job number", autocomplete=job_autocomplete)
    register = lightbulb.integer(
        "register", "Make the checkpoint at this step a model of this server", default=None, min_value=0
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        jobs: JobTracker,
        audit: AuditLog,
        models: RegisteredModelRepository,
    ) -> None:
        job_id = await _own_job(jobs, caller, self.job)
        await ctx.defer(ephemeral=True)
        if self.register is not None:
            name = await jobs.register_checkpoint(job_id, self.register)
            await audit.record(
                "job.checkpoint.register",
                guild_id=caller.guild_id,
                actor_id=caller.user_id,
                target=f"job:{job_id}",
                details={"step": self.register, "model": name},
            )
            await ctx.respond(
                f"The checkpoint at step {self.register} of job #{job_id} is now the model `{name}`. "
                "Switch to it with `/model use`.",
                ephemeral=True,
            )
            return
        checkpoints = await jobs.checkpoints(job_id)
        job = await jobs.get(job_id)
        if not checkpoints:
            final = f" Its final model is `{job.result_model}`." if job.result_model else ""
            why = (
                "the local trainer keeps one at each evaluation of a validation split (`/train validation:`)"
                if job.trainer == "local"
                else "its trainer has reported none"
            )
            await ctx.respond(f"Job #{job_id} has no checkpoints: {why}.{final}", ephemeral=True)
            return
        registered = {m.name for m in await models.for_guild(caller.guild_id)}
        lines = [f"Checkpoints of job #{job_id} (★ the best by validation loss):"]
        for point in checkpoints:
            line = f"step **{point.step}** · train {_loss(point.train_loss)} · valid {_loss(point.valid_loss)}"
            if point.best:
                line += " ★ best"
            if point.model and point.model in registered:
                line += f" · registered as `{point.model}`"
            elif point.model:
                line += f" · `{point.model}`"
            lines.append(line)
        lines.append(f"Register one as a model with `/jobs checkpoints job:{job_id} register:<step>`.")
        await ctx.respond("\n".join(lines)[:2000], ephemeral=True)


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
async def refresh_job(
    ctx: ComponentContext, caller: Caller, jobs: JobTracker, messages: JobMessages, settings: Settings
) -> None:
    job = await _job_of_message(ctx, jobs, caller)
    await ctx.defer(ephemeral=True)
    if not await jobs.claim_refresh(job.id, within=settings.job_refresh_debounce_s):
        # Refreshed moments ago (by anyone, on any replica): nothing is asked of the trainer again.
        await ctx.respond(f"Job #{job.id}: {job.status} (just refreshed; this is the latest).", ephemeral=True)
        return
    update = await jobs.refresh(job.id)
    job = await jobs.get(job.id)
    if not (update.state_changed or update.new_events) and job.status_message_id is not None:
        await messages.edit(job)  # nothing new, but the times move on (the tracker edited it otherwise)
    await ctx.respond(f"Job #{job.id}: {job.status}.", ephemeral=True)


@handler(loader, Key.JOB_CANCEL, capability=Capability.TRAIN)
async def cancel_job_button(ctx: ComponentContext, caller: Caller, jobs: JobTracker) -> None:
    """Ask first: Confirm / Keep, on a message only the member who pressed sees."""
    job = await _job_of_message(ctx, jobs, caller)
    if JobState(job.status).finished:
        await ctx.respond(f"Training job #{job.id} has already {job.status}.", ephemeral=True)
        return
    row = button_row(
        button(build_key(Key.JOB_CANCEL_CONFIRM, job.id), label="Cancel the job", style=hikari.ButtonStyle.DANGER),
        button(build_key(Key.JOB_CANCEL_KEEP, job.id), label="Keep it running"),
    )
    await ctx.respond(
        f"Cancel training job #{job.id} ({job.status})? What it has trained so far is lost.",
        components=[row],
        ephemeral=True,
    )


@handler(loader, Key.JOB_CANCEL_CONFIRM, capability=Capability.TRAIN, arity=(1,))
async def confirm_cancel(ctx: ComponentContext, caller: Caller, jobs: JobTracker, audit: AuditLog) -> None:
    job = await _job_here(jobs, caller, ctx.key.int_arg())
    await ctx.defer(edit=True)
    if JobState(job.status).finished:
        await ctx.respond(f"Training job #{job.id} has already {job.status}.", components=[], edit=True)
        return
    job = await cancel_job(jobs, audit, caller, job.id)
    await ctx.respond(f"Cancelling training job #{job.id} ({job.status}).", components=[], edit=True)


@handler(loader, Key.JOB_CANCEL_KEEP, capability=Capability.TRAIN, arity=(1,))
async def keep_job(ctx: ComponentContext, caller: Caller, jobs: JobTracker) -> None:
    job = await _job_here(jobs, caller, ctx.key.int_arg())
    await ctx.respond(f"Training job #{job.id} keeps going ({job.status}).", components=[], edit=True)
