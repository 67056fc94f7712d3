"""Gateway message listeners with dependency injection, the message in the container (so the per-message
:class:`~hypotez.permissions.Caller` resolves like a command's), loaded on gateway bots only."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["GatewayListener", "MessageListener", "gateway_listener", "message_listener"]

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class MessageListener(lightbulb.Loadable):
    """Calls ``callback`` for every message created, in lightbulb's LISTENER context with the
    :class:`hikari.Message` added; an HTTP-interactions bot receives no messages and loads nothing."""

    callback: Callable[..., Coroutine[Any, Any, None]]
    _client: lightbulb.Client | None = None

    async def load(self, client: lightbulb.Client) -> None:
        app = getattr(client, "app", None)
        if not isinstance(app, hikari.GatewayBot):
            _LOGGER.debug("not a gateway bot: %s is not loaded", getattr(self.callback, "__name__", self.callback))
            return
        self._client = client
        app.event_manager.subscribe(hikari.MessageCreateEvent, self._on_message)

    async def unload(self, client: lightbulb.Client) -> None:
        app = getattr(client, "app", None)
        if isinstance(app, hikari.GatewayBot) and self._client is client:
            app.event_manager.unsubscribe(hikari.MessageCreateEvent, self._on_message)
            self._client = None

    async def _on_message(self, event: hikari.MessageCreateEvent) -> None:
        client = self._client
        if client is None:
            return
        async with (
            client.di.enter_context(lightbulb.di.Contexts.DEFAULT),
            client.di.enter_context(lightbulb.di.Contexts.LISTENER) as container,
        ):
            container.add_value(hikari.Message, event.message)
            await self.callback()


def message_listener(
    loader: lightbulb.Loader,
) -> Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., Coroutine[Any, Any, None]]]:
    """Register the decorated function (dependencies by type, ``message: hikari.Message`` among them)."""

    def decorate(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
        loader.add(MessageListener(lightbulb.di.with_di(func)))
        return func

    return decorate


@dataclasses.dataclass(eq=False)
class GatewayListener(lightbulb.Loadable):
    """Calls ``callback(event)`` (dependencies injected, in lightbulb's LISTENER context) for every ``event_type``
    event, on gateway bots only (an HTTP-interactions bot receives no events, and lightbulb's own listeners would
    warn there)."""

    event_type: type[hikari.Event]
    callback: Callable[..., Coroutine[Any, Any, None]]
    _client: lightbulb.Client | None = None

    async def load(self, client: lightbulb.Client) -> None:
        app = getattr(client, "app", None)
        if isinstance(app, hikari.GatewayBot):
            self._client = client
            app.event_manager.subscribe(self.event_type, self._on_event)

    async def unload(self, client: lightbulb.Client) -> None:
        app = getattr(client, "app", None)
        if isinstance(app, hikari.GatewayBot) and self._client is client:
            app.event_manager.unsubscribe(self.event_type, self._on_event)
            self._client = None

    async def _on_event(self, event: hikari.Event) -> None:
        client = self._client
        if client is None:
            return
        async with (
            client.di.enter_context(lightbulb.di.Contexts.DEFAULT),
            client.di.enter_context(lightbulb.di.Contexts.LISTENER),
        ):
            await self.callback(event)


def gateway_listener(
    loader: lightbulb.Loader, event_type: type[hikari.Event]
) -> Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., Coroutine[Any, Any, None]]]:
    """Register the decorated ``async def f(event, <dependencies by type>)`` for ``event_type`` on gateway bots."""

    def decorate(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
        loader.add(GatewayListener(event_type, lightbulb.di.with_di(func)))
        return func

    return decorate
