"""Hyperparameters: each trainer's typed options, and "auto" resolved from the data and the model's config."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.errors import InvalidInputError
from hypotez.ml.hyperparameters import (
    AUTO,
    DataFacts,
    LocalOptions,
    LocalSettings,
    ModelFacts,
    OpenAIOptions,
    estimate_parameters,
    options_for,
    read_model_facts,
    resolve,
)
from hypotez.ml.trainers.base import TrainingMethod, TrainingRequest
from hypotez.ml.trainers.openai import OpenAITrainer

if TYPE_CHECKING:
    from pathlib import Path

#: The published configs (the fields the estimate reads) and the published parameter counts.
QWEN_05B = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
}
LLAMA_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}
TINY = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 512,
    "tie_word_embeddings": True,
    "max_position_embeddings": 256,
}


@pytest.mark.parametrize(
    ("config", "published"),
    [(QWEN_05B, 494_000_000), (LLAMA_8B, 8_030_000_000), (GPT2, 124_000_000), (TINY, 393_216)],
)
def test_the_parameter_count_comes_from_the_config_within_two_percent(config: dict[str, Any], published: int) -> None:
    estimate = estimate_parameters(config)
    assert estimate is not None
    assert abs(estimate - published) / published < 0.02


def test_a_config_without_sizes_has_no_estimate() -> None:
    assert estimate_parameters({"model_type": "mystery"}) is None


def _model_dir(path: Path, config: dict[str, Any]) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_model_facts_from_a_directory_an_adapter_a_name_or_nothing(tmp_path: Path) -> None:
    base = _model_dir(tmp_path / "qwen", QWEN_05B)
    facts = read_model_facts(str(base), shown="local:qwen")
    assert (facts.name, facts.hidden_size, facts.context) == ("local:qwen", 896, 32768)
    assert facts.parameters is not None
    assert 490e6 < facts.parameters < 500e6
    assert "config.json" in facts.source

    adapter = tmp_path / "job-1" / "model"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert read_model_facts(str(adapter)).parameters == facts.parameters  # an adapter is as large as its base

    by_name = read_model_facts("SomeOrg/Llama-3.1-8B-Instruct")  # not in any cache here: the size in its name
    assert (by_name.parameters, by_name.source) == (8_000_000_000, "read from its name")
    assert read_model_facts("SomeOrg/Qwen2.5-0.5B").parameters == 500_000_000
    assert read_model_facts("SomeOrg/SmolLM2-135M").parameters == 135_000_000
    unknown = read_model_facts("gpt2-offline-nowhere")
    assert unknown.parameters is None
    assert "no size in its name" in unknown.source


def _supervised(n: int, *, words: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the code word for person {i}?"},
                {"role": "assistant", "content": " ".join(["word"] * words)},
            ]
        }
        for i in range(n)
    ]


TINY_FACTS = ModelFacts("local:tiny", parameters=393_216, hidden_size=128, context=256, source="config.json")
QWEN_FACTS = ModelFacts("Qwen/Qwen2.5-0.5B-Instruct", parameters=494_032_768, hidden_size=896, context=32768)
BIG_FACTS = ModelFacts("big", parameters=70_000_000_000, hidden_size=8192, context=8192)


def _auto(model: ModelFacts, n: int, method: str = "supervised", **given: Any) -> dict[str, Any]:
    options = options_for("local", given, method=method)
    return resolve(options, method=method, data=DataFacts.of(_supervised(n)), model=model).stored()


def test_a_small_model_is_fully_fine_tuned_for_as_many_passes_as_it_needs() -> None:
    plan = resolve(LocalOptions(), method="supervised", data=DataFacts.of(_supervised(50)), model=TINY_FACTS)
    values = plan.values
    assert values["lora"] is False
    assert "lora_rank" not in values  # no adapter, no rank
    assert values["epochs"] == 100
    assert values["learning_rate"] == pytest.approx(3.1e-4)  # 0.04 / width 128
    assert values["batch_size"] == 16  # 50 // 3 = 16: at least three steps a pass
    assert values["max_length"] == 256  # the model's window
    assert set(plan.auto) == set(values)
    described = plan.describe()
    assert "`lora` = false (auto: full fine-tuning" in described
    assert "about 393k parameters" in described
    assert len(described) < 1500


def test_a_larger_model_gets_lora_fewer_passes_and_a_rank_for_its_width() -> None:
    values = _auto(QWEN_FACTS, 50)
    assert (values["lora"], values["learning_rate"], values["lora_rank"], values["lora_alpha"]) == (True, 2e-4, 16, 32)
    assert values["epochs"] == 9  # between 100 passes at 1M parameters and 3 at 10B, log-linearly
    big = _auto(BIG_FACTS, 50)
    assert (big["lora"], big["learning_rate"], big["lora_rank"], big["epochs"]) == (True, 1e-4, 64, 3)


def test_passes_follow_openais_bounds_by_dataset_size() -> None:
    assert _auto(BIG_FACTS, 10)["epochs"] == 10  # 10 examples: at least 100 example passes
    assert _auto(TINY_FACTS, 1000)["epochs"] == 25  # at most 25,000 example passes
    assert _auto(TINY_FACTS, 20)["epochs"] == 100


def test_the_batch_keeps_steps_in_every_pass_and_long_examples_in_memory() -> None:
    assert _auto(TINY_FACTS, 20)["batch_size"] == 4
    assert _auto(TINY_FACTS, 2)["batch_size"] == 1
    assert _auto(TINY_FACTS, 5000)["batch_size"] == 16
    long = resolve(
        LocalOptions(), method="supervised", data=DataFacts.of(_supervised(500, words=3000)), model=QWEN_FACTS
    )
    assert long.values["batch_size"] == 4  # 16,384 tokens a step over ~3,000-token examples
    assert "tokens in the longest example" in long.describe() or "tokens a step" in long.describe()


def test_given_values_are_kept_and_not_counted_as_auto() -> None:
    stored = _auto(TINY_FACTS, 50, lora=True, learning_rate=1e-3, lora_rank=4, max_steps=7)
    assert (stored["lora"], stored["learning_rate"], stored["lora_rank"], stored["max_steps"]) == (True, 1e-3, 4, 7)
    assert stored["lora_alpha"] == 8  # twice the rank given
    assert not {"lora", "learning_rate", "lora_rank", "max_steps"} & set(stored["auto"])
    assert "lora_alpha" in stored["auto"]
    # A flat JSON object of simple values (the job row and the status message read it so).
    assert all(isinstance(v, bool | int | float | str) for k, v in stored.items() if k != "auto")
    json.dumps(stored)


def test_preference_methods_choose_beta_rpo_and_name_the_reference() -> None:
    both = resolve(LocalOptions(), method="supervised+preference", data=DataFacts.of(_supervised(50)), model=TINY_FACTS)
    values = both.values
    assert (values["beta"], values["rpo_alpha"], values["preference_epochs"]) == (0.1, 1.0, 3)
    assert values["preference_learning_rate"] == pytest.approx(float(values["learning_rate"]) * 0.1, rel=0.05)
    assert both.stored()["reference"] == "the supervised stage's model"
    alone = resolve(
        LocalOptions(beta=0.3),
        method="preference",
        data=DataFacts.of(_supervised(50)),
        model=TINY_FACTS,
        reference="local:job-3",
    )
    assert alone.values["beta"] == 0.3
    assert "preference_epochs" not in alone.values
    # Alone, preference training must teach the replies too: the supervised passes and rate.
    assert (alone.values["epochs"], alone.values["learning_rate"]) == (100, pytest.approx(3.1e-4))
    assert alone.stored()["reference"] == "the starting model, local:job-3"
    assert "reference: the starting model, local:job-3" in alone.describe()
    assert "beta" not in _auto(TINY_FACTS, 50)


@pytest.mark.parametrize(
    ("trainer", "given", "method", "message"),
    [
        ("openai", {"max_steps": 5}, "supervised", "`max_steps` applies to the local trainer only."),
        ("openai", {"lora_rank": 8}, "supervised", "`lora_rank` applies to the local trainer only."),
        ("local", {"n_epochs": 2}, "supervised", "`n_epochs` applies to the openai trainer only."),
        ("local", {"warmup": 2}, "supervised", "The local trainer has no option `warmup`."),
        ("local", {"beta": 0.2}, "supervised", "`beta` applies to preference training only"),
        ("openai", {"beta": 0.2}, "supervised", "`beta` applies to preference training only"),
        ("local", {"preference_epochs": 2}, "preference", "applies to `method:supervised+preference` only"),
        ("local", {"learning_rate": -1.0}, "supervised", "`learning_rate` must be greater than 0"),
        ("local", {"epochs": "many"}, "supervised", "`epochs` must be a valid number"),
        ("openai", {"batch_size": 1000}, "supervised", "`batch_size` must be less than or equal to 256"),
    ],
)
def test_an_option_where_it_does_not_apply_is_refused_with_where_it_does(
    trainer: str, given: dict[str, Any], method: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        options_for(trainer, given, method=method)
    assert message in refused.value.user_message


def test_slash_names_map_onto_openais_own() -> None:
    options = options_for("openai", {"epochs": 2, "learning_rate": 0.5, "batch_size": None}, method="supervised")
    assert isinstance(options, OpenAIOptions)
    assert (options.n_epochs, options.learning_rate_multiplier, options.batch_size) == (2, 0.5, AUTO)


def test_the_worker_reads_resolved_values_and_refuses_unresolved_ones() -> None:
    plan = resolve(LocalOptions(), method="supervised", data=DataFacts.of(_supervised(50)), model=TINY_FACTS)
    settings = LocalSettings.from_values(plan.values, method="supervised")
    assert (settings.lora, settings.epochs, settings.max_steps, settings.batch_size) == (False, 100.0, -1, 16)
    with pytest.raises(ValueError, match="`max_length` was not resolved"):
        LocalSettings.from_values({k: v for k, v in plan.values.items() if k != "max_length"}, method="supervised")
    with pytest.raises(ValueError, match="`learning_rate` must be a valid number"):
        LocalSettings.from_values({**plan.values, "learning_rate": "fast"}, method="supervised")
    with pytest.raises(ValueError, match="`beta` was not resolved"):
        LocalSettings.from_values(plan.values, method="preference")


def _openai_request(method: TrainingMethod, **hyperparameters: Any) -> TrainingRequest:
    return TrainingRequest("job-1", "gpt-4o-mini", method, _supervised(10), hyperparameters=hyperparameters)


def test_openai_gets_its_method_object_with_auto_where_unset() -> None:
    method, seed = OpenAITrainer.method(_openai_request(TrainingMethod.SUPERVISED, n_epochs=2))
    assert method == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}},
    }
    assert seed is None
    dpo, seed = OpenAITrainer.method(_openai_request(TrainingMethod.PREFERENCE, beta=0.2, seed=7))
    assert dpo == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
                "beta": 0.2,
            }
        },
    }
    assert seed == 7
    with pytest.raises(InvalidInputError, match="one method a job"):
        OpenAITrainer.method(_openai_request(TrainingMethod.SUPERVISED_PREFERENCE))
