"""The ``local`` chat backend on a tiny model built here: full models and LoRA adapters, by path or by
``local:`` id, greedy and streamed.  (A model trained by the local trainer answering is in
``test_local_trainer.py``.)"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the Hugging Face hub

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from hypotez.errors import ConfigError, NotFoundError
from hypotez.ml import local_chat
from hypotez.ml.chat import ChatBackend
from hypotez.ml.local_chat import LocalChatBackend
from tests.fakes.tiny_model import SPECIAL_TOKENS, make_tiny_model, synthetic_task

if TYPE_CHECKING:
    from pathlib import Path

    from hypotez.ml.chat import ChatMessage

#: Training and inference share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)


QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "Answer with one word."},
    {"role": "user", "content": "What is the code word for Alice?"},
]


@dataclass
class Models:
    full: Path
    adapter: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    import peft
    import transformers

    root = tmp_path_factory.mktemp("local-chat")
    full = make_tiny_model(root / "tiny", [f"{q} {a}" for q, a in synthetic_task()])
    # A random model may stop at once; never letting it emit a special token makes it always say something.
    config = transformers.GenerationConfig.from_pretrained(full)
    tokenizer = transformers.AutoTokenizer.from_pretrained(full)
    config.suppress_tokens = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens]
    config.save_pretrained(full)

    # An adapter with random (not zero) weights, so it changes the answers; no tokenizer of its own.
    base = transformers.AutoModelForCausalLM.from_pretrained(full)
    lora = peft.LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        peft.get_peft_model(base, lora).save_pretrained(str(root / "adapter"))
    return Models(full, root / "adapter")


@pytest.mark.asyncio
async def test_a_full_model_by_path_answers_greedily(models: Models) -> None:
    backend = LocalChatBackend(max_new_tokens=6)
    assert isinstance(backend, ChatBackend)
    first = await backend.complete(QUESTION, str(models.full))
    second = await backend.complete(QUESTION, str(models.full))
    assert first.content
    assert first.content == second.content
    assert first.model == str(models.full)
    assert first.completion_tokens == 6
    assert first.prompt_tokens is not None
    assert first.prompt_tokens > 10
    assert not any(token in first.content for token in SPECIAL_TOKENS.values())
    await backend.close()


@pytest.mark.asyncio
async def test_streaming_shows_the_text_as_it_grows(models: Models) -> None:
    backend = LocalChatBackend(max_new_tokens=6)
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    result = await backend.complete(QUESTION, str(models.full), stream=True, on_text=on_text)
    assert len(seen) >= 2
    assert seen[-1] == result.content
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert result.content == (await backend.complete(QUESTION, str(models.full))).content


@pytest.mark.asyncio
async def test_an_adapter_loads_on_its_base(models: Models) -> None:
    assert json.loads((models.adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        models.full
    )
    backend = LocalChatBackend(max_new_tokens=6)
    tuned = await backend.complete(QUESTION, str(models.adapter))
    plain = await backend.complete(QUESTION, str(models.full))
    assert tuned.content
    assert tuned.content != plain.content


@pytest.mark.asyncio
async def test_local_ids_go_through_the_resolver(models: Models) -> None:
    known = {"local:job-1": models.adapter}

    def resolve(model: str) -> Path:
        if model not in known:
            raise NotFoundError("model", model)
        return known[model]

    backend = LocalChatBackend(resolve, available=lambda: known, allow_paths=False, max_new_tokens=4)
    assert await backend.list_models() == ["local:job-1"]
    result = await backend.complete(QUESTION, "local:job-1")
    assert result.model == "local:job-1"
    with pytest.raises(NotFoundError):
        await backend.complete(QUESTION, "local:job-2")
    with pytest.raises(NotFoundError):  # paths are not model ids here
        await backend.complete(QUESTION, str(models.full))


@pytest.mark.asyncio
async def test_unknown_models_are_not_found(tmp_path: Path) -> None:
    backend = LocalChatBackend()
    assert await backend.list_models() == []
    with pytest.raises(NotFoundError, match="not available on the local backend"):
        await backend.complete(QUESTION, "gpt-4o-mini")
    with pytest.raises(NotFoundError):
        await backend.complete(QUESTION, str(tmp_path))  # a directory, but no model in it


@pytest.mark.asyncio
async def test_without_the_local_extra_it_names_it(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_chat, "REQUIRED_MODULES", ("torch", "hypotez_no_such_module"))
    with pytest.raises(ConfigError, match=r"pip install 'hypotez\[local\]'"):
        await LocalChatBackend().complete(QUESTION, str(models.full))


@pytest.mark.asyncio
async def test_models_are_cached_least_recently_used(models: Models) -> None:
    backend = LocalChatBackend(cache_size=1, max_new_tokens=2)
    await backend.complete(QUESTION, str(models.full))
    loaded = backend._cache[models.full]
    await backend.complete(QUESTION, str(models.full))
    assert backend._cache[models.full] is loaded  # loaded once
    await backend.complete(QUESTION, str(models.adapter))
    assert list(backend._cache) == [models.adapter]


@pytest.mark.asyncio
async def test_concurrent_requests_share_one_model(models: Models) -> None:
    backend = LocalChatBackend(max_new_tokens=4)
    results = await asyncio.gather(*(backend.complete(QUESTION, str(models.full)) for _ in range(4)))
    assert len({r.content for r in results}) == 1
    assert len(backend._cache) == 1


@pytest.mark.asyncio
async def test_a_conversation_longer_than_the_model_keeps_its_end(models: Models) -> None:
    backend = LocalChatBackend(max_new_tokens=4)
    long: list[ChatMessage] = [{"role": "user", "content": "What is the code word for Alice? " * 60}]
    result = await backend.complete(long, str(models.full))
    assert result.prompt_tokens == 256 - 4  # the tiny model's context, less room for the answer
    assert result.content


@pytest.mark.asyncio
async def test_a_short_prompt_is_never_cut_for_a_long_answer_budget(models: Models) -> None:
    # max_new_tokens larger than the model's whole window (256) must shorten the answer, not the question.
    short = LocalChatBackend(max_new_tokens=4)
    generous = LocalChatBackend(max_new_tokens=1000)
    small = await short.complete(QUESTION, str(models.full))
    large = await generous.complete(QUESTION, str(models.full))
    assert large.prompt_tokens == small.prompt_tokens
    assert large.prompt_tokens is not None
    assert large.prompt_tokens > 5
    assert large.completion_tokens is not None
    assert large.completion_tokens <= 256 - large.prompt_tokens
    assert large.content.startswith(small.content)  # greedy: the same start
