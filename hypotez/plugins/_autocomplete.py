"""What autocomplete offers: only to members who may use the command there (autocomplete runs no command
hooks), within Discord's 3-second deadline, at most 25 choices of at most 100 characters."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.storage.files import DataDirectory
from hypotez.storage.repositories import DatasetRepository

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

__all__ = [
    "AUTOCOMPLETE_BUDGET",
    "AUTOCOMPLETE_DEADLINE",
    "allowed",
    "allowed_area",
    "area_autocomplete",
    "bounded",
    "choices",
    "dataset_names",
    "model_autocomplete",
]

_LOGGER = logging.getLogger(__name__)

#: Longest an autocomplete waits for the backend's model list when nothing is cached yet, in seconds.
AUTOCOMPLETE_BUDGET = 1.0
#: Longest any autocomplete takes, its dependencies (the caller's settings read) included: Discord drops an answer
#: after 3 s, and a member typing wants one far sooner.
AUTOCOMPLETE_DEADLINE = 1.5


def bounded(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """An autocomplete that answers within :data:`AUTOCOMPLETE_DEADLINE` seconds: no choices when ``func`` (with
    the resolution of its dependencies) is not done by then."""
    injected = lightbulb.di.with_di(func)

    async def provide(ctx: lightbulb.AutocompleteContext[str]) -> None:
        try:
            async with asyncio.timeout(AUTOCOMPLETE_DEADLINE):
                await injected(ctx)
        except TimeoutError:
            _LOGGER.warning(
                "autocomplete %s took over %.1f s: answered with no choices", func.__name__, AUTOCOMPLETE_DEADLINE
            )
            if not ctx.initial_response_sent.is_set():
                await ctx.respond([])

    provide.__name__ = func.__name__
    provide.__qualname__ = func.__qualname__
    provide.__doc__ = func.__doc__
    return provide


def allowed(caller: Caller, capability: Capability) -> bool:
    """Autocomplete shows names only to members who may use the command there (it runs no command hooks)."""
    return caller.guild_id is not None and caller.can(capability)


def allowed_area(caller: Caller, data_dir: DataDirectory, capability: Capability) -> DataDirectory | None:
    """The area of the server an autocomplete comes from, when the member may use the command there."""
    if not allowed(caller, capability):
        return None
    assert caller.guild_id is not None
    return data_dir.for_guild(caller.guild_id)


def matching(values: Sequence[str], typed: object) -> list[str]:
    """``values`` containing what was typed (case-insensitive)."""
    wanted = str(typed or "").strip().casefold()
    return [v for v in values if wanted in v.casefold()]


def choices(values: Sequence[str]) -> list[hikari.impl.AutocompleteChoiceBuilder]:
    """Up to 25 choices (values over Discord's 100 characters cannot be offered)."""
    return [hikari.impl.AutocompleteChoiceBuilder(name=v, value=v) for v in values if len(v) <= 100][:25]


@bounded
async def model_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    caller: Caller = lightbulb.di.INJECTED,
    assistant: Assistant = lightbulb.di.INJECTED,
) -> None:
    """Models offered for a ``model`` option: the caller's server's trained ones (to members who may chat
    there; none in DMs, nor any other server's), then the base models."""
    typed = str(ctx.focused.value or "").lower()
    guild_id = caller.guild_id if caller.can(Capability.CHAT) else None
    # Discord drops an answer after 3 s: the backend's list comes from a cache refreshed in the background.
    # Offered by the names members see (never a path on the operator's machine); commands resolve them back.
    names = await assistant.model_names(guild_id, wait=AUTOCOMPLETE_BUDGET)
    # Discord takes at most 25 choices, each name and value at most 100 characters.
    matches = [n for n in names if typed in n.lower() and len(n) <= 100][:25]
    await ctx.respond([hikari.impl.AutocompleteChoiceBuilder(name=n, value=n) for n in matches])


def area_autocomplete(
    capability: Capability, suggest: Callable[[DataDirectory, str], Awaitable[list[str]]]
) -> Callable[..., Coroutine[Any, Any, None]]:
    """An autocomplete offering ``suggest(area, typed)`` from the caller's server's area, to members holding
    ``capability`` (nothing to anyone else)."""

    @bounded
    async def autocomplete(
        ctx: lightbulb.AutocompleteContext[str],
        caller: Caller = lightbulb.di.INJECTED,
        data_dir: DataDirectory = lightbulb.di.INJECTED,
    ) -> None:
        area = allowed_area(caller, data_dir, capability)
        found = [] if area is None else await suggest(area, str(ctx.focused.value or ""))
        await ctx.respond(choices(found))

    return autocomplete


def dataset_names(capability: Capability) -> Callable[..., Coroutine[Any, Any, None]]:
    """An autocomplete offering the server's dataset names that contain what was typed, to members holding
    ``capability``."""

    @bounded
    async def autocomplete(
        ctx: lightbulb.AutocompleteContext[str],
        caller: Caller = lightbulb.di.INJECTED,
        datasets: DatasetRepository = lightbulb.di.INJECTED,
    ) -> None:
        if not allowed(caller, capability):
            await ctx.respond([])
            return
        assert caller.guild_id is not None
        typed = str(ctx.focused.value or "").strip().lower()
        names = [d.name for d in await datasets.latest(caller.guild_id)]
        await ctx.respond(choices([n for n in names if typed in n.lower()]))

    return autocomplete
