"""Discord's deadlines: an initial response within 3 s of the interaction (else the member sees "interaction
failed"), follow-ups with its token for 15 minutes.

Commands and component handlers defer as soon as they start slow work; as a safety net, whatever has not answered
:data:`DEFER_AFTER` seconds after it started is deferred (ephemerally) for it.  Long work ends with
:func:`finish`: a follow-up while the token lives, else a direct message (or, with DMs closed, a mention in the
channel) — never an answer lost to an expired token.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

import hikari
import lightbulb

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DEFER_AFTER", "TOKEN_LIFETIME", "Deferrable", "auto_defer", "defer_unless_answered", "finish"]

_LOGGER = logging.getLogger(__name__)

#: Seconds after which an unanswered interaction is deferred for its handler.
DEFER_AFTER: Final = 2.0
#: Seconds an interaction token serves follow-ups and edits (Discord's 15 minutes).
TOKEN_LIFETIME: Final = 15 * 60.0
#: Later than this after the interaction, an answer does not rely on the token any more.
_TOKEN_MARGIN: Final = 60.0


def utcnow() -> dt.datetime:
    """The current time (one place, so tests can move it)."""
    return dt.datetime.now(dt.UTC)


def interaction_age(interaction: hikari.PartialInteraction) -> float:
    """Seconds since Discord created ``interaction`` (its id says when)."""
    return (utcnow() - interaction.created_at).total_seconds()


class Deferrable(Protocol):
    """A command, component or modal context."""

    @property
    def initial_response_sent(self) -> asyncio.Event: ...

    async def defer(self, *, ephemeral: bool = False) -> None: ...


async def defer_unless_answered(ctx: Deferrable, delay: float = DEFER_AFTER) -> None:
    """After ``delay`` seconds, defer ``ctx`` ephemerally unless it already answered."""
    await asyncio.sleep(delay)
    if not ctx.initial_response_sent.is_set():
        with contextlib.suppress(Exception):  # the handler may answer at the same moment: it wins
            await ctx.defer(ephemeral=True)


@lightbulb.hook(lightbulb.ExecutionSteps.MAX_CONCURRENCY, name="auto_defer")
def auto_defer(_: lightbulb.ExecutionPipeline, ctx: lightbulb.Context) -> None:
    """A client-wide hook: the command is deferred for it if it has not answered within :data:`DEFER_AFTER`."""
    deferring = ctx.client.safe_create_task(defer_unless_answered(ctx))
    running = asyncio.current_task()
    if running is not None:
        running.add_done_callback(lambda _: deferring.cancel())


async def finish(
    ctx: lightbulb.Context,
    content: str,
    *,
    attachments: Sequence[hikari.Resourceish] = (),
    embed: hikari.Embed | None = None,
) -> None:
    """The final, ephemeral answer of work that may outlast the interaction token (15 minutes): a follow-up while
    the token lives; else a direct message to the member, or with their DMs closed a mention in the channel."""
    extra: dict[str, Any] = {}
    if attachments:
        extra["attachments"] = list(attachments)
    if embed is not None:
        extra["embed"] = embed
    if interaction_age(ctx.interaction) < TOKEN_LIFETIME - _TOKEN_MARGIN:
        await ctx.respond(content, ephemeral=True, **extra)
        return
    rest = ctx.client.rest
    note = (
        f"Your `/{ctx.command_data.qualified_name}` took longer than Discord keeps a command open "
        "(15 minutes), so here is its answer.\n"
    )
    try:
        channel = await rest.create_dm_channel(ctx.user.id)
        await rest.create_message(channel, (note + content)[:2000], user_mentions=False, **extra)
    except hikari.ForbiddenError:  # the member does not take DMs from the bot
        _LOGGER.info("DMs closed: the late answer to /%s goes to the channel", ctx.command_data.qualified_name)
        await rest.create_message(
            ctx.channel_id, (f"<@{ctx.user.id}> " + note + content)[:2000], user_mentions=[ctx.user.id], **extra
        )
