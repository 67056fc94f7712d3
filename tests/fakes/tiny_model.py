"""A tiny causal language model built on the spot, for tests of local training and chat.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on the texts given, wrapped as a
``PreTrainedTokenizerFast`` with special tokens and a small chat template; the model is a 2-layer,
128-wide Llama with random weights.  Both are saved with ``save_pretrained``, so TRL (SFT and DPO),
PEFT and :class:`hypotez.ml.local_chat.LocalChatBackend` load the directory like any Hugging Face model.

:func:`synthetic_task` is a small memorisation task on which an untrained model scores about 0% and one
trained with the local trainer's automatic hyperparameters at least 90%: the proof that the training loop
works.  :func:`exact_match` and :func:`score_preferences` measure a model directory (a full model or an adapter)
on such pairs: greedy exact match as ``/test`` scores it, and how often the model gives a preference pair's
chosen reply a higher log-probability than its rejected one (DPO's "reward accuracy" against no reference).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "PreferenceScore",
    "exact_match",
    "make_tiny_model",
    "preference_examples",
    "score_preferences",
    "supervised_examples",
    "synthetic_task",
]

SPECIAL_TOKENS = {
    "bos_token": "<|bos|>",
    "eos_token": "<|end|>",  # ends every turn, so generation stops after the assistant's answer
    "pad_token": "<|pad|>",
    "unk_token": "<|unk|>",
}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

#: Each turn is ``<|role|>content<|end|>``; the prompt of a generation ends with ``<|assistant|>``.  The
#: rendering of a prompt is a prefix of the rendering of the prompt plus its answer, which TRL checks.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


_NAMES = [
    "Alice", "Boris", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kira", "Liam", "Mara", "Nikolai", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tanya",
    "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zoe", "Anton", "Bella", "Cyril", "Dora",
    "Emil", "Fiona", "Gleb", "Hanna", "Igor", "Julia", "Karl", "Lena", "Milo", "Nina",
    "Oskar", "Pia", "Roman", "Sofia", "Timur", "Ulla", "Viktor", "Wanda", "Yana", "Zakhar",
]  # fmt: skip
_WORDS = [
    "amber", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "jasper",
    "kelp", "lagoon", "marble", "nectar", "onyx", "pebble", "quartz", "raven", "saffron", "tundra",
    "umber", "velvet", "willow", "xylem", "yarrow", "zephyr", "anchor", "birch", "cinder", "dune",
    "echo", "fern", "glacier", "heron", "iris", "juniper", "kestrel", "lichen", "meadow", "nimbus",
    "orchid", "prairie", "quill", "ripple", "spruce", "thistle", "upland", "vortex", "wren", "yonder",
]  # fmt: skip


def synthetic_task(n: int = 50, *, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (at most 50) question → answer pairs: "What is the code word for Alice?" → "quartz".

    Names and words are fixed lists; ``seed`` shuffles which word goes with which name, so nothing in the
    question hints at the answer.
    """
    if not 1 <= n <= len(_NAMES):
        raise ValueError(f"n must be between 1 and {len(_NAMES)}")
    words = list(_WORDS)
    random.Random(seed).shuffle(words)
    return [(f"What is the code word for {name}?", word) for name, word in zip(_NAMES[:n], words, strict=False)]


def supervised_examples(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The pairs in OpenAI's supervised fine-tuning format."""
    return [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        for question, answer in pairs
    ]


def preference_examples(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The pairs in OpenAI's preference (DPO) format; the rejected answer is the next pair's answer."""
    pairs = list(pairs)
    return [
        {
            "input": {"messages": [{"role": "user", "content": question}]},
            "preferred_output": [{"role": "assistant", "content": answer}],
            "non_preferred_output": [{"role": "assistant", "content": pairs[(i + 1) % len(pairs)][1]}],
        }
        for i, (question, answer) in enumerate(pairs)
    ]


def make_tiny_model(path: Path, texts: Iterable[str], *, seed: int = 0, vocab_size: int = 512) -> Path:
    """Build and save a tiny Llama and its tokenizer (trained on ``texts``) to ``path``; returns ``path``.

    Needs ``torch``, ``transformers`` and ``tokenizers`` (the ``local`` extra).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    # Byte-level BPE: every string round-trips exactly through encode/decode, which exact-match scoring needs.
    specials = [*SPECIAL_TOKENS.values(), *ROLE_TOKENS]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    bpe_trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*texts, *_NAMES, *_WORDS], trainer=bpe_trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        additional_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        **SPECIAL_TOKENS,
    )

    torch.manual_seed(seed)
    ids = {name: backend.token_to_id(token) for name, token in SPECIAL_TOKENS.items()}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=ids["bos_token"],
        eos_token_id=ids["eos_token"],
        pad_token_id=ids["pad_token"],
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token"],
        eos_token_id=ids["eos_token"],
        pad_token_id=ids["pad_token"],
        do_sample=False,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _load(path: Path) -> tuple[Any, Any]:
    """The tokenizer and model in ``path``: a full model, or a LoRA adapter merged into its base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    adapter = path / "adapter_config.json"
    if adapter.is_file() and not (path / "config.json").is_file():
        from peft import PeftModel

        base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(path)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path))
    model.eval()
    return tokenizer, model


def exact_match(path: Path, pairs: Sequence[tuple[str, str]], *, max_new_tokens: int = 16) -> float:
    """Share of questions the model in ``path`` answers exactly (greedy, stripped), as ``/test`` scores it."""
    import torch

    tokenizer, model = _load(path)
    right = 0
    with torch.inference_mode():
        for question, answer in pairs:
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": question}],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )["input_ids"]
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
            )
            right += tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == answer
    return right / len(pairs)


@dataclass(frozen=True, slots=True)
class PreferenceScore:
    """How a model ranks preference pairs: the share whose chosen reply has the higher log-probability, and
    the mean difference (chosen minus rejected, in nats, summed over the reply's tokens as DPO does)."""

    accuracy: float
    margin: float


def score_preferences(path: Path, examples: Sequence[dict[str, Any]]) -> PreferenceScore:
    """Score OpenAI preference examples (``input``/``preferred_output``/``non_preferred_output``) with the model
    in ``path``: each reply's log-probability given the conversation, its end-of-turn token included."""
    import torch

    tokenizer, model = _load(path)

    def logprob(prompt: list[dict[str, str]], reply: dict[str, str]) -> float:
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template([*prompt, reply], return_dict=True)["input_ids"]
        if list(full[: len(prompt_ids)]) != list(prompt_ids):
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
        ids = torch.tensor([full])
        logits = model(input_ids=ids).logits[0, :-1].float()
        logps = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:].unsqueeze(1)).squeeze(1)
        return float(logps[len(prompt_ids) - 1 :].sum())

    wins, margins = 0, 0.0
    with torch.inference_mode():
        for example in examples:
            prompt = example["input"]["messages"]
            margin = logprob(prompt, example["preferred_output"][-1]) - logprob(
                prompt, example["non_preferred_output"][-1]
            )
            wins += margin > 0
            margins += margin
    return PreferenceScore(accuracy=wins / len(examples), margin=margins / len(examples))
