"""Chat backends: one small async interface, implementations registered by name.

``ml/`` never imports hikari: the CLI and the tests use these directly.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Literal, NotRequired, Protocol, TypedDict, cast, runtime_checkable

import openai

from hypotez.config import VISION_MODELS
from hypotez.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimitError,
    BackendTimeoutError,
    NotFoundError,
)
from hypotez.text import redact

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from hypotez.config import Settings

__all__ = [
    "VISION_MODELS",
    "ChatBackend",
    "ChatMessage",
    "ChatResult",
    "OpenAICompatibleBackend",
    "TextCallback",
    "accepts_images",
    "backend_error_from_openai",
    "model_label",
    "service_reason",
]

_LOGGER = logging.getLogger(__name__)


class ChatMessage(TypedDict):
    """One turn, in the OpenAI chat format; a member's turn may carry images (``data:`` or ``https:`` URLs), sent
    to the model as image parts after the text.  Images are for the answer being asked only: they are never
    stored with the reply, nor sent again as history."""

    role: Literal["system", "user", "assistant"]
    content: str
    images: NotRequired[list[str]]


def accepts_images(model: str, patterns: Sequence[str] = VISION_MODELS) -> bool:
    """Whether ``model`` takes images, by its id (a fine-tune ``ft:<base>:...`` by its base model's)."""
    base = model.split(":", 2)[1] if model.startswith("ft:") and model.count(":") >= 1 else model
    name = base.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def _payload_message(message: ChatMessage) -> ChatCompletionMessageParam:
    images = message.get("images") or []
    if not images or message["role"] != "user":
        return cast("ChatCompletionMessageParam", {"role": message["role"], "content": message["content"]})
    parts: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}] if message["content"] else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return cast("ChatCompletionMessageParam", {"role": "user", "content": parts})


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


def model_label(model: str, aliases: Mapping[str, str] | None = None) -> str:
    """The name members see for ``model``: the operator's alias for it, else the id itself, except that an id
    which is a file path (a model directory a server loaded) is shown by its last part, never whole."""
    if aliases and model in aliases:
        return aliases[model]
    if _looks_like_path(model):
        windows = (len(model) > 1 and model[1] == ":") or "\\" in model
        path = PureWindowsPath(model) if windows else PurePosixPath(model)
        return path.name or model.strip("/\\") or model
    return model


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith(("/", "./", "../", "~", "\\"))
        or (len(model) > 2 and model[1] == ":" and model[2] in "/\\")
        or "\\" in model
    )


#: The most characters of a service's own explanation shown to members.
REASON_LIMIT = 300


def service_reason(exc: openai.APIStatusError, *, secrets: Sequence[str | None] = ()) -> str:
    """The service's own explanation of a failed request, whatever its shape — OpenAI's
    ``{"error": {"message": ...}}``, FastAPI's ``{"detail": ...}`` (a string or a list of problems), a
    ``{"message": ...}`` or ``{"error": "..."}``, or plain text — redacted and cut; empty when it gave none."""
    body: object = exc.body
    text: str | None = None
    if body is None:
        try:
            raw = exc.response.text
        except Exception:  # a streamed response whose body was never read
            raw = ""
        body = raw
    text = _reason_text(body)
    if not text:
        return ""
    return redact(" ".join(text.split()), secrets=secrets, limit=REASON_LIMIT)


def _reason_text(body: object) -> str:
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, list):
        parts = [_reason_text(item) for item in cast("list[object]", body)]
        return "; ".join(p for p in parts if p)
    if not isinstance(body, dict):
        return ""
    fields = {str(k): v for k, v in cast("dict[object, object]", body).items()}
    for key in ("error", "detail", "message", "msg"):
        inner = _reason_text(fields.get(key))
        if not inner:
            continue
        location = fields.get("loc")
        if key == "msg" and isinstance(location, list):
            where = ".".join(str(p) for p in cast("list[object]", location) if p != "body")
            return f"{where}: {inner}" if where else inner
        return inner
    return ""


def backend_error_from_openai(  # noqa: PLR0911 - one return per SDK error class
    exc: openai.OpenAIError,
    *,
    backend: str,
    model: str | None = None,
    label: Callable[[str], str] = model_label,
    secrets: Sequence[str | None] = (),
) -> BackendError | NotFoundError:
    """Translate an SDK error into a plain-language hypotez error with advice that fits it: the service's own
    explanation of a refused request (cut, anything like a credential redacted, the model named as members know
    it), never a key.  The full error goes to the log."""
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
    if not isinstance(exc, openai.APIStatusError):
        return BackendError("The model service returned something unexpected.", backend=backend)
    status = exc.status_code
    reason = service_reason(exc, secrets=secrets)
    name = label(model) if model is not None else None
    if model is not None and name != model:
        reason = reason.replace(model, name or model)
    said = f" It said: “{reason}”." if reason else ""
    if model is not None and (status == 404 or _names_unknown_model(exc, reason)):
        return NotFoundError(
            "model",
            model,
            f"The model `{name}` is not available on the model service (HTTP {status}).{said} Pick another with "
            "`/model use` (`/model list` shows the models it offers), or ask an administrator to load this one.",
        )
    if status == 404:
        return BackendError(
            f"The model service does not offer this endpoint (HTTP 404).{said} An administrator should check "
            "HYPOTEZ_OPENAI_BASE_URL (it usually ends in /v1).",
            backend=backend,
            status=404,
        )
    if status >= 500:
        return BackendError(
            f"The model service failed (HTTP {status}).{said} Try again later; if it keeps failing, tell an "
            "administrator.",
            backend=backend,
            status=status,
        )
    return BackendError(
        f"The model service refused the request (HTTP {status}).{said} Trying again will not help: an "
        "administrator needs to fix the bot's model settings.",
        backend=backend,
        status=status,
    )


def _names_unknown_model(exc: openai.APIStatusError, reason: str) -> bool:
    """Whether a refusal says the model does not exist (OpenAI's ``model_not_found`` code, or a message that
    says so, whatever the status the server chose)."""
    if getattr(exc, "code", None) == "model_not_found":
        return True
    lowered = reason.casefold()
    return "model" in lowered and any(
        words in lowered for words in ("not found", "does not exist", "not exist", "unknown model", "no such model")
    )


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
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        # Local servers accept any key; the SDK insists on one.
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )
        self._aliases = dict(aliases or {})
        self._secrets = [api_key]

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleBackend:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            base_url=settings.openai_base_url,
            api_key=key,
            timeout=settings.chat_timeout,
            max_retries=settings.chat_max_retries,
            aliases=settings.model_aliases,
        )

    def _error(self, exc: openai.OpenAIError, model: str | None = None) -> BackendError | NotFoundError:
        return backend_error_from_openai(
            exc,
            backend=self.name,
            model=model,
            label=lambda m: model_label(m, self._aliases),
            secrets=self._secrets,
        )

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        stream: bool = False,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        payload = [_payload_message(m) for m in messages]
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
            raise self._error(exc, model) from exc

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
            raise self._error(exc) from exc

    async def close(self) -> None:
        await self.client.close()
