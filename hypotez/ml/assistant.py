"""The assistant: which model answers in a channel, what it is sent, and the record of what it said."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypotez.errors import BackendError, BackendTimeoutError, InvalidInputError, NotFoundError
from hypotez.ml.chat import accepts_images, model_label
from hypotez.ml.conversation import build_messages, turns_from_replies
from hypotez.storage.models import BotReply, RegisteredModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.config import Settings
    from hypotez.ml.budgets import TokenBudgets
    from hypotez.ml.chat import ChatBackend, ChatMessage, ChatResult, TextCallback
    from hypotez.storage.repositories import (
        EffectiveSettings,
        GuildSettingsRepository,
        MessagePart,
        PreferenceRepository,
        RegisteredModelRepository,
        ReplyRepository,
    )

__all__ = ["EMPTY", "FAILED", "OK", "Assistant", "ChatBackends", "ModelListing", "PreparedChat", "outcome_of"]


class ChatBackends:
    """Chat backends by name; models registered in the database say which backend serves them."""

    def __init__(self, default: ChatBackend, *others: ChatBackend) -> None:
        self.default = default
        self._by_name: dict[str, ChatBackend] = {b.name: b for b in (default, *others)}
        self._model_cache: tuple[float, list[str]] | None = None
        self._model_refresh: asyncio.Task[list[str]] | None = None
        self._model_retry: asyncio.Task[None] | None = None
        #: Longest one refresh of the model list may take, in seconds.
        self.refresh_timeout = 5.0
        #: Seconds before a failed listing is tried again in the background (doubling up to a minute).
        self.retry_delay = 5.0

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def register(self, backend: ChatBackend) -> None:
        self._by_name[backend.name] = backend

    def get(self, name: str) -> ChatBackend:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFoundError("chat backend", name) from None

    async def backend_models(self, *, max_age: float = 60.0, wait: float | None = None) -> list[str]:
        """The default backend's models, from a cache refreshed in the background.

        A fresh list is served at once; a stale one is served while one refresh (at most
        :attr:`refresh_timeout` seconds) runs behind it.  With nothing cached yet — or only an empty list: a
        server that has loaded no model lists none, and loads one when first asked — this waits for that
        refresh, at most ``wait`` seconds when given (an autocomplete must answer within Discord's 3 s), and
        returns what it has when it is not done by then.  A failed refresh is never cached: it is retried in the
        background (see :meth:`listing`) and the next call tries again.
        Raises :class:`BackendError` only when waiting without a limit and the refresh failed.
        """
        now = time.monotonic()
        cached = self._model_cache
        if cached is not None and cached[1] and now - cached[0] < max_age:
            return cached[1]
        refresh = self._model_refresh
        if refresh is None or refresh.done():
            refresh = self._model_refresh = asyncio.create_task(self._refresh_models())
        if cached is not None and cached[1]:
            return cached[1]
        if wait is None:
            return await asyncio.shield(refresh)
        done, _ = await asyncio.wait({refresh}, timeout=wait)
        if not done or refresh.exception() is not None:
            return cached[1] if cached is not None else []
        return refresh.result()

    async def listing(self) -> ModelListing:
        """What ``/model list`` shows of the default backend: its models, or why it could not list them (the
        listing is retried in the background meanwhile)."""
        try:
            models = await self.backend_models()
        except BackendError as exc:
            return ModelListing([], exc)
        return ModelListing(models)

    async def _refresh_models(self) -> list[str]:
        try:
            models = await self._list_once()
        except BackendError:
            if self._model_retry is None or self._model_retry.done():
                self._model_retry = asyncio.create_task(self._retry_listing(), name="hypotez: list models")
            raise
        return models

    async def _list_once(self) -> list[str]:
        try:
            async with asyncio.timeout(self.refresh_timeout):
                models = await self.default.list_models()
        except TimeoutError:
            raise BackendTimeoutError(
                "The model service did not list its models in time.", backend=self.default.name
            ) from None
        self._model_cache = (time.monotonic(), models)
        return models

    async def _retry_listing(self) -> None:
        """After a failed listing: list again after :attr:`retry_delay` seconds, doubling up to a minute, until
        the service answers (so the next member asking finds the list)."""
        delay = self.retry_delay
        while True:
            await asyncio.sleep(delay)
            try:
                await self._list_once()
            except BackendError:
                delay = min(delay * 2, 60.0)
            else:
                return

    async def close(self) -> None:
        for task in (self._model_refresh, self._model_retry):
            if task is not None and not task.done():
                task.cancel()
        for backend in self._by_name.values():
            await backend.close()


@dataclass(frozen=True, slots=True)
class ModelListing:
    """The default backend's models, or (``error``) why it could not list them."""

    models: list[str]
    error: BackendError | None = None


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """Everything needed to ask the model, decided before asking."""

    backend: ChatBackend
    model: str
    messages: list[ChatMessage]
    user_text: str
    parent: BotReply | None = None
    guild_id: int | None = None
    channel_id: int = 0
    author_id: int = 0
    extra: dict[str, str] = field(default_factory=dict[str, str])


class Assistant:
    """Answers members with the model in force where they ask."""

    def __init__(
        self,
        settings: Settings,
        models: RegisteredModelRepository,
        backends: ChatBackends,
        guild_settings: GuildSettingsRepository,
        replies: ReplyRepository,
        *,
        budgets: TokenBudgets | None = None,
        preferences: PreferenceRepository | None = None,
    ) -> None:
        #: Daily token budgets checked before every request (none when ``None``).
        self.budgets = budgets
        #: Members' own default models (none when ``None``).
        self.preferences = preferences
        self._settings = settings
        self._models = models
        self.backends = backends
        self._guild_settings = guild_settings
        self._replies = replies

    async def active_model(self, guild_id: int | None, channel_id: int) -> str:
        """The channel's model, else the guild's, else the configured default."""
        effective = await self._guild_settings.effective(guild_id, channel_id)
        return effective.active_model or self._settings.chat_model

    async def registered_models(self, guild_id: int | None) -> list[RegisteredModel]:
        return await self._models.for_guild(guild_id)

    async def backend_for(self, guild_id: int | None, model: str) -> ChatBackend:
        """Local models (``local:...``) and registered ones go to their backend; the rest to the default."""
        if model.startswith("local:"):
            return self.backends.get("local")
        for registered in await self.registered_models(guild_id):
            if registered.name == model:
                return self.backends.get(registered.backend)
        return self.backends.default

    async def model_choices(self, guild_id: int | None, *, wait: float | None = None) -> list[str]:
        """Models a member of ``guild_id`` can pick: the server's trained models, the operator's local base
        models, then the backend's models (fine-tunes only when they are this server's).  ``wait`` bounds how
        long an uncached backend list is waited for (see :meth:`ChatBackends.backend_models`)."""
        trained = [m.name for m in await self.registered_models(guild_id)]
        local: list[str] = []
        if "local" in self.backends.names:
            local = await self.backends.get("local").list_models()
        try:
            served = await self.backends.backend_models(wait=wait)
        except BackendError:
            served = []
        served = [m for m in served if not m.startswith("ft:")]
        return list(dict.fromkeys([*trained, *local, *served]))

    def label(self, model: str) -> str:
        """The name members see for ``model`` (the operator's alias, a path's last part; never a path)."""
        return model_label(model, self._settings.model_aliases)

    async def model_names(self, guild_id: int | None, *, wait: float | None = None) -> list[str]:
        """:meth:`model_choices` as members see and give them (see :meth:`label`)."""
        return list(dict.fromkeys(self.label(m) for m in await self.model_choices(guild_id, wait=wait)))

    async def resolve_model(self, guild_id: int | None, name: str) -> str | None:
        """The model id a member means by ``name`` (an id, or the name :meth:`label` shows for one) among
        the configured default and what this server may use; ``None`` when it is none of them."""
        candidates = [self._settings.chat_model, *await self.model_choices(guild_id)]
        if name in candidates:
            return name
        return next((m for m in candidates if self.label(m) == name), None)

    async def require_model(self, guild_id: int | None, model: str) -> str:
        """The id of ``model`` (see :meth:`resolve_model`); refuses a model this server may not use: another
        server's trained model, or an unknown one."""
        resolved = await self.resolve_model(guild_id, model)
        if resolved is not None:
            return resolved
        raise NotFoundError(
            "model",
            model,
            f"`{self.label(model)}` is not a model this server can use. Pick one from the list (`/model list`).",
        )

    async def _preferred_model(self, guild_id: int | None, author_id: int) -> str | None:
        """The member's own default model, where it may be used (elsewhere the channel's model answers)."""
        if self.preferences is None:
            return None
        preferred = (await self.preferences.get(author_id)).chat_model
        if preferred is None:
            return None
        return await self.resolve_model(guild_id, preferred)

    async def prepare(
        self,
        user_text: str,
        *,
        guild_id: int | None,
        channel_id: int,
        author_id: int,
        parent: BotReply | None = None,
        model: str | None = None,
        here: EffectiveSettings | None = None,
        images: Sequence[str] = (),
    ) -> PreparedChat:
        """Pick the model and build the messages: system prompt, earlier turns within budget, the new one.

        ``here`` is the channel's settings when the caller already read them (saves a query).  ``images``
        (``data:`` URLs) go with the new turn to a model that takes images; any other model is refused with
        :class:`~hypotez.errors.InvalidInputError` before it is asked.
        """
        if self.budgets is not None:
            await self.budgets.check(guild_id, author_id)
        effective = here if here is not None else await self._guild_settings.effective(guild_id, channel_id)
        if model is not None:
            model = await self.require_model(guild_id, model)
        else:
            model = await self._preferred_model(guild_id, author_id)
        chosen = model or effective.active_model or self._settings.chat_model
        history = turns_from_replies(await self._replies.thread(parent)) if parent is not None else []
        messages = build_messages(
            user_text,
            history=history,
            system_prompt=effective.system_prompt,
            budget=self._settings.chat_context_tokens,
        )
        backend = await self.backend_for(guild_id, chosen)
        if images:
            if backend.name == "local" or not accepts_images(chosen, self._settings.vision_models):
                raise InvalidInputError(
                    f"`{self.label(chosen)}` does not take images. Send the text alone, or pick a model that "
                    "sees images with `model:` (one matching `HYPOTEZ_VISION_MODELS`, e.g. gpt-4o)."
                )
            messages[-1] = {**messages[-1], "images": list(images)}
        return PreparedChat(
            backend=backend,
            model=chosen,
            messages=messages,
            user_text=user_text,
            parent=parent,
            guild_id=guild_id,
            channel_id=channel_id,
            author_id=author_id,
        )

    async def answer(self, prepared: PreparedChat, *, on_text: TextCallback | None = None) -> ChatResult:
        """Ask the model; streams into ``on_text`` when given.  An empty answer is returned as it is (see
        :func:`outcome_of`): it is stored like any other, so members can write the answer it should have been."""
        return await prepared.backend.complete(
            prepared.messages, prepared.model, stream=on_text is not None, on_text=on_text
        )

    async def record(
        self,
        prepared: PreparedChat,
        result: ChatResult,
        parts: Sequence[MessagePart],
        *,
        interaction_id: int | None = None,
        delivery: str = "messages",
        private: bool = False,
    ) -> BotReply:
        """Store a delivered reply with the exact messages that produced it (an empty answer with the outcome
        ``empty``)."""
        reply = _reply_row(
            prepared,
            content=result.content,
            outcome=outcome_of(result),
            delivery=delivery,
            latency_ms=result.latency_ms,
            interaction_id=interaction_id,
            private=private,
        )
        reply.prompt_tokens, reply.completion_tokens = result.prompt_tokens, result.completion_tokens
        return await self._replies.add(reply, parts)

    async def record_failure(
        self,
        prepared: PreparedChat,
        parts: Sequence[MessagePart],
        *,
        latency_ms: int,
        interaction_id: int | None = None,
        private: bool = False,
    ) -> BotReply:
        """Store the reply the model could not give (the backend failed): no content, outcome ``failed``, the
        conversation that was sent, and the message telling the member, so they can write the answer."""
        reply = _reply_row(
            prepared, content="", outcome=FAILED, delivery="messages", latency_ms=latency_ms,
            interaction_id=interaction_id, private=private,
        )  # fmt: skip
        return await self._replies.add(reply, parts)


def _reply_row(
    prepared: PreparedChat,
    *,
    content: str,
    outcome: str,
    delivery: str,
    latency_ms: int,
    interaction_id: int | None,
    private: bool = False,
) -> BotReply:
    """The stored reply to ``prepared``: who asked, where, which model, the exact messages sent (``private``:
    only its author saw it)."""
    return BotReply(
        guild_id=prepared.guild_id,
        channel_id=prepared.channel_id,
        interaction_id=interaction_id,
        author_id=prepared.author_id,
        parent_id=prepared.parent.id if prepared.parent is not None else None,
        backend=prepared.backend.name,
        model=prepared.model,
        # Images went to the model for this answer only: the stored conversation is its text.
        prompt_messages=[{"role": m["role"], "content": m["content"]} for m in prepared.messages],
        user_text=prepared.user_text,
        content=content,
        delivery=delivery,
        outcome=outcome,
        latency_ms=latency_ms,
        private=private,
    )


#: :attr:`BotReply.outcome` of a reply the model gave, of an empty one, and of one the backend failed to give.
OK, EMPTY, FAILED = "ok", "empty", "failed"


def outcome_of(result: ChatResult) -> str:
    """``ok``, or ``empty`` when the model answered nothing but whitespace."""
    return OK if result.content.strip() else EMPTY
