"""The assistant: which model answers in a channel, what it is sent, and the record of what it said."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypotez.errors import BackendError, BackendTimeoutError, NotFoundError
from hypotez.ml.conversation import build_messages, turns_from_replies
from hypotez.storage.models import BotReply, RegisteredModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.config import Settings
    from hypotez.ml.chat import ChatBackend, ChatMessage, ChatResult, TextCallback
    from hypotez.storage.repositories import (
        EffectiveSettings,
        GuildSettingsRepository,
        MessagePart,
        RegisteredModelRepository,
        ReplyRepository,
    )

__all__ = ["EMPTY", "FAILED", "OK", "Assistant", "ChatBackends", "PreparedChat", "outcome_of"]


class ChatBackends:
    """Chat backends by name; models registered in the database say which backend serves them."""

    def __init__(self, default: ChatBackend, *others: ChatBackend) -> None:
        self.default = default
        self._by_name: dict[str, ChatBackend] = {b.name: b for b in (default, *others)}
        self._model_cache: tuple[float, list[str]] | None = None
        self._model_refresh: asyncio.Task[list[str]] | None = None
        #: Longest one refresh of the model list may take, in seconds.
        self.refresh_timeout = 5.0

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
        :attr:`refresh_timeout` seconds) runs behind it.  With nothing cached yet this waits for that refresh,
        at most ``wait`` seconds when given (an autocomplete must answer within Discord's 3 s), and returns an
        empty list when it is not done by then.  A failed refresh is never cached: the next call tries again.
        Raises :class:`BackendError` only when waiting without a limit and the refresh failed.
        """
        now = time.monotonic()
        cached = self._model_cache
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        refresh = self._model_refresh
        if refresh is None or refresh.done():
            refresh = self._model_refresh = asyncio.create_task(self._refresh_models())
        if cached is not None:
            return cached[1]
        if wait is None:
            return await asyncio.shield(refresh)
        done, _ = await asyncio.wait({refresh}, timeout=wait)
        if not done or refresh.exception() is not None:
            return []
        return refresh.result()

    async def _refresh_models(self) -> list[str]:
        try:
            async with asyncio.timeout(self.refresh_timeout):
                models = await self.default.list_models()
        except TimeoutError:
            raise BackendTimeoutError(
                "The model service did not list its models in time.", backend=self.default.name
            ) from None
        self._model_cache = (time.monotonic(), models)
        return models

    async def close(self) -> None:
        if self._model_refresh is not None and not self._model_refresh.done():
            self._model_refresh.cancel()
        for backend in self._by_name.values():
            await backend.close()


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
    ) -> None:
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

    async def require_model(self, guild_id: int | None, model: str) -> None:
        """Refuse a model this server may not use: another server's trained model, or an unknown one."""
        if model == self._settings.chat_model or model in await self.model_choices(guild_id):
            return
        raise NotFoundError(
            "model", model, f"`{model}` is not a model this server can use. Pick one from the list (`/model list`)."
        )

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
    ) -> PreparedChat:
        """Pick the model and build the messages: system prompt, earlier turns within budget, the new one.

        ``here`` is the channel's settings when the caller already read them (saves a query).
        """
        effective = here if here is not None else await self._guild_settings.effective(guild_id, channel_id)
        if model is not None:
            await self.require_model(guild_id, model)
        chosen = model or effective.active_model or self._settings.chat_model
        history = turns_from_replies(await self._replies.thread(parent)) if parent is not None else []
        messages = build_messages(
            user_text,
            history=history,
            system_prompt=effective.system_prompt,
            budget=self._settings.chat_context_tokens,
        )
        return PreparedChat(
            backend=await self.backend_for(guild_id, chosen),
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
        prompt_messages=[dict(m) for m in prepared.messages],
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
