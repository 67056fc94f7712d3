"""Buttons, selects and modal submits, answered by handlers registered once at start-up and keyed by the prefix
of the custom id (:mod:`hypotez.keys`).

Nothing a member can press or submit depends on the memory of the process that sent it: the id carries what the
handler needs, the database holds the rest, so another replica, or this bot after a restart, answers it the same
way.  Every handler declares the capability it needs; the router checks it before the handler runs, and the
handler checks that what the id names belongs to the caller.

Handlers take their dependencies by type (lightbulb's dependency injection, in the :data:`COMPONENT` context,
where the :class:`ComponentContext` or :class:`ModalContext` and the :class:`~hypotez.permissions.Caller` are
available)::

    @handler(loader, Key.RATE_UP, capability=Capability.FEEDBACK)
    async def rate_up(ctx: ComponentContext, caller: Caller, feedback: FeedbackRepository) -> None: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Final

import hikari
import lightbulb
import linkd
from lightbulb.components.base import MessageResponseMixinWithEdit
from lightbulb.context import RespondableInteractionT

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.keys import ExpiredFormError, Key, MalformedKeyError, ModalSigner, ParsedKey, parse_key
from hypotez.permissions import Caller
from hypotez.plugins._deadlines import defer_unless_answered
from hypotez.plugins._errors import describe_error

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence

__all__ = [
    "COMPONENT",
    "ComponentContainer",
    "ComponentContext",
    "ComponentRouter",
    "Handler",
    "ModalContext",
    "StaleComponentError",
    "button",
    "button_row",
    "handler",
    "open_modal",
    "text_input",
]

_LOGGER = logging.getLogger(__name__)

#: How long the HTTP request from Discord is held open waiting for the initial response (sent over REST).
_ANSWER_WITHIN: Final = 2.9


class ComponentContainer(linkd.Container):
    """The dependency container of one component or modal interaction."""

    __slots__ = ()


#: lightbulb-style DI context in which component and modal handlers run.
COMPONENT = linkd.global_context_registry.register("hypotez.di.contexts.component", ComponentContainer)


class StaleComponentError(InvalidInputError):
    """A button or modal whose custom id no handler knows (an old bot version made it, or it was forged)."""

    def __init__(self, custom_id: str) -> None:
        super().__init__("This button or form is not in use any more. Run the command again for a fresh one.")
        self.custom_id = custom_id


class _KeyedContext(MessageResponseMixinWithEdit[RespondableInteractionT]):
    """An interaction answered by the handler of its custom id's key."""

    __slots__ = ("_interaction", "_key", "_signer", "client")

    def __init__(
        self,
        client: lightbulb.Client,
        interaction: RespondableInteractionT,
        key: ParsedKey | None,
        sent: asyncio.Event,
        signer: ModalSigner,
    ) -> None:
        super().__init__(sent)
        self.client = client
        self._interaction: RespondableInteractionT = interaction
        self._key = key
        self._signer = signer

    @property
    def interaction(self) -> RespondableInteractionT:
        return self._interaction

    @property
    def key(self) -> ParsedKey:
        """The parsed custom id (handlers only run for ids that parse)."""
        assert self._key is not None
        return self._key


class ComponentContext(_KeyedContext[hikari.ComponentInteraction]):
    """A button press or select choice being answered (``respond(edit=True)`` updates the message it is on)."""

    __slots__ = ()

    @property
    def message(self) -> hikari.Message:
        """The message the component is on."""
        return self._interaction.message

    @property
    def values(self) -> Sequence[str]:
        """The chosen values of a select menu."""
        return self._interaction.values

    async def respond_with_modal(
        self, title: str, custom_id: str, components: Sequence[hikari.api.ComponentBuilder]
    ) -> None:
        """Open a modal (only as the first response), its id signed for the member who pressed."""
        async with self._response_lock:
            if self._initial_response_sent.is_set():
                raise RuntimeError("a modal can only be the first response to an interaction")
            signed = self._signer.sign(custom_id, user_id=int(self._interaction.user.id))
            await self._interaction.create_modal_response(title, signed, components=components)
            self._initial_response_sent.set()


class ModalContext(_KeyedContext[hikari.ModalInteraction]):
    """A modal submission being answered."""

    __slots__ = ()

    def value(self, custom_id: str) -> str:
        """The submitted text of the input ``custom_id`` (empty when the member left it empty or it is absent)."""
        for row in self._interaction.components:
            for component in row.components:
                if component.custom_id == custom_id:
                    return component.value or ""
        return ""


@dataclasses.dataclass(eq=False)
class Handler(lightbulb.Loadable):
    """Answers every component or modal whose custom id starts with ``key``, for members holding ``capability``."""

    key: Key
    capability: Capability
    callback: Callable[..., Coroutine[Any, Any, None]]
    #: How many arguments the custom id may carry after the prefix (anything else is refused as malformed).
    arity: tuple[int, ...] = (0,)
    #: The module the handler was written in (the callback is wrapped for dependency injection).
    module: str = ""

    async def load(self, client: lightbulb.Client) -> None:
        (await ComponentRouter.of(client)).add(self)

    async def unload(self, client: lightbulb.Client) -> None:
        (await ComponentRouter.of(client)).remove(self)


def handler(
    loader: lightbulb.Loader, key: Key, *, capability: Capability, arity: tuple[int, ...] = (0,)
) -> Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., Coroutine[Any, Any, None]]]:
    """Register the decorated function on ``loader`` as the handler of ``key`` (ids with ``arity`` arguments)."""

    def decorate(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
        loader.add(Handler(key, capability, lightbulb.di.with_di(func), arity, func.__module__))
        return func

    return decorate


class ComponentRouter:
    """Takes every component and modal interaction of the app and hands it to the handler of its key."""

    def __init__(self, client: lightbulb.Client, app: hikari.GatewayBot | hikari.RESTBot, signer: ModalSigner) -> None:
        self._client = client
        self.signer = signer
        self._handlers: dict[Key, Handler] = {}
        if isinstance(app, hikari.RESTBot):
            # lightbulb claims these listeners for its in-memory menus and modals; hypotez uses none of those.
            server = app.interaction_server
            server.set_listener(hikari.ComponentInteraction, None)
            server.set_listener(hikari.ModalInteraction, None)
            server.set_listener(hikari.ComponentInteraction, self._on_http)
            server.set_listener(hikari.ModalInteraction, self._on_http)
        else:
            app.event_manager.subscribe(hikari.InteractionCreateEvent, self._on_event)

    @staticmethod
    async def of(client: lightbulb.Client) -> ComponentRouter:
        """The router registered with ``client``'s dependency injection."""
        async with client.di.enter_context(lightbulb.di.Contexts.DEFAULT) as container:
            return await container.get(ComponentRouter)

    @property
    def handlers(self) -> dict[Key, Handler]:
        return dict(self._handlers)

    def add(self, entry: Handler) -> None:
        if entry.key in self._handlers:
            raise ValueError(f"two handlers for the custom id prefix {entry.key.value!r}")
        self._handlers[entry.key] = entry

    def remove(self, entry: Handler) -> None:
        if self._handlers.get(entry.key) is entry:
            del self._handlers[entry.key]

    # -- intake -------------------------------------------------------------------------------------------------

    async def _on_http(self, interaction: hikari.PartialInteraction) -> AsyncGenerator[None, None]:
        """Interaction-server listener: answer over REST, and end the HTTP request once that answer is out."""
        sent = asyncio.Event()
        task = self._client.safe_create_task(self.dispatch(interaction, sent))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ANSWER_WITHIN):
                await sent.wait()
        yield None
        await task

    async def _on_event(self, event: hikari.InteractionCreateEvent) -> None:
        interaction = event.interaction
        if not isinstance(interaction, hikari.ComponentInteraction | hikari.ModalInteraction):
            return
        if parse_key(interaction.custom_id) is None:
            return  # not one of ours (another library's component on a shared gateway connection)
        await self.dispatch(interaction, asyncio.Event())

    # -- dispatch -----------------------------------------------------------------------------------------------

    async def dispatch(self, interaction: hikari.PartialInteraction, sent: asyncio.Event) -> None:
        """Answer one component or modal interaction."""
        if not isinstance(interaction, hikari.ComponentInteraction | hikari.ModalInteraction):
            return
        parsed = parse_key(interaction.custom_id)
        unsigned: Exception | None = None
        if isinstance(interaction, hikari.ModalInteraction) and parsed is not None:
            # A form is answered only when it comes back from the member it was opened for, unexpired and unedited.
            try:
                parsed = parse_key(self.signer.verify(interaction.custom_id, user_id=int(interaction.user.id)))
            except ExpiredFormError as exc:
                unsigned = exc
        ctx: ComponentContext | ModalContext = (
            ComponentContext(self._client, interaction, parsed, sent, self.signer)
            if isinstance(interaction, hikari.ComponentInteraction)
            else ModalContext(self._client, interaction, parsed, sent, self.signer)
        )
        kind = "button" if isinstance(ctx, ComponentContext) else "modal"
        deferring = self._client.safe_create_task(defer_unless_answered(ctx))
        try:
            if unsigned is not None:
                raise unsigned
            entry = self._handlers.get(parsed.key) if parsed is not None else None
            if entry is None or parsed is None:
                raise StaleComponentError(interaction.custom_id)
            if len(parsed.args) not in entry.arity:
                raise MalformedKeyError(interaction.custom_id)
            await self._run(entry, ctx, interaction)
        except Exception as exc:
            deferring.cancel()
            await self._report(ctx, describe_error(exc, where=f"{kind} {interaction.custom_id[:100]}"))
        finally:
            deferring.cancel()

    async def _run(
        self, entry: Handler, ctx: ComponentContext | ModalContext, interaction: hikari.PartialInteraction
    ) -> None:
        async with (
            self._client.di.enter_context(lightbulb.di.Contexts.DEFAULT),
            self._client.di.enter_context(COMPONENT) as container,
        ):
            container.add_value(type(ctx), ctx)
            container.add_value(hikari.PartialInteraction, interaction)
            caller = await container.get(Caller)
            caller.require(entry.capability)
            await entry.callback()

    @staticmethod
    async def _report(ctx: ComponentContext | ModalContext, message: str) -> None:
        try:
            await ctx.respond(message, ephemeral=True)
        except Exception:  # the member's token may have expired, or Discord refused: nothing more to do
            _LOGGER.warning("could not tell the member about a failed %s", ctx.interaction.custom_id[:100])


def button_row(*buttons: hikari.api.InteractiveButtonBuilder) -> hikari.api.MessageActionRowBuilder:
    """One action row holding ``buttons`` (built with :func:`button`)."""
    row = hikari.impl.MessageActionRowBuilder()
    for item in buttons:
        row.add_component(item)
    return row


def button(
    custom_id: str,
    *,
    label: str | None = None,
    emoji: str | None = None,
    style: hikari.ButtonStyle = hikari.ButtonStyle.SECONDARY,
) -> hikari.api.InteractiveButtonBuilder:
    """An interactive button whose press reaches the handler of ``custom_id``'s key."""
    return hikari.impl.InteractiveButtonBuilder(
        style=style,
        custom_id=custom_id,
        label=label if label is not None else hikari.UNDEFINED,
        emoji=emoji if emoji is not None else hikari.UNDEFINED,
    )


def text_input(
    custom_id: str,
    label: str,
    *,
    value: str | None = None,
    placeholder: str | None = None,
    paragraph: bool = False,
    required: bool = True,
    min_length: int = 0,
    max_length: int = 4000,
) -> hikari.api.ModalActionRowBuilder:
    """A modal row holding one text input."""
    return hikari.impl.ModalActionRowBuilder().add_text_input(
        custom_id,
        label,
        style=hikari.TextInputStyle.PARAGRAPH if paragraph else hikari.TextInputStyle.SHORT,
        value=value if value is not None else hikari.UNDEFINED,
        placeholder=placeholder if placeholder is not None else hikari.UNDEFINED,
        required=required,
        min_length=min_length,
        max_length=max_length,
    )


async def open_modal(
    ctx: lightbulb.Context,
    signer: ModalSigner,
    title: str,
    custom_id: str,
    components: Sequence[hikari.api.ComponentBuilder],
) -> None:
    """Open a form from a command, its id signed for the member (see :class:`~hypotez.keys.ModalSigner`)."""
    await ctx.respond_with_modal(title, signer.sign(custom_id, user_id=int(ctx.user.id)), components=components)
