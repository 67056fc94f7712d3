"""Start a real hikari.RESTBot against `FakeDiscordREST` and talk to it with signed interactions.

Typical use::

    async with offline_bot(setup) as harness:
        result = await harness.client.send(slash("ping"))

where ``setup(bot)`` builds the lightbulb client (and miru, via `install_miru`) on the bot before it starts.
Or piece by piece: `make_rest_bot`, `start_rest_bot`, `InteractionClient`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import socket
from typing import TYPE_CHECKING

import hikari
import miru
from nacl.signing import SigningKey

from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import InteractionClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["OfflineBot", "install_miru", "make_rest_bot", "offline_bot", "public_key_hex", "start_rest_bot"]


def public_key_hex(signing_key: SigningKey) -> str:
    """The hex public key that ``RESTBot(public_key=...)`` takes for ``signing_key``."""
    return bytes(signing_key.verify_key).hex()


def make_rest_bot(
    rest: FakeDiscordREST, verify_key_hex: str, token: str = "test-token", *, max_retries: int = 3
) -> hikari.RESTBot:
    """A RESTBot whose REST calls all go to ``rest`` and that verifies interactions with ``verify_key_hex``.

    Giving the public key also spares the application fetch at start-up. ``logs=None`` leaves the logging
    configuration to pytest.
    """
    rest.verify_key_hex = verify_key_hex
    return hikari.RESTBot(
        token,
        "Bot",
        public_key=verify_key_hex,
        rest_url=rest.rest_url,
        banner=None,
        suppress_optimization_warning=True,
        logs=None,
        max_retries=max_retries,
    )


async def start_rest_bot(bot: hikari.RESTBot) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Start ``bot`` on a pre-bound 127.0.0.1 socket (port 0, no port races); return its URL and a closer.

    The closer stops the bot (running its shutdown callbacks) and releases the socket.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        # aiohttp >= 3.10 warns (DeprecationWarning, an error under filterwarnings=error) when a site gets a
        # shutdown_timeout other than 60: hikari passes its argument to the site, so leave the default.
        await bot.start(socket=sock, check_for_updates=False)
    except BaseException:
        sock.close()
        if bot.is_alive:  # startup callbacks ran, the server did not start: release the REST session
            with contextlib.suppress(hikari.ComponentStateConflictError):
                await bot.rest.close()
        raise

    async def close() -> None:
        try:
            if bot.is_alive:
                await bot.close()
        finally:
            sock.close()

    return f"http://127.0.0.1:{port}", close


def install_miru(bot: hikari.RESTBot, *, ignore_unknown_interactions: bool = False) -> miru.Client:
    """A miru client on ``bot`` after lightbulb's client was made.

    lightbulb's REST client claims the component and modal listeners of the interaction server; miru then
    raises ``TypeError: Listener already set``. Unset those two first, so lightbulb keeps commands and
    autocomplete and miru gets components and modals.
    """
    bot.interaction_server.set_listener(hikari.ComponentInteraction, None)
    bot.interaction_server.set_listener(hikari.ModalInteraction, None)
    return miru.Client(bot, ignore_unknown_interactions=ignore_unknown_interactions)


@dataclasses.dataclass
class OfflineBot:
    """A started bot with its REST fake and a client that delivers signed interactions to it."""

    bot: hikari.RESTBot
    rest: FakeDiscordREST
    client: InteractionClient
    signing_key: SigningKey
    url: str


@contextlib.asynccontextmanager
async def offline_bot(
    setup: Callable[[hikari.RESTBot], Awaitable[None] | None] | None = None,
    *,
    rest: FakeDiscordREST | None = None,
) -> AsyncIterator[OfflineBot]:
    """Fake REST up, bot made and configured by ``setup(bot)``, bot started; everything closed on exit.

    ``setup`` runs before ``bot.start``: build the lightbulb client there and register its ``start`` as a
    startup callback (``bot.add_startup_callback(client.start)``), and ``client.stop`` as a shutdown one.

    Without ``rest`` a fresh fake is started and closed here. A ``rest`` you pass must already be started and
    is left running (and keeps its calls and messages), e.g. to restart a bot against the same "Discord".
    """
    fake = rest or FakeDiscordREST()
    own_fake = rest is None
    if own_fake:
        await fake.start()
    try:
        key = SigningKey.generate()
        bot = make_rest_bot(fake, public_key_hex(key))
        if setup is not None:
            outcome = setup(bot)
            if inspect.isawaitable(outcome):
                await outcome
        url, close_bot = await start_rest_bot(bot)
        try:
            async with InteractionClient(url, key, fake) as client:
                yield OfflineBot(bot=bot, rest=fake, client=client, signing_key=key, url=url)
            fake.assert_deadlines_met()  # a test passes only if Discord would have taken every answer
        finally:
            await close_bot()
    finally:
        if own_fake:
            await fake.close()
