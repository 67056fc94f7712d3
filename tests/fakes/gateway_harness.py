"""The real assembled hypotez bot in gateway mode: a started `hikari.GatewayBot` connected to
`FakeDiscordGateway`, its REST calls going to `FakeDiscordREST`.

Typical use::

    async with running_gateway_bot(bot_settings) as hz:
        await hz.gateway.dispatch("MESSAGE_CREATE", message_create("hello"))

or, to wait for what the bot makes of an event::

    event = await hz.dispatch_and_wait("MESSAGE_CREATE", data, hikari.MessageCreateEvent)

The settings' token is replaced by `BOT_TOKEN` (hikari reads the application id out of a bot token).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

import hikari
from pydantic import SecretStr

from hypotez.app import assemble, build_bot
from tests.fakes.discord_gateway import FakeDiscordGateway
from tests.fakes.discord_rest import FakeDiscordREST

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from hypotez.app import Hypotez
    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI

__all__ = ["BOT_TOKEN", "RunningGatewayBot", "running_gateway_bot", "wait_for_event"]

#: A token of the shape Discord issues; its first part is the base64 of `tests.fakes.interactions.APP_ID`.
BOT_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxAbCd.0123456789abcdefghijklmnopqrstuvwxyzAB"

_E = TypeVar("_E", bound=hikari.Event)


@contextlib.asynccontextmanager
async def wait_for_event(
    bot: hikari.GatewayBot,
    event_type: type[_E],
    predicate: Callable[[_E], bool] | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> AsyncIterator[asyncio.Future[_E]]:
    """Listen for ``event_type`` (matching ``predicate``) from entering on; the yielded future gets the first one.

    Await the future inside the block (it raises TimeoutError after ``timeout`` seconds)::

        async with wait_for_event(bot, hikari.VoiceServerUpdateEvent) as server_update:
            await bot.update_voice_state(GUILD_ID, VOICE_CHANNEL_ID)
            event = await server_update
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_E] = loop.create_future()

    async def listener(event: _E) -> None:
        if not future.done() and (predicate is None or predicate(event)):
            future.set_result(event)

    bot.subscribe(event_type, listener)
    timer = loop.call_later(timeout, lambda: future.done() or future.set_exception(TimeoutError(event_type.__name__)))
    try:
        yield future
    finally:
        timer.cancel()
        bot.unsubscribe(event_type, listener)
        if not future.done():
            future.cancel()


@dataclasses.dataclass
class RunningGatewayBot:
    """A started, connected hypotez GatewayBot and the stand-ins it talks to."""

    bot: hikari.GatewayBot
    app: Hypotez
    gateway: FakeDiscordGateway
    discord: FakeDiscordREST
    settings: Settings
    openai: FakeOpenAI | None = None

    async def dispatch_and_wait(
        self,
        event: str,
        data: Mapping[str, Any],
        event_type: type[_E],
        predicate: Callable[[_E], bool] | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> _E:
        """Send DISPATCH ``event`` and return the first ``event_type`` (matching ``predicate``) the bot gets."""
        async with wait_for_event(self.bot, event_type, predicate, timeout=timeout) as future:
            await self.gateway.dispatch(event, data)
            return await future


@contextlib.asynccontextmanager
async def running_gateway_bot(
    settings: Settings,
    *,
    openai: FakeOpenAI | None = None,
    guilds: Sequence[Mapping[str, Any]] | None = None,
    voice_endpoint: str | None = None,
    heartbeat_interval: float = 10.0,
    token: str = BOT_TOKEN,
) -> AsyncIterator[RunningGatewayBot]:
    """Start the fakes, build and assemble hypotez (``build_bot`` + ``assemble(sync_commands=False)``), start the
    bot for real and wait until READY and every guild's GUILD_CREATE reached it; close it all on exit.

    ``guilds`` are GUILD_CREATE payloads (default: `guild_payload()`); ``voice_endpoint`` (``host:port``) makes
    the gateway answer the bot's voice state updates (see `FakeDiscordGateway`).  ``openai`` is only carried
    along for the test (``settings`` must already point to it, as the ``bot_settings`` fixture does).
    """
    settings = settings.model_copy(update={"discord_token": SecretStr(token)})
    async with (
        FakeDiscordGateway(
            token=token, guilds=guilds, heartbeat_interval=heartbeat_interval, voice_endpoint=voice_endpoint
        ) as gateway,
        FakeDiscordREST() as discord,
    ):
        discord.gateway_url = gateway.url
        bot = build_bot(settings, rest_url=discord.rest_url)
        if not isinstance(bot, hikari.GatewayBot):
            msg = f"build_bot made a {type(bot).__name__}, not a GatewayBot"
            raise TypeError(msg)
        app = await assemble(bot, settings, sync_commands=False)

        expected = {int(g["id"]) for g in gateway.guilds}
        arrived: set[int] = set()
        all_arrived = asyncio.Event()

        async def on_guild(event: hikari.GuildAvailableEvent) -> None:
            arrived.add(int(event.guild_id))
            if arrived >= expected:
                all_arrived.set()

        if not expected:
            all_arrived.set()
        bot.subscribe(hikari.GuildAvailableEvent, on_guild)
        try:
            async with wait_for_event(bot, hikari.ShardReadyEvent, timeout=30.0) as ready:
                await bot.start(check_for_updates=False)
                await ready
            async with asyncio.timeout(30.0):
                await all_arrived.wait()
        except BaseException:
            if bot.is_alive:
                await bot.close()
            await app.close()
            raise
        finally:
            bot.unsubscribe(hikari.GuildAvailableEvent, on_guild)
        try:
            yield RunningGatewayBot(
                bot=bot, app=app, gateway=gateway, discord=discord, settings=settings, openai=openai
            )
            discord.assert_deadlines_met()
        finally:
            if bot.is_alive:
                await bot.close()
            await app.close()
