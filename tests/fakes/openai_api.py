"""A local stand-in for OpenAI's HTTP API, for tests.

`FakeOpenAI` runs an aiohttp server on 127.0.0.1 (an ephemeral port) that answers the subset of
OpenAI's REST API the bot uses, with the documented wire formats, so that the real `openai` SDK
parses every answer into its own types:

* ``POST /v1/chat/completions`` (plain and ``stream: true`` server-sent events),
* ``GET /v1/models``, ``GET /v1/models/{id}``, ``DELETE /v1/models/{id}`` (fine-tuned models only),
* ``POST /v1/files`` (multipart), ``GET /v1/files``, ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``,
* ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``,
  ``POST /v1/fine_tuning/jobs/{id}/cancel``, ``GET /v1/fine_tuning/jobs/{id}/events``,
  ``GET /v1/fine_tuning/jobs/{id}/checkpoints``.

Anything else answers 404 with OpenAI's error body. Every error body has the documented shape
``{"error": {"message", "type", "param", "code"}}``.

Everything is deterministic: ids come from counters, token counts are whitespace-separated words.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import BodyPartReader, web

__all__ = ["FakeOpenAI", "RecordedRequest"]

JSONObject = dict[str, Any]
ReplyFunction = Callable[[list[dict[str, Any]], str], str]
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4.1-mini")

# Aliases that OpenAI resolves to a dated snapshot when a fine-tuning job is created.
MODEL_SNAPSHOTS: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}

FILE_PURPOSES: tuple[str, ...] = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
JOB_STEPS: tuple[str, ...] = ("validating_files", "queued", "running", "succeeded")
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
FINE_TUNING_METHODS: tuple[str, ...] = ("supervised", "dpo")

# Resolved values of "auto" hyperparameters once a job starts running.
_AUTO_N_EPOCHS = 3
_AUTO_LEARNING_RATE_MULTIPLIER = 1.8
_AUTO_BETA = 0.1
_MAX_STEPS_PER_EPOCH = 8  # an "auto" batch size keeps the number of metrics events small
_MAX_CHUNK_CHARS = 16
_KEPT_CHECKPOINTS = 3  # OpenAI keeps the checkpoints of the last three epochs
_MAX_SUFFIX_CHARS = 64

_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid request.", "invalid_request_error"),
    401: (
        "Incorrect API key provided: sk-test. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
    ),
    403: ("You are not allowed to perform this request.", "invalid_request_error"),
    404: ("The requested resource does not exist.", "invalid_request_error"),
    409: ("The request conflicts with the current state of the resource.", "invalid_request_error"),
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error"),
    502: ("Bad gateway.", "server_error"),
    503: ("The engine is currently overloaded, please try again later.", "server_error"),
}

_INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
_NO_API_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) "
    "if you're accessing the API from your browser and are prompted for a username and password. You can "
    "obtain an API key from https://platform.openai.com/account/api-keys."
)
FINE_TUNING_FORBIDDEN_MESSAGE = (
    "Your organization does not have access to fine-tuning. The self-serve fine-tuning platform is no "
    "longer available to new organizations; existing fine-tuned models can still be used for inference."
)

_PIECE_RE = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, in arrival order (failed and delayed ones included)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # the parsed JSON body, or None (no body, not JSON, or multipart)
    headers: dict[str, str]  # header names lower-cased
    form: dict[str, str] | None = None  # multipart text fields; a file part maps to its filename


@dataclass(slots=True)
class _Form:
    fields: dict[str, str]
    uploads: dict[str, tuple[str, bytes]]


@dataclass(slots=True)
class _Failure:
    status: int
    body: JSONObject | str  # a str is sent as plain text
    headers: dict[str, str]
    remaining: int
    path_contains: str


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int
    path_contains: str


@dataclass(slots=True)
class _JobExtra:
    """What the fake knows about a job beyond its public `fine_tuning.job` object."""

    fine_tuned_model: str
    n_examples: int
    words: int
    events: list[JSONObject] = field(default_factory=list[JSONObject])  # oldest first
    checkpoints: list[JSONObject] = field(default_factory=list[JSONObject])  # oldest first
    metrics: list[JSONObject] = field(default_factory=list[JSONObject])
    #: Steps not reported yet (only with `FakeOpenAI.steps_per_advance`): (step, metrics, checkpoint here).
    pending_steps: list[tuple[int, JSONObject, bool]] = field(default_factory=list[tuple[int, JSONObject, bool]])


class OpenAIError(Exception):
    """Raised inside a handler; rendered as OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSONObject = error_body(message, type=type, param=param, code=code)
        self.headers = dict(headers or {})


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONObject:
    """OpenAI's documented error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def count_tokens(text: str) -> int:
    """The fake's deterministic token count: whitespace-separated words."""
    return len(text.split())


def split_for_stream(text: str) -> list[str]:
    """Split text into small pieces (a word with its trailing space, long words cut) that join back to it."""
    pieces: list[str] = []
    for piece in _PIECE_RE.findall(text):
        pieces.extend(piece[i : i + _MAX_CHUNK_CHARS] for i in range(0, len(piece), _MAX_CHUNK_CHARS))
    return pieces


def _as_object(value: Any) -> JSONObject | None:
    """`value` as a JSON object, or None when it is something else."""
    return cast("JSONObject", value) if isinstance(value, dict) else None


def _content_text(content: Any) -> str:
    """Text of a message's `content`: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in cast("list[Any]", content):
            text: Any = (_as_object(part) or {}).get("text")
            if isinstance(text, str):
                texts.append(text)
        return " ".join(texts)
    return ""


def default_reply(messages: list[dict[str, Any]], model: str) -> str:
    """The default chat reply: ``echo: <content of the last user message>``."""
    del model
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"echo: {_content_text(message.get('content'))}"
    return "echo: "


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=_dumps(data), status=status, content_type="application/json", headers=headers)


def _page(items: list[JSONObject], after: str | None, limit: int) -> tuple[list[JSONObject], bool]:
    """Cursor pagination as OpenAI does it: items after the one with id `after`, at most `limit`."""
    start = 0
    if after is not None:
        for index, item in enumerate(items):
            if item.get("id") == after:
                start = index + 1
                break
    selected = items[start : start + limit]
    return selected, start + limit < len(items)


def _list_body(items: list[JSONObject], has_more: bool) -> JSONObject:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


_FORM_KEY = web.RequestKey("fake_openai_form", _Form)


class FakeOpenAI:
    """A local OpenAI API. ``await start()``, point the SDK at `base_url`, ``await close()``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.models: list[str] = list(DEFAULT_MODELS)
        self.jobs: dict[str, JSONObject] = {}
        self.files: dict[str, tuple[JSONObject, bytes]] = {}
        self.auto_advance: bool = True
        self.fine_tuning_forbidden: bool = False
        self.stream_chunk_delay: float = 0.0
        # Added knobs (all optional):
        self.api_key: str | None = None  # when set, any other bearer token gets 401 invalid_api_key
        self.organization_id: str = "org-fake"
        self.organization_name: str = "fake-org"  # the third part of "ft:<base>:<org>:<suffix>:<id>"
        self.min_training_examples: int = 10  # OpenAI rejects training files with fewer examples
        #: ``None``: a job reports every step as it starts running.  A number: it reports that many steps
        #: per advance while running (a long job watched as it goes) and succeeds after the last.
        self.steps_per_advance: int | None = None
        #: Seconds each chat completion waits before it is answered, and the most that waited together, by model
        #: (how a client's bounded concurrency is seen from the server).
        self.chat_reply_delay: float = 0.0
        self.max_chat_in_flight: dict[str, int] = {}
        self._chat_in_flight: dict[str, int] = {}

        self._reply: ReplyFunction = default_reply
        self._failures: list[_Failure] = []
        self._delays: list[_Delay] = []
        self._job_extra: dict[str, _JobExtra] = {}
        self._checkpoint_models: set[str] = set()
        self._model_owner: dict[str, str] = {}
        self._model_created: dict[str, int] = {}
        self._counter = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 with an ephemeral port."""
        if self._runner is not None:
            raise RuntimeError("FakeOpenAI is already started")
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._retrieve_model)
        app.router.add_delete("/v1/models/{model}", self._delete_model)
        app.router.add_post("/v1/files", self._upload_file)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{file_id}", self._retrieve_file)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_delete("/v1/files/{file_id}", self._delete_file)
        app.router.add_post("/v1/fine_tuning/jobs", self._create_job)
        app.router.add_get("/v1/fine_tuning/jobs", self._list_jobs)
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}", self._retrieve_job)
        app.router.add_post("/v1/fine_tuning/jobs/{job_id}/cancel", self._cancel_job)
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}/events", self._list_events)
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}/checkpoints", self._list_checkpoints)
        app.on_response_prepare.append(self._add_response_headers)

        self._closing.clear()
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving; wakes requests sleeping in `delay_next` or between stream chunks."""
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting

    def reply_with(self, reply: str | ReplyFunction) -> None:
        """Set the chat completion text: a constant, or a function of (messages, model)."""
        if isinstance(reply, str):
            text = reply

            def constant(messages: list[dict[str, Any]], model: str) -> str:
                del messages, model
                return text

            self._reply = constant
        else:
            self._reply = reply

    def fail_next(
        self,
        status: int,
        *,
        message: str = "",
        type: str = "",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path_contains: str = "",
        body: JSONObject | str | None = None,
    ) -> None:
        """Answer the next `times` requests whose path contains `path_contains` with an error.

        An empty `message`/`type` takes OpenAI's usual one for the status (e.g. 429 -> type
        "requests", 500 -> "server_error").  `body` replaces OpenAI's envelope with what other
        OpenAI-compatible servers answer: a JSON object such as FastAPI's ``{"detail": ...}``, or plain text.
        """
        default_message, default_type = _DEFAULT_ERRORS.get(status, ("Request failed.", "invalid_request_error"))
        if body is None:
            body = error_body(message or default_message, type=type or default_type, param=param, code=code)
        self._failures.append(_Failure(status, body, dict(headers or {}), times, path_contains))

    def delay_next(self, seconds: float, *, times: int = 1, path_contains: str = "") -> None:
        """Sleep `seconds` before answering the next `times` requests whose path contains `path_contains`."""
        self._delays.append(_Delay(seconds, times, path_contains))

    def add_file(self, content: bytes, *, filename: str = "train.jsonl", purpose: str = "fine-tune") -> JSONObject:
        """Store a file directly (no HTTP, no validation) and return its file object."""
        return self._store_file(filename, purpose, content)

    def events(self, job_id: str) -> list[JSONObject]:
        """A job's events, oldest first."""
        return list(self._job_extra[job_id].events)

    def checkpoints(self, job_id: str) -> list[JSONObject]:
        """A job's checkpoints, oldest first."""
        return list(self._job_extra[job_id].checkpoints)

    def advance_job(self, job_id: str, *, to: str | None = None, error: dict[str, Any] | None = None) -> None:
        """Move a job on: one step along validating_files -> queued -> running -> succeeded, or to `to`.

        `to` may be a later step of that chain (intermediate steps are walked with their events),
        "failed" (with `error` {code, message, param}) or "cancelled". Giving only `error` fails
        the job. Finished jobs do not move.
        """
        job = self.jobs[job_id]
        if job["status"] in TERMINAL_STATUSES:
            return
        if to is None and error is not None:
            to = "failed"
        if to is None:
            self._step(job_id)
        elif to == "failed":
            self._fail(job_id, error)
        elif to == "cancelled":
            self._cancel(job_id)
        elif to in JOB_STEPS:
            target = JOB_STEPS.index(to)
            while job["status"] in JOB_STEPS and JOB_STEPS.index(job["status"]) < target:
                self._step(job_id)
        else:
            raise ValueError(f"unknown fine-tuning job status: {to!r}")

    # ------------------------------------------------------------------ plumbing

    def _next_id(self, prefix: str, length: int = 24) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{prefix}{self._counter}".encode()).hexdigest()
        return f"{prefix}{digest[:length]}"

    @staticmethod
    async def _add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
        del request
        response.headers.setdefault(
            "x-request-id", "req_" + hashlib.sha256(str(id(response)).encode()).hexdigest()[:32]
        )
        response.headers.setdefault("openai-processing-ms", "1")
        response.headers.setdefault("openai-version", "2020-10-01")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the fake closes."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _record(self, request: web.Request) -> None:
        body: Any = None
        form: dict[str, str] | None = None
        if request.content_type.startswith("multipart/"):
            fields: dict[str, str] = {}
            uploads: dict[str, tuple[str, bytes]] = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                data = bytes(await part.read(decode=True))
                name = part.name or ""
                if part.filename is not None:
                    uploads[name] = (part.filename, data)
                else:
                    fields[name] = data.decode(part.get_charset(default="utf-8"))
            request[_FORM_KEY] = _Form(fields, uploads)
            form = {**fields, **{name: filename for name, (filename, _) in uploads.items()}}
        elif request.can_read_body:
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                json=body,
                headers={key.lower(): value for key, value in request.headers.items()},
                form=form,
            )
        )

    def _check_auth(self, request: web.Request) -> None:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[len("Bearer ") :].strip():
            raise OpenAIError(401, _NO_API_KEY_MESSAGE)
        key = authorization[len("Bearer ") :].strip()
        if self.api_key is not None and key != self.api_key:
            shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else key
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.path_contains in path:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _take_delay(self, path: str) -> float:
        for delay in self._delays:
            if delay.path_contains in path:
                delay.remaining -= 1
                if delay.remaining <= 0:
                    self._delays.remove(delay)
                return delay.seconds
        return 0.0

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            await self._record(request)
            await self._sleep(self._take_delay(request.path))
            failure = self._take_failure(request.path)
            if failure is not None:
                if isinstance(failure.body, str):
                    return web.Response(text=failure.body, status=failure.status, headers=failure.headers)
                return _json_response(failure.body, failure.status, failure.headers)
            self._check_auth(request)
            return await handler(request)
        except OpenAIError as exc:
            return _json_response(exc.body, exc.status, exc.headers)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                message = f"Invalid URL ({request.method} {request.path})"
                return _json_response(error_body(message), 404)
            if exc.status == 413:
                return _json_response(error_body("Request too large."), 413)
            raise

    @staticmethod
    async def _json_body(request: web.Request) -> JSONObject:
        raw = await request.read()
        try:
            body = _as_object(json.loads(raw))
        except ValueError:
            body = None
        if body is None:
            raise OpenAIError(400, _INVALID_JSON_MESSAGE)
        return body

    @staticmethod
    def _query_int(request: web.Request, name: str, default: int, maximum: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise OpenAIError(400, f"Invalid '{name}': expected an integer, but got '{raw}'.", param=name) from None
        if not 1 <= value <= maximum:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer above maximum value or below minimum value. "
                f"Expected a value between 1 and {maximum}, but got {value} instead.",
                param=name,
                code="integer_out_of_range" if value > maximum else "integer_below_min_value",
            )
        return value

    @staticmethod
    def _missing(name: str) -> OpenAIError:
        return OpenAIError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")

    # ------------------------------------------------------------------ models

    def _is_known_model(self, model: str) -> bool:
        return model in self.models or model in self._checkpoint_models

    def _model_object(self, model: str) -> JSONObject:
        return {
            "id": model,
            "object": "model",
            "created": self._model_created.get(model, 1_721_172_741),
            "owned_by": self._model_owner.get(model, "system"),
        }

    def _model_not_found(self, model: str) -> OpenAIError:
        return OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        del request
        return _json_response({"object": "list", "data": [self._model_object(m) for m in self.models]})

    async def _retrieve_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if not self._is_known_model(model):
            raise self._model_not_found(model)
        return _json_response(self._model_object(model))

    async def _delete_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if not self._is_known_model(model):
            raise self._model_not_found(model)
        if not model.startswith("ft:") or model in self._checkpoint_models:
            raise OpenAIError(403, "You have insufficient permissions for this operation.")
        self.models.remove(model)
        return _json_response({"id": model, "object": "model", "deleted": True})

    # ------------------------------------------------------------------ chat

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        model = body.get("model")
        messages: Any = body.get("messages")
        if not isinstance(model, str) or not model:
            raise self._missing("model")
        if not isinstance(messages, list) or not messages:
            raise self._missing("messages")
        if not self._is_known_model(model):
            raise self._model_not_found(model)
        typed_messages = [m for m in map(_as_object, cast("list[Any]", messages)) if m is not None]
        if self.chat_reply_delay > 0:
            self._chat_in_flight[model] = self._chat_in_flight.get(model, 0) + 1
            self.max_chat_in_flight[model] = max(self.max_chat_in_flight.get(model, 0), self._chat_in_flight[model])
            try:
                await self._sleep(self.chat_reply_delay)
            finally:
                self._chat_in_flight[model] -= 1
        content = self._reply(typed_messages, model)

        finish_reason = "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and count_tokens(content) > limit:
            kept: list[str] = []
            words = 0
            for piece in _PIECE_RE.findall(content):
                if not piece.isspace():
                    if words == limit:
                        break
                    words += 1
                kept.append(piece)
            content = "".join(kept).rstrip()
            finish_reason = "length"

        prompt_tokens = sum(count_tokens(_content_text(m.get("content"))) for m in typed_messages)
        completion_tokens = count_tokens(content)
        usage: JSONObject = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        completion_id = self._next_id("chatcmpl-", 29)
        created = int(time.time())
        if body.get("stream") is True:
            stream_options = _as_object(body.get("stream_options")) or {}
            include_usage = stream_options.get("include_usage") is True
            return await self._stream_chat(
                request,
                completion_id=completion_id,
                created=created,
                model=model,
                content=content,
                finish_reason=finish_reason,
                usage=usage if include_usage else None,
            )
        return _json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_fake0001",
            }
        )

    async def _stream_chat(
        self,
        request: web.Request,
        *,
        completion_id: str,
        created: int,
        model: str,
        content: str,
        finish_reason: str,
        usage: JSONObject | None,
    ) -> web.StreamResponse:
        def chunk(choices: list[JSONObject]) -> JSONObject:
            data: JSONObject = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake0001",
                "choices": choices,
            }
            if usage is not None:
                data["usage"] = None
            return data

        def choice(delta: JSONObject, finish: str | None = None) -> JSONObject:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        chunks = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
        chunks.extend(chunk([choice({"content": piece})]) for piece in split_for_stream(content))
        chunks.append(chunk([choice({}, finish_reason)]))
        if usage is not None:
            last = chunk([])
            last["usage"] = usage
            chunks.append(last)

        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        try:
            for index, data in enumerate(chunks):
                if index and self.stream_chunk_delay > 0:
                    await self._sleep(self.stream_chunk_delay)
                await response.write(f"data: {_dumps(data)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-stream
        return response

    # ------------------------------------------------------------------ files

    def _store_file(self, filename: str, purpose: str, content: bytes) -> JSONObject:
        file_id = self._next_id("file-", 22)
        file_object: JSONObject = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }
        self.files[file_id] = (file_object, content)
        return file_object

    @staticmethod
    def _validate_fine_tune_file(filename: str, content: bytes) -> None:
        if not filename.endswith(".jsonl"):
            raise OpenAIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise OpenAIError(
                400, "Invalid file format for Fine-Tuning API. The file must be UTF-8 encoded.", param="file"
            ) from None
        lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not lines:
            raise OpenAIError(400, "Invalid file format for Fine-Tuning API. The file is empty.", param="file")
        for number, line in lines:
            try:
                example: Any = json.loads(line)
            except ValueError as exc:
                raise OpenAIError(
                    400,
                    f"Invalid file format for Fine-Tuning API. Line {number} is not valid JSON: {exc}.",
                    param="file",
                ) from None
            if not isinstance(example, dict):
                raise OpenAIError(
                    400,
                    f"Invalid file format for Fine-Tuning API. Line {number} is not a JSON object.",
                    param="file",
                )

    def _get_file(self, file_id: str) -> tuple[JSONObject, bytes]:
        try:
            return self.files[file_id]
        except KeyError:
            raise OpenAIError(404, f"No such File object: {file_id}", param="id") from None

    async def _upload_file(self, request: web.Request) -> web.Response:
        form = request.get(_FORM_KEY)
        if form is None:
            raise OpenAIError(
                400,
                "Invalid Content-Type header (application/json), expected multipart/form-data.",
            )
        purpose = form.fields.get("purpose")
        if not purpose:
            raise self._missing("purpose")
        if "file" not in form.uploads:
            raise self._missing("file")
        if purpose not in FILE_PURPOSES:
            allowed = ", ".join(f"'{p}'" for p in FILE_PURPOSES)
            raise OpenAIError(
                400,
                f"Invalid value for 'purpose': '{purpose}'. Supported values are: {allowed}.",
                param="purpose",
                code="invalid_value",
            )
        filename, content = form.uploads["file"]
        if purpose == "fine-tune":
            self._validate_fine_tune_file(filename, content)
        return _json_response(self._store_file(filename, purpose, content))

    async def _list_files(self, request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        order = request.query.get("order", "desc")
        limit = self._query_int(request, "limit", 10_000, 10_000)
        items = [obj for obj, _ in self.files.values() if purpose is None or obj["purpose"] == purpose]
        if order == "desc":
            items.reverse()
        selected, has_more = _page(items, request.query.get("after"), limit)
        return _json_response(_list_body(selected, has_more))

    async def _retrieve_file(self, request: web.Request) -> web.Response:
        file_object, _ = self._get_file(request.match_info["file_id"])
        return _json_response(file_object)

    async def _file_content(self, request: web.Request) -> web.Response:
        file_object, content = self._get_file(request.match_info["file_id"])
        return web.Response(
            body=content,
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{file_object["filename"]}"'},
        )

    async def _delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self._get_file(file_id)
        del self.files[file_id]
        return _json_response({"id": file_id, "object": "file", "deleted": True})

    # ------------------------------------------------------------------ fine-tuning

    def _get_job(self, job_id: str) -> JSONObject:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise OpenAIError(404, f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id") from None

    def _add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        data: JSONObject | None = None,
        kind: str = "message",
    ) -> None:
        self._job_extra[job_id].events.append(
            {
                "object": "fine_tuning.job.event",
                "id": self._next_id("ftevent-"),
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data if data is not None else {},
                "type": kind,
            }
        )

    def _base_snapshot(self, model: str) -> str:
        if model.startswith("ft:"):
            parts = model.split(":")
            return parts[1] if len(parts) > 1 and parts[1] else model
        return MODEL_SNAPSHOTS.get(model, model)

    @staticmethod
    def _hyperparameter(
        hyperparameters: dict[str, Any], name: str, *, integer: bool, minimum: float, maximum: float
    ) -> int | float | str:
        value: Any = hyperparameters.get(name, "auto")
        if value == "auto":
            return "auto"
        valid_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not valid_type or not minimum <= value <= maximum:
            raise OpenAIError(
                400,
                f"Invalid value for '{name}': expected 'auto' or a number between {minimum:g} "
                f"and {maximum:g}, but got {value!r}.",
                param=f"hyperparameters.{name}",
                code="invalid_value",
            )
        return cast("int | float | str", value)

    def _parse_method(self, body: JSONObject) -> tuple[str, dict[str, Any]]:
        method_value: Any = body.get("method")
        legacy = _as_object(body.get("hyperparameters")) or {}
        if method_value is None:
            method_type = "supervised"
            raw = legacy
        else:
            method = _as_object(method_value)
            if method is None:
                raise OpenAIError(400, "Invalid type for 'method': expected an object.", param="method")
            method_type: Any = method.get("type")
            if method_type not in FINE_TUNING_METHODS:
                raise OpenAIError(
                    400,
                    f"Invalid value for 'method.type': {method_type!r}. Supported values are: "
                    + ", ".join(f"'{m}'" for m in FINE_TUNING_METHODS)
                    + ".",
                    param="method.type",
                    code="invalid_value",
                )
            section = _as_object(method.get(str(method_type))) or {}
            raw = _as_object(section.get("hyperparameters")) or legacy
        given: dict[str, Any] = dict(raw)
        hyperparameters: dict[str, Any] = {
            "batch_size": self._hyperparameter(given, "batch_size", integer=True, minimum=1, maximum=256),
            "learning_rate_multiplier": self._hyperparameter(
                given, "learning_rate_multiplier", integer=False, minimum=1e-6, maximum=100
            ),
            "n_epochs": self._hyperparameter(given, "n_epochs", integer=True, minimum=1, maximum=50),
        }
        if method_type == "dpo":
            hyperparameters["beta"] = self._hyperparameter(given, "beta", integer=False, minimum=1e-6, maximum=2)
        return str(method_type), hyperparameters

    def _check_training_file(self, file_id: Any, param: str) -> bytes:
        if not isinstance(file_id, str) or file_id not in self.files:
            raise OpenAIError(400, f"invalid {param}: {file_id}", param=param)
        file_object, content = self.files[file_id]
        if file_object["purpose"] != "fine-tune":
            raise OpenAIError(
                400,
                f"File {file_id} has purpose '{file_object['purpose']}', but {param} requires purpose 'fine-tune'.",
                param=param,
            )
        return content

    async def _create_job(self, request: web.Request) -> web.Response:
        if self.fine_tuning_forbidden:
            raise OpenAIError(403, FINE_TUNING_FORBIDDEN_MESSAGE, code="permission_denied")
        body = await self._json_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise self._missing("model")
        if "training_file" not in body:
            raise self._missing("training_file")
        if model not in self.models and model not in MODEL_SNAPSHOTS.values():
            raise OpenAIError(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        training = self._check_training_file(body["training_file"], "training_file")
        validation_file: Any = body.get("validation_file")
        if validation_file is not None:
            self._check_training_file(validation_file, "validation_file")
        suffix: Any = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > _MAX_SUFFIX_CHARS):
            raise OpenAIError(
                400,
                f"Invalid 'suffix': string too long. Expected a string with maximum length {_MAX_SUFFIX_CHARS}.",
                param="suffix",
                code="string_above_max_length",
            )
        method_type, hyperparameters = self._parse_method(body)
        seed: Any = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise OpenAIError(400, f"Invalid type for 'seed': expected an integer, but got {seed!r}.", param="seed")
        metadata: Any = body.get("metadata")

        job_id = self._next_id("ftjob-")
        if seed is None:
            seed = int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) % 2_147_483_647
        snapshot = self._base_snapshot(model)
        short = hashlib.sha256(f"model{job_id}".encode()).hexdigest()[:8]
        fine_tuned_model = f"ft:{snapshot}:{self.organization_name}:{suffix or ''}:{short}"
        lines = [line for line in training.decode("utf-8", errors="replace").splitlines() if line.strip()]
        top_level = {k: v for k, v in hyperparameters.items() if k != "beta"}
        job: JSONObject = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": model if model.startswith("ft:") else snapshot,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": self.organization_id,
            "result_files": [],
            "status": "validating_files",
            "validation_file": validation_file,
            "training_file": body["training_file"],
            "hyperparameters": top_level,
            "trained_tokens": None,
            "error": None,
            "user_provided_suffix": suffix,
            "seed": seed,
            "estimated_finish": None,
            "integrations": [],
            "metadata": metadata if isinstance(metadata, dict) else None,
            "method": {"type": method_type, method_type: {"hyperparameters": dict(hyperparameters)}},
        }
        self.jobs[job_id] = job
        self._job_extra[job_id] = _JobExtra(
            fine_tuned_model=fine_tuned_model,
            n_examples=len(lines),
            words=count_tokens(training.decode("utf-8", errors="replace")),
        )
        self._add_event(job_id, f"Created fine-tuning job: {job_id}")
        self._add_event(job_id, f"Validating training file: {body['training_file']}")
        if validation_file is not None:
            self._add_event(job_id, f"Validating validation file: {validation_file}")
        return _json_response(job)

    def _training_file_problem(self, job: JSONObject) -> str | None:
        extra = self._job_extra[job["id"]]
        _, content = self.files.get(job["training_file"], ({}, b""))
        method_type = job["method"]["type"]
        required = (
            ("messages",) if method_type == "supervised" else ("input", "preferred_output", "non_preferred_output")
        )
        for number, line in enumerate(
            (line for line in content.decode("utf-8", errors="replace").splitlines() if line.strip()), start=1
        ):
            try:
                example: Any = json.loads(line)
            except ValueError:
                return f"Line {number} is not valid JSON."
            if not isinstance(example, dict):
                return f"Line {number} is not a JSON object."
            for key in required:
                if key not in example:
                    return f"Example {number} is missing the required key `{key}`."
        if extra.n_examples < self.min_training_examples:
            return (
                f"Training file has {extra.n_examples} example(s), but must have at least "
                f"{self.min_training_examples} examples"
            )
        return None

    def _step(self, job_id: str) -> None:
        job = self.jobs[job_id]
        status = job["status"]
        if status == "validating_files":
            problem = self._training_file_problem(job)
            if problem is not None:
                self._fail(
                    job_id,
                    {
                        "code": "invalid_training_file",
                        "message": f"The job failed due to an invalid training file. {problem}",
                        "param": "training_file",
                    },
                )
                return
            job["status"] = "queued"
            self._add_event(job_id, "Files validated, moving job to queued state")
        elif status == "queued":
            self._start_running(job_id)
        elif status == "running":
            if self._job_extra[job_id].pending_steps:
                self._report_steps(job_id, self.steps_per_advance or len(self._job_extra[job_id].pending_steps))
            else:
                self._succeed(job_id)

    def _start_running(self, job_id: str) -> None:
        job = self.jobs[job_id]
        extra = self._job_extra[job_id]
        method_type: str = job["method"]["type"]
        hyperparameters: dict[str, Any] = job["method"][method_type]["hyperparameters"]
        if hyperparameters["n_epochs"] == "auto":
            hyperparameters["n_epochs"] = _AUTO_N_EPOCHS
        if hyperparameters["batch_size"] == "auto":
            hyperparameters["batch_size"] = max(1, math.ceil(extra.n_examples / _MAX_STEPS_PER_EPOCH))
        if hyperparameters["learning_rate_multiplier"] == "auto":
            hyperparameters["learning_rate_multiplier"] = _AUTO_LEARNING_RATE_MULTIPLIER
        if hyperparameters.get("beta") == "auto":
            hyperparameters["beta"] = _AUTO_BETA
        job["hyperparameters"] = {k: v for k, v in hyperparameters.items() if k != "beta"}
        job["status"] = "running"
        job["estimated_finish"] = int(time.time()) + 600
        self._add_event(job_id, "Fine-tuning job started")

        n_epochs = int(hyperparameters["n_epochs"])
        steps_per_epoch = max(1, math.ceil(extra.n_examples / int(hyperparameters["batch_size"])))
        total_steps = n_epochs * steps_per_epoch
        has_validation = job["validation_file"] is not None
        steps: list[tuple[int, JSONObject, bool]] = []
        for step in range(1, total_steps + 1):
            train_loss = round(2.0 * 0.85**step + 0.05, 4)
            accuracy = round(min(0.99, 0.45 + 0.04 * step), 4)
            data: JSONObject = {
                "step": step,
                "train_loss": train_loss,
                "total_steps": total_steps,
                "train_mean_token_accuracy": accuracy,
            }
            if has_validation:
                data["valid_loss"] = round(train_loss * 1.1, 4)
                data["valid_mean_token_accuracy"] = round(accuracy * 0.95, 4)
            epoch, remainder = divmod(step, steps_per_epoch)
            steps.append((step, data, remainder == 0 and epoch > n_epochs - _KEPT_CHECKPOINTS))
        extra.pending_steps = steps
        self._report_steps(job_id, len(steps) if self.steps_per_advance is None else self.steps_per_advance)

    def _report_steps(self, job_id: str, count: int) -> None:
        extra = self._job_extra[job_id]
        for step, data, checkpoint in extra.pending_steps[:count]:
            extra.metrics.append(data)
            self._add_event(
                job_id,
                f"Step {step}/{data['total_steps']}: training loss={data['train_loss']:.2f}",
                data=data,
                kind="metrics",
            )
            if checkpoint:
                self._add_checkpoint(job_id, step, data)
        del extra.pending_steps[:count]

    def _add_checkpoint(self, job_id: str, step: int, data: JSONObject) -> None:
        extra = self._job_extra[job_id]
        checkpoint_model = f"{extra.fine_tuned_model}:ckpt-step-{step}"
        metrics: JSONObject = {
            "step": float(step),
            "train_loss": data["train_loss"],
            "train_mean_token_accuracy": data["train_mean_token_accuracy"],
            "valid_loss": data.get("valid_loss"),
            "valid_mean_token_accuracy": data.get("valid_mean_token_accuracy"),
            "full_valid_loss": data.get("valid_loss"),
            "full_valid_mean_token_accuracy": data.get("valid_mean_token_accuracy"),
        }
        extra.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": self._next_id("ftckpt_"),
                "created_at": int(time.time()),
                "fine_tuned_model_checkpoint": checkpoint_model,
                "fine_tuning_job_id": job_id,
                "metrics": metrics,
                "step_number": step,
            }
        )
        self._checkpoint_models.add(checkpoint_model)
        self._add_event(job_id, f"Checkpoint created at step {step} with Snapshot ID: {checkpoint_model}")

    def _succeed(self, job_id: str) -> None:
        job = self.jobs[job_id]
        extra = self._job_extra[job_id]
        now = int(time.time())
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        rows.extend(
            f"{m['step']},{m['train_loss']},{m['train_mean_token_accuracy']},"
            f"{m.get('valid_loss', '')},{m.get('valid_mean_token_accuracy', '')}"
            for m in extra.metrics
        )
        # OpenAI serves the step metrics of a job's result file base64-encoded.
        result = self._store_file("step_metrics.csv", "fine-tune-results", base64.b64encode("\n".join(rows).encode()))
        job.update(
            status="succeeded",
            fine_tuned_model=extra.fine_tuned_model,
            finished_at=now,
            trained_tokens=extra.words * int(job["hyperparameters"]["n_epochs"]),
            result_files=[result["id"]],
            estimated_finish=None,
        )
        if extra.fine_tuned_model not in self.models:
            self.models.append(extra.fine_tuned_model)
        self._model_owner[extra.fine_tuned_model] = self.organization_id
        self._model_created[extra.fine_tuned_model] = now
        self._add_event(job_id, f"New fine-tuned model created: {extra.fine_tuned_model}")
        self._add_event(job_id, "Evaluating model against our usage policies")
        self._add_event(job_id, "Usage policy evaluations completed, model is now enabled for sampling")
        self._add_event(job_id, "The job has successfully completed")

    def _fail(self, job_id: str, error: dict[str, Any] | None) -> None:
        job = self.jobs[job_id]
        details: JSONObject = {
            "code": "internal_error",
            "message": "The job failed due to an internal error.",
            "param": None,
        }
        details.update(error or {})
        job.update(status="failed", error=details, finished_at=int(time.time()), estimated_finish=None)
        self._add_event(job_id, str(details["message"]), level="error")

    def _cancel(self, job_id: str) -> None:
        job = self.jobs[job_id]
        job.update(status="cancelled", estimated_finish=None)
        self._add_event(job_id, "Fine-tuning job cancelled")

    async def _list_jobs(self, request: web.Request) -> web.Response:
        limit = self._query_int(request, "limit", 20, 100)
        items = list(reversed(self.jobs.values()))  # newest first
        selected, has_more = _page(items, request.query.get("after"), limit)
        return _json_response({"object": "list", "data": selected, "has_more": has_more})

    async def _retrieve_job(self, request: web.Request) -> web.Response:
        job = self._get_job(request.match_info["job_id"])
        if self.auto_advance:
            self.advance_job(job["id"])
        return _json_response(job)

    async def _cancel_job(self, request: web.Request) -> web.Response:
        job = self._get_job(request.match_info["job_id"])
        if job["status"] in TERMINAL_STATUSES:
            raise OpenAIError(
                400,
                f"Job {job['id']} has already {job['status']} and cannot be cancelled.",
                param="fine_tuning_job_id",
            )
        self._cancel(job["id"])
        return _json_response(job)

    async def _list_events(self, request: web.Request) -> web.Response:
        job = self._get_job(request.match_info["job_id"])
        limit = self._query_int(request, "limit", 20, 10_000)
        items = list(reversed(self._job_extra[job["id"]].events))  # newest first
        selected, has_more = _page(items, request.query.get("after"), limit)
        return _json_response({"object": "list", "data": selected, "has_more": has_more})

    async def _list_checkpoints(self, request: web.Request) -> web.Response:
        job = self._get_job(request.match_info["job_id"])
        limit = self._query_int(request, "limit", 10, 100)
        items = list(reversed(self._job_extra[job["id"]].checkpoints))  # newest first
        selected, has_more = _page(items, request.query.get("after"), limit)
        return _json_response(_list_body(selected, has_more))
