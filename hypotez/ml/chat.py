"""Chat backends: one small async interface, implementations registered by name.

``ml/`` never imports hikari: the CLI and the tests use these directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

import openai

from hypotez.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimitError,
    BackendTimeoutError,
    NotFoundError,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from hypotez.config import Settings

__all__ = [
    "ChatBackend",
    "ChatMessage",
    "ChatResult",
    "OpenAICompatibleBackend",
    "TextCallback",
    "backend_error_from_openai",
]

_LOGGER = logging.getLogger(__name__)


class ChatMessage(TypedDict):
    """One turn, in the OpenAI chat format."""

    role: Literal["system", "user", "assistant"]
    content: str


#: Called during streaming with the whole text received so far.
TextCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished completion."""

    content: str
    model: str
    latency_ms: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class ChatBackend(Protocol):
    """What the bot needs from a language model service."""

    name: str

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        stream: bool = False,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        """Answer the conversation; with ``stream``, ``on_text`` sees the text as it grows."""
        ...

    async def list_models(self) -> list[str]:
        """Model ids this backend serves."""
        ...

    async def close(self) -> None: ...


def backend_error_from_openai(  # noqa: PLR0911 - one return per SDK error class
    exc: openai.OpenAIError, *, backend: str, model: str | None = None
) -> BackendError | NotFoundError:
    """Translate an SDK error into a plain-language hypotez error (never echoing keys or bodies: the service's
    own text, which may quote a request header, goes to the log only)."""
    _LOGGER.info("%s service error: %s", backend, exc)
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeoutError("The model service did not answer in time. Try again in a moment.", backend=backend)
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("The model service cannot be reached right now. Try again later.", backend=backend)
    if isinstance(exc, openai.RateLimitError):
        retry = _retry_after(exc.response.headers.get("retry-after"))
        wait = f" Try again in {retry:g} s." if retry else " Try again in a moment."
        return BackendRateLimitError(
            "The model service is rate limiting requests." + wait, backend=backend, retry_after=retry
        )
    if isinstance(exc, openai.AuthenticationError):
        return BackendAuthError(
            "The model service rejected the API key (HYPOTEZ_OPENAI_API_KEY).", backend=backend, status=401
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return BackendAuthError("The model service's API key is not allowed to do this.", backend=backend, status=403)
    if isinstance(exc, openai.NotFoundError):
        if model is not None:
            return NotFoundError("model", model, f"The model `{model}` is not available on the model service.")
        return BackendError("The model service does not offer this endpoint.", backend=backend, status=404)
    if isinstance(exc, openai.APIStatusError):
        return BackendError(
            f"The model service failed (HTTP {exc.status_code}). Try again later.",
            backend=backend,
            status=exc.status_code,
        )
    return BackendError("The model service returned something unexpected.", backend=backend)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


#: Seconds one listing of a server's models may take.
LIST_MODELS_TIMEOUT = 5.0


class OpenAICompatibleBackend:
    """Any server speaking OpenAI's chat completions API: OpenAI, Ollama, vLLM, LM Studio..."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        # Local servers accept any key; the SDK insists on one.
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleBackend:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            base_url=settings.openai_base_url,
            api_key=key,
            timeout=settings.chat_timeout,
            max_retries=settings.chat_max_retries,
        )

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        stream: bool = False,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        payload: list[ChatCompletionMessageParam] = [
            {"role": m["role"], "content": m["content"]}
            for m in messages  # type: ignore[misc]
        ]
        started = time.perf_counter()
        try:
            if not stream:
                response = await self.client.chat.completions.create(model=model, messages=payload)
                content = response.choices[0].message.content or "" if response.choices else ""
                usage = response.usage
                return ChatResult(
                    content=content,
                    model=response.model or model,
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    prompt_tokens=usage.prompt_tokens if usage else None,
                    completion_tokens=usage.completion_tokens if usage else None,
                )
            return await self._stream(payload, model, started, on_text)
        except openai.OpenAIError as exc:
            raise backend_error_from_openai(exc, backend=self.name, model=model) from exc

    async def _stream(
        self,
        payload: list[ChatCompletionMessageParam],
        model: str,
        started: float,
        on_text: TextCallback | None,
    ) -> ChatResult:
        parts: list[str] = []
        usage: Any = None
        served_model = model
        events = await self.client.chat.completions.create(
            model=model, messages=payload, stream=True, stream_options={"include_usage": True}
        )
        async with events:
            async for chunk in events:
                served_model = chunk.model or served_model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        if on_text is not None:
                            await on_text("".join(parts))
        return ChatResult(
            content="".join(parts),
            model=served_model,
            latency_ms=int((time.perf_counter() - started) * 1000),
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
        )

    async def list_models(self) -> list[str]:
        # Listing is cheap and cached by the caller: one try with its own limit, whatever the chat timeout.
        client = self.client.with_options(timeout=LIST_MODELS_TIMEOUT, max_retries=0)
        try:
            return sorted([m.id async for m in client.models.list()])
        except openai.OpenAIError as exc:
            raise backend_error_from_openai(exc, backend=self.name) from exc

    async def close(self) -> None:
        await self.client.close()
