"""Discord's deadlines: an initial response within 3 s of the interaction (else the member sees "interaction
failed"), follow-ups with its token for 15 minutes.

Commands and component handlers defer as soon as they start slow work; as a safety net, whatever has not answered
:data:`DEFER_AFTER` seconds after it started is deferred (ephemerally) for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, Protocol

import lightbulb

__all__ = ["DEFER_AFTER", "Deferrable", "auto_defer", "defer_unless_answered"]

#: Seconds after which an unanswered interaction is deferred for its handler.
DEFER_AFTER: Final = 2.0


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
