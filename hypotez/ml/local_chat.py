"""The ``local`` chat backend: models trained by the ``local`` trainer (or any local Hugging Face model),
served in this process with transformers.

A model is loaded once and kept in a small least-recently-used cache; generation runs in a worker thread,
one at a time per model, so the event loop never waits on the model.  Decoding is greedy: the same
question gets the same answer, which is what comparing a trained model with its base needs.

Model ids: ``local:<job_key>`` (found by the ``resolve`` callable, e.g. :func:`hypotez.ml.trainers.local.model_path`)
and plain paths to model directories (a full model, or a LoRA adapter whose base is named in its
``adapter_config.json``).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib
import importlib.util
import json
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hypotez.errors import BackendError, ConfigError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from hypotez.ml.chat import ChatMessage, ChatResult, TextCallback

__all__ = ["REQUIRED_MODULES", "LocalChatBackend"]

#: What serving needs from the ``local`` extra.
REQUIRED_MODULES = ("torch", "transformers", "peft")
_EXTRA_HINT = "Local models need the `local` extra: pip install 'hypotez[local]'."
_PREFIX = "local:"
_PEFT_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"


@dataclass(slots=True)
class _Loaded:
    """A model ready to answer; ``lock`` serialises generation (a model is not safe to share across threads)."""

    model: Any
    tokenizer: Any
    device: str
    max_positions: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _TextStream:
    """A transformers streamer that hands the whole decoded text so far to the event loop after each token."""

    def __init__(self, tokenizer: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        self.tokenizer = tokenizer
        self.loop = loop
        self.queue = queue
        self.tokens: list[int] = []
        self.prompt_seen = False
        self.sent = ""

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt first
            self.prompt_seen = True
            return
        self.tokens.extend(int(t) for t in value.reshape(-1).tolist())
        text = str(self.tokenizer.decode(self.tokens, skip_special_tokens=True)).rstrip("\ufffd")
        if text != self.sent:
            self.sent = text
            self.loop.call_soon_threadsafe(self.queue.put_nowait, text)

    def end(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


class LocalChatBackend:
    """Serves local models with transformers.

    ``resolve`` maps a ``local:<job_key>`` id to its directory (raising
    :class:`~hypotez.errors.NotFoundError` when there is none); ``available`` lists the ids to offer.
    With ``allow_paths``, a path to a model directory is a model id too.
    """

    name = "local"

    def __init__(
        self,
        resolve: Callable[[str], Path] | None = None,
        *,
        available: Callable[[], Iterable[str]] | None = None,
        allow_paths: bool = True,
        cache_size: int = 2,
        max_new_tokens: int = 256,
    ) -> None:
        self.resolve = resolve
        self.available = available
        self.allow_paths = allow_paths
        self.cache_size = max(1, cache_size)
        self.max_new_tokens = max_new_tokens
        self._cache: OrderedDict[Path, _Loaded] = OrderedDict()
        self._load_lock = asyncio.Lock()

    @classmethod
    def for_work_dir(cls, work_dir: Path, **options: Any) -> LocalChatBackend:
        """A backend for the models trained by :class:`~hypotez.ml.trainers.local.LocalTrainer` in ``work_dir``."""
        from hypotez.ml.trainers.local import local_models, model_path

        return cls(
            functools.partial(model_path, work_dir), available=functools.partial(local_models, work_dir), **options
        )

    # ------------------------------------------------------------------------------------------ models

    def _model_dir(self, model: str) -> Path:
        if not model.startswith(_PREFIX) and self.allow_paths:
            path = Path(model).expanduser()
            if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
                return path.resolve()
        if self.resolve is not None:
            return self.resolve(model)
        raise NotFoundError("model", model, f"The model `{model}` is not available on the local backend.")

    async def _get(self, model: str) -> _Loaded:
        path = await asyncio.to_thread(self._model_dir, model)
        loaded = self._cache.get(path)
        if loaded is not None:  # no waiting behind another model's load
            self._cache.move_to_end(path)
            return loaded
        async with self._load_lock:
            loaded = self._cache.get(path)
            if loaded is None:
                loaded = await asyncio.to_thread(_load, path, model)
                self._cache[path] = loaded
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)  # a generation still running keeps its own reference
            self._cache.move_to_end(path)
            return loaded

    async def list_models(self) -> list[str]:
        if self.available is None:
            return []
        available = self.available
        return sorted(await asyncio.to_thread(lambda: list(available())))

    # ------------------------------------------------------------------------------------------ chat

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        *,
        stream: bool = False,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        from hypotez.ml.chat import ChatResult

        _require_extra()
        started = time.perf_counter()
        loaded = await self._get(model)
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not (stream and on_text is not None):
            text, prompt_tokens, completion_tokens = await asyncio.to_thread(
                _generate, loaded, turns, self.max_new_tokens, None, model
            )
        else:
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            streamer = _TextStream(loaded.tokenizer, asyncio.get_running_loop(), queue)
            job = asyncio.create_task(asyncio.to_thread(_generate, loaded, turns, self.max_new_tokens, streamer, model))
            try:
                while (partial := await _next_text(queue, job)) is not None:
                    if partial:
                        await on_text(partial)
            finally:
                # The thread cannot be interrupted: wait for it even if the callback failed.
                text, prompt_tokens, completion_tokens = await job
            if text != streamer.sent:
                await on_text(text)  # the final text, exactly as returned
        return ChatResult(
            content=text,
            model=model,
            latency_ms=int((time.perf_counter() - started) * 1000),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    async def close(self) -> None:
        async with self._load_lock:
            self._cache.clear()


async def _next_text(queue: asyncio.Queue[str | None], job: asyncio.Future[Any]) -> str | None:
    """The next streamed text, or ``None`` when generation ended (also when it failed before streaming)."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None if queue.empty() else queue.get_nowait()


def _require_extra() -> None:
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"{_EXTRA_HINT} Missing here: {', '.join(missing)}.")


def _load(path: Path, model_id: str) -> _Loaded:
    """Load a full model, or an adapter merged into its base (faster to run than the unmerged pair)."""
    # Typed as Any: transformers and peft are only partly annotated; this is the one place that drives them.
    torch: Any = importlib.import_module("torch")
    hf: Any = importlib.import_module("transformers")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device == "cuda" else torch.float32
    adapter_config = path / "adapter_config.json"
    try:
        if adapter_config.is_file():
            peft: Any = importlib.import_module("peft")
            base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
            if not base:
                raise BackendError(f"The adapter `{model_id}` does not name its base model.", backend="local")
            tokenizer_source = path if (path / "tokenizer_config.json").is_file() else base
            tokenizer = hf.AutoTokenizer.from_pretrained(str(tokenizer_source))
            base_model = hf.AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
            with warnings.catch_warnings():
                # peft reads transformers' deprecated `is_gradient_checkpointing` (peft 0.21 with transformers 5);
                # only that warning is silenced, and only here.
                warnings.filterwarnings("ignore", message=_PEFT_DEPRECATION, category=FutureWarning)
                model = peft.PeftModel.from_pretrained(base_model, str(path)).merge_and_unload()
        else:
            tokenizer = hf.AutoTokenizer.from_pretrained(str(path))
            model = hf.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(
            f"The local model `{model_id}` could not be loaded ({type(exc).__name__}).", backend="local"
        ) from exc
    model.to(device)
    model.eval()
    max_positions = getattr(model.config, "max_position_embeddings", None)
    return _Loaded(model, tokenizer, device, max_positions if isinstance(max_positions, int) else None)


def _generate(
    loaded: _Loaded, turns: list[dict[str, str]], max_new_tokens: int, streamer: _TextStream | None, model_id: str
) -> tuple[str, int, int]:
    """Greedy answer to ``turns``; returns (text, prompt tokens, completion tokens).  Runs in a worker thread."""
    torch: Any = importlib.import_module("torch")
    tokenizer, model = loaded.tokenizer, loaded.model
    try:
        if tokenizer.chat_template is None:
            raise BackendError(f"The local model `{model_id}` has no chat template.", backend="local")
        ids = tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_dict=True)["input_ids"]
    except BackendError:
        if streamer is not None:
            streamer.end()
        raise
    except Exception as exc:  # a template error (e.g. a role the template rejects)
        if streamer is not None:
            streamer.end()
        raise BackendError(
            f"The local model `{model_id}` cannot format this conversation ({type(exc).__name__}).", backend="local"
        ) from exc
    prompt = cast("list[int]", list(ids))
    answer_tokens = max_new_tokens
    if loaded.max_positions is not None:
        # The prompt and the answer share the model's window.  The prompt stays whole when it fits, leaving
        # the answer at least a quarter of the window; a longer conversation keeps its end (the latest turns
        # matter most).  The answer then gets whatever room is left, up to max_new_tokens.
        window = loaded.max_positions
        least_answer = max(1, min(max_new_tokens, window // 4))
        if len(prompt) > window - least_answer:
            prompt = prompt[-(window - least_answer) :]
        answer_tokens = max(1, min(max_new_tokens, window - len(prompt)))
    generation = copy.deepcopy(model.generation_config)
    # Greedy, whatever sampling settings the model ships with (unset, so transformers does not warn about them).
    generation.do_sample, generation.temperature, generation.top_p, generation.top_k = False, None, None, None
    generation.max_new_tokens = answer_tokens
    if generation.pad_token_id is None:
        generation.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    with loaded.lock, torch.inference_mode():
        input_ids = torch.tensor([prompt], device=loaded.device)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=generation,
            streamer=streamer,
        )
    new_tokens = [int(t) for t in output[0, len(prompt) :].tolist()]
    text = str(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return text, len(prompt), len(new_tokens)
