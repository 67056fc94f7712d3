"""Hyperparameters: the options each trainer declares, and ``"auto"`` resolved from the data and the model.

Every option of every trainer defaults to ``"auto"``, as in OpenAI's fine-tuning API.  :func:`resolve` turns
the options given into the values the trainer then uses exactly (:class:`Hyperparameters`), and says which
were chosen automatically and why; ``/train`` shows that before the job starts, and the job row stores it.
The facts the rules read are cheap to get: the number of examples and their estimated tokens
(:class:`DataFacts`), and the base model's parameter count, width and window, estimated from its
``config.json`` without loading any weight (:func:`read_model_facts`).

The local trainer's rules (each constant below says where it comes from):

* ``lora``: **full fine-tuning below** :data:`FULL_FINE_TUNING_MAX_PARAMETERS` parameters.  Training every
  weight takes about 16 bytes a parameter (fp32 weights, gradients and Adam's two moments): under 3.2 GB there,
  which any machine that trains has, while a low-rank adapter of so narrow a model adapts too little of it to
  teach it new answers (measured on the tests' tiny model: see ``bench/README.md``).  Above it, LoRA.
* ``learning_rate``: LoRA 2e-4 (QLoRA's rate for models up to 13B; 1e-4 from :data:`LORA_LOWER_RATE_FROM`
  parameters, as QLoRA did for 33B and 65B).  Full fine-tuning a tenth of the pretraining rate for the model's
  width, ``0.4 / width`` (GPT-3's table, Brown et al. 2020, is close to that from 125M to 13B parameters):
  ``0.04 / width``, i.e. 5e-5 at width 768 (the Hugging Face default for BERT/GPT-2-sized models) and 1e-5 at
  4096 (Llama-2 7B; Alpaca and Llama-2-chat used 2e-5).  Preference training alone (``preference``) the same:
  its NLL term (``rpo_alpha``) is the supervised loss, and it must teach the chosen replies as well as prefer
  them; the preference stage of ``supervised+preference``, which only widens the margin of replies the
  supervised stage taught, :data:`PREFERENCE_RATE_SHARE` of it.
* ``epochs`` (supervised): corrections teach facts, and a model stores a fact only after seeing it a number of
  times that falls as the model grows (larger models memorise faster: Tirumala et al. 2022).  The passes over
  the data run from :data:`SMALL_MODEL_EPOCHS` for models of :data:`SMALL_MODEL_PARAMETERS` parameters or fewer
  (Allen-Zhu & Li 2024, "Physics of Language Models 3.3": knowledge is stored at about 100 exposures) down to
  :data:`LARGE_MODEL_EPOCHS` from :data:`LARGE_MODEL_PARAMETERS` (OpenAI's default), log-linearly in between;
  then OpenAI's rule by dataset size: at least :data:`MIN_EXAMPLE_PASSES` example passes in all, at most
  :data:`MAX_EXAMPLE_PASSES`.  The same for ``preference`` alone; the preference stage of
  ``supervised+preference`` :data:`PREFERENCE_EPOCHS`, within the same bounds.
* ``batch_size``: as many examples as keep :data:`MIN_STEPS_PER_EPOCH` steps in every pass (so the optimiser
  takes several steps per pass even on a small dataset), at most :data:`MAX_BATCH_SIZE`, and at most
  :data:`TOKENS_PER_STEP` estimated tokens of the longest example per step (memory); a power of two.
* ``lora_rank``: a 64th of the model's width (the nearest power of two), 8 to 64 (a wider model keeps the same
  share of its directions; a higher rank learns more, Biderman et al. 2024); ``lora_alpha`` twice the rank (the
  usual scale, α/r = 2).
* ``beta`` 0.1 (the DPO paper's, TRL's and OpenAI's default); ``rpo_alpha`` 1.0: DPO plus the chosen replies'
  negative log-likelihood at weight 1 (RPO, Pang et al. 2024), so preference training cannot lower the
  likelihood of the right answers while it widens their margin over the wrong ones (DPO alone can: Pal et al.
  2024).
* ``max_length``: the model's window, at most :data:`MAX_LENGTH_CAP` tokens; ``seed`` 0.

``supervised+preference`` is two stages in one job: supervised training on the chosen replies, then DPO from
that model, which is also the frozen reference.  ``epochs`` and ``learning_rate`` are the first stage's;
``preference_epochs`` and ``preference_learning_rate`` the second's.  ``preference`` alone uses the starting
model as its reference (a model trained here, ``local:job-N``, included).

The OpenAI trainer's options are OpenAI's own; what is not given is sent as ``"auto"`` and OpenAI decides.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal, cast

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from hypotez.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "AUTO",
    "TRAINER_OPTIONS",
    "DataFacts",
    "Hyperparameters",
    "LocalOptions",
    "LocalSettings",
    "ModelFacts",
    "OpenAIOptions",
    "TrainerOptions",
    "estimate_parameters",
    "options_for",
    "read_model_facts",
    "resolve",
]

AUTO: Final = "auto"
Auto = Literal["auto"]
#: A resolved value: the job row stores these in a flat JSON object.
Value = bool | int | float | str

# ------------------------------------------------------------------------------------------------ the rules

#: Full fine-tuning up to this many parameters (about 3.2 GB of training state at 16 bytes a parameter).
FULL_FINE_TUNING_MAX_PARAMETERS: Final = 200_000_000
#: Bytes of training state per parameter in full fine-tuning: fp32 weights, gradients and Adam's two moments.
FULL_FINE_TUNING_BYTES_PER_PARAMETER: Final = 16
#: LoRA's learning rate (QLoRA, Dettmers et al. 2023, for 7B-13B models) ...
LORA_RATE: Final = 2e-4
#: ... and from this size on (QLoRA used 1e-4 for 33B and 65B).
LORA_LOWER_RATE_FROM: Final = 30_000_000_000
LORA_LOWER_RATE: Final = 1e-4
#: Pretraining learning rate x width, nearly constant over GPT-3's table (Brown et al. 2020, table 2.1).
PRETRAINING_RATE_TIMES_WIDTH: Final = 0.4
#: Full fine-tuning takes a tenth of the pretraining rate (Llama-2: 3e-4 pretraining, 2e-5 supervised).
FINE_TUNING_SHARE_OF_PRETRAINING_RATE: Final = 0.1
#: Full fine-tuning rate when the width is unknown (Alpaca's and Llama-2-chat's 2e-5).
FULL_RATE_UNKNOWN_WIDTH: Final = 2e-5
#: The rate of the preference stage after a supervised one, as a share of the supervised rate.  The alignment
#: handbook's Zephyr recipes use a 40th (5e-7 after 2e-5 in full, 5e-6 after 2e-4 with LoRA); with the NLL term
#: (``rpo_alpha``) holding the chosen replies, a tenth widens their margin in a few passes without losing them.
PREFERENCE_RATE_SHARE: Final = 0.1
#: Passes over the data for models this small or smaller (knowledge stored at ~100 exposures, Allen-Zhu & Li 2024)...
SMALL_MODEL_PARAMETERS: Final = 1_000_000
SMALL_MODEL_EPOCHS: Final = 100
#: ... and for models this large or larger (OpenAI's default number of epochs).
LARGE_MODEL_PARAMETERS: Final = 10_000_000_000
LARGE_MODEL_EPOCHS: Final = 3
#: The size assumed when the model's is unknown.
UNKNOWN_MODEL_PARAMETERS: Final = 1_000_000_000
#: OpenAI's bounds on the passes over all examples together (its cookbook's data preparation notebook).
MIN_EXAMPLE_PASSES: Final = 100
MAX_EXAMPLE_PASSES: Final = 25_000
#: Passes of the preference stage after a supervised one.
PREFERENCE_EPOCHS: Final = 3
#: The batch leaves at least this many optimiser steps in every pass over the data ...
MIN_STEPS_PER_EPOCH: Final = 3
#: ... holds at most this many examples ...
MAX_BATCH_SIZE: Final = 16
#: ... and at most this many tokens (estimated, of the longest example) in one step.
TOKENS_PER_STEP: Final = 16_384
#: The longest sequence trained on, whatever the model's window.
MAX_LENGTH_CAP: Final = 4096
#: When the window is unknown.
DEFAULT_MAX_LENGTH: Final = 1024
BETA: Final = 0.1
RPO_ALPHA: Final = 1.0

# --------------------------------------------------------------------------------------------- the options

Positive = Annotated[float, Field(gt=0)]
Rate = Annotated[float, Field(gt=0, lt=1)]


class TrainerOptions(BaseModel):
    """The options one trainer declares: every field defaults to ``"auto"``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    #: The trainer these options belong to.
    trainer: ClassVar[str]
    #: Options that only preference training uses ...
    preference_only: ClassVar[frozenset[str]] = frozenset({"beta", "rpo_alpha"})
    #: ... and those of the second stage of ``supervised+preference``.
    second_stage_only: ClassVar[frozenset[str]] = frozenset({"preference_epochs", "preference_learning_rate"})

    @classmethod
    def names(cls) -> set[str]:
        """Every name an option may be given by (field names and their aliases)."""
        names: set[str] = set()
        for name, info in cls.model_fields.items():
            names.add(name)
            if isinstance(info.validation_alias, AliasChoices):
                names.update(str(choice) for choice in info.validation_alias.choices)
        return names

    @classmethod
    def field_for(cls, name: str) -> str:
        """The field an option given as ``name`` (maybe an alias) sets."""
        for field_name, info in cls.model_fields.items():
            aliases = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
            if name == field_name or name in aliases:
                return field_name
        raise KeyError(name)

    def given(self) -> dict[str, Value]:
        """The options that were set (not ``"auto"``)."""
        return {k: v for k, v in self.model_dump().items() if v != AUTO and v is not None}


class LocalOptions(TrainerOptions):
    """The ``local`` trainer's options (TRL on this machine)."""

    trainer: ClassVar[str] = "local"

    epochs: Annotated[float, Field(gt=0, le=1000)] | Auto = AUTO
    #: Stop after this many optimiser steps, whatever ``epochs`` says.
    max_steps: Annotated[int, Field(ge=1, le=1_000_000)] | Auto = AUTO
    learning_rate: Rate | Auto = AUTO
    batch_size: Annotated[int, Field(ge=1, le=1024)] | Auto = AUTO
    #: A LoRA adapter (``True``) or every weight (``False``).
    lora: bool | Auto = AUTO
    lora_rank: Annotated[int, Field(ge=1, le=1024)] | Auto = Field(
        default=AUTO, validation_alias=AliasChoices("lora_rank", "lora_r")
    )
    lora_alpha: Positive | Auto = AUTO
    max_length: Annotated[int, Field(ge=16, le=1_000_000)] | Auto = AUTO
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | Auto = AUTO
    beta: Annotated[float, Field(gt=0, le=10)] | Auto = AUTO
    rpo_alpha: Annotated[float, Field(ge=0, le=100)] | Auto = AUTO
    #: The preference stage of ``supervised+preference``.
    preference_epochs: Annotated[float, Field(gt=0, le=1000)] | Auto = AUTO
    preference_learning_rate: Rate | Auto = AUTO


class OpenAIOptions(TrainerOptions):
    """OpenAI's fine-tuning hyperparameters; what is not given is sent as ``"auto"`` (OpenAI decides)."""

    trainer: ClassVar[str] = "openai"

    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = Field(
        default=AUTO, validation_alias=AliasChoices("n_epochs", "epochs")
    )
    #: A multiplier of OpenAI's own learning rate (``learning_rate`` on ``/train``).
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=100)] | Auto = Field(
        default=AUTO, validation_alias=AliasChoices("learning_rate_multiplier", "learning_rate")
    )
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = AUTO
    beta: Annotated[float, Field(gt=0, le=2)] | Auto = AUTO
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | Auto = AUTO


#: Each trainer's options, by trainer name.
TRAINER_OPTIONS: dict[str, type[TrainerOptions]] = {"local": LocalOptions, "openai": OpenAIOptions}


def _is_preference(method: str) -> bool:
    return method in {"preference", "supervised+preference"}


def options_for(trainer: str, given: Mapping[str, object], *, method: str) -> TrainerOptions:
    """The trainer's options from options given by name (``None`` = not given, i.e. ``"auto"``).

    An option the trainer does not take, or one that only preference training uses given with another method,
    is refused with a sentence saying where it applies; so is a value out of range.
    """
    kind = TRAINER_OPTIONS[trainer]
    values = {name: value for name, value in given.items() if value is not None}
    for name in values:
        if name not in kind.names():
            others = [t for t, other in TRAINER_OPTIONS.items() if name in other.names()]
            raise InvalidInputError(
                f"`{name}` applies to the {' and '.join(others)} trainer only."
                if others
                else f"The {trainer} trainer has no option `{name}`."
            )
        if kind.field_for(name) in kind.second_stage_only and method != "supervised+preference":
            raise InvalidInputError(f"`{name}` applies to `method:supervised+preference` only.")
        if kind.field_for(name) in kind.preference_only and not _is_preference(method):
            raise InvalidInputError(
                f"`{name}` applies to preference training only (`method:preference` or `method:supervised+preference`)."
            )
    try:
        return kind.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(f"Invalid training options: {_problems(exc)}.") from exc


def _problems(exc: ValidationError) -> str:
    """``learning_rate` must be greater than 0``, one clause per option: a union with "auto" reports each of
    its branches, and the value's own complaint is the useful one."""
    found: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if len(loc) > 1 and loc[1].startswith("literal["):
            continue
        found.setdefault(loc[0] if loc else "?", []).append(_plain_problem(error))
    return "; ".join(f"`{name}` must be {' or '.join(problems)}" for name, problems in found.items())


def _plain_problem(error: Any) -> str:
    return str(error.get("msg", "a valid value")).removeprefix("Input should be ").replace("'auto'", '"auto"')


# ------------------------------------------------------------------------------------------------- the facts


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the rules know of a base model.  ``source`` says where it was read (shown with the choice)."""

    name: str
    parameters: int | None = None
    hidden_size: int | None = None
    context: int | None = None
    source: str = "unknown"

    def describe(self) -> str:
        if self.parameters is None:
            return f"`{self.name}`: size unknown ({self.source})"
        width = f", width {self.hidden_size}" if self.hidden_size else ""
        return f"`{self.name}`: about {_count(self.parameters)} parameters{width} ({self.source})"


@dataclass(frozen=True, slots=True)
class DataFacts:
    """What the rules know of the training data."""

    examples: int
    longest_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, examples: Iterable[dict[str, Any]]) -> DataFacts:
        """Counted with the same token estimate as ``/dataset show`` (no tokenizer needed)."""
        from hypotez.ml.datasets.pricing import record_tokens  # the dataset package is not for the worker

        tokens = [record_tokens(example) for example in examples]
        return cls(examples=len(tokens), longest_tokens=max(tokens, default=0), total_tokens=sum(tokens))


def _number(config: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


#: Architectures whose MLP has two matrices (up, down); the others (Llama, Qwen, Mistral, Gemma, Phi-3...) have
#: a gated MLP of three (gate, up, down).
_UNGATED = frozenset({"gpt2", "gpt_neox", "gptj", "gpt_neo", "opt", "bloom", "falcon", "phi", "mpt", "bert", "roberta"})


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config (multimodal models nest it as ``text_config``)."""
    text = config.get("text_config")
    return cast("dict[str, Any]", text) if isinstance(text, dict) else config


def estimate_parameters(config: Mapping[str, Any]) -> int | None:
    """The parameter count of a transformer from its ``config.json`` (``None`` when the file lacks the sizes).

    Embeddings (twice when input and output are not tied) plus, per layer, the attention projections (with
    grouped key/value heads) and the MLP (two or three matrices; times the experts of a mixture).  Biases and
    norms are left out: they are a fraction of a percent.
    """
    c = _text_config(config)
    width = _number(c, "hidden_size", "n_embd", "d_model")
    layers = _number(c, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _number(c, "vocab_size")
    if width is None or layers is None or vocab is None:
        return None
    heads = _number(c, "num_attention_heads", "n_head") or 1
    kv_heads = _number(c, "num_key_value_heads") or heads
    head_dim = _number(c, "head_dim") or width // heads
    ffn = _number(c, "intermediate_size", "n_inner", "ffn_dim") or 4 * width
    experts = _number(c, "num_local_experts", "num_experts", "n_routed_experts") or 1
    attention = 2 * width * heads * head_dim + 2 * width * kv_heads * head_dim
    mlp = (2 if c.get("model_type") in _UNGATED else 3) * width * ffn * experts
    tied = c.get("tie_word_embeddings", config.get("tie_word_embeddings", True)) is not False
    return vocab * width * (1 if tied else 2) + layers * (attention + mlp)


#: A size in a model's name: "Qwen2.5-0.5B-Instruct" (0.5 B), "SmolLM2-135M" (135 M), "Llama-3.1-8B" (8 B).
_SIZE_IN_NAME = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([MmBb])(?![A-Za-z0-9])")


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cast("dict[str, Any]", data) if isinstance(data, dict) else None


def _cached_hub_config(repo_id: str) -> Path | None:
    """The hub model's ``config.json`` when the local Hugging Face cache has it (never downloaded here)."""
    try:
        from huggingface_hub import try_to_load_from_cache  # comes with the local extra
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repository id
        return None
    return Path(found) if isinstance(found, str) else None


def read_model_facts(model: str, *, shown: str | None = None) -> ModelFacts:
    """The size of ``model`` — a model directory, or a Hugging Face hub id — without loading its weights.

    A directory's ``config.json`` (for a LoRA adapter, its base's, named in ``adapter_config.json``); for a hub
    id, the ``config.json`` in the local Hugging Face cache when it is there; else the size written in the
    name (``0.5B``, ``135M``); else unknown (the rules then assume :data:`UNKNOWN_MODEL_PARAMETERS`).  Nothing
    is downloaded.  ``shown`` is the name the facts are shown under (``local:tiny`` for its directory).
    """
    name = shown or model
    path = Path(model).expanduser()
    config_path: Path | None = None
    source = "config.json"
    if path.is_dir():
        adapter = _read_config(path / "adapter_config.json")
        if (path / "config.json").is_file():
            config_path = path / "config.json"
        elif adapter is not None and isinstance(adapter.get("base_model_name_or_path"), str):
            base = Path(str(adapter["base_model_name_or_path"])).expanduser()
            config_path = (
                base / "config.json" if base.is_dir() else _cached_hub_config(str(adapter["base_model_name_or_path"]))
            )
            source = "its base's config.json"
    else:
        config_path = _cached_hub_config(model)
        source = "config.json in the Hugging Face cache"
    config = _read_config(config_path) if config_path is not None else None
    if config is not None:
        parameters = estimate_parameters(config)
        c = _text_config(config)
        if parameters is not None:
            return ModelFacts(
                name=name,
                parameters=parameters,
                hidden_size=_number(c, "hidden_size", "n_embd", "d_model"),
                context=_number(c, "max_position_embeddings", "n_positions", "max_sequence_length"),
                source=f"estimated from {source}",
            )
    sizes = _SIZE_IN_NAME.findall(model)
    if sizes:
        number, unit = sizes[0]
        parameters = round(float(number) * (1e9 if unit in "Bb" else 1e6))
        return ModelFacts(name=name, parameters=parameters, source="read from its name")
    return ModelFacts(name=name, source="no config.json here and no size in its name")


# ------------------------------------------------------------------------------------------------ resolution


@dataclass(frozen=True, slots=True)
class Choice:
    """One resolved value: chosen automatically or given, and why."""

    value: Value
    auto: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    """The values a trainer uses exactly, which of them were chosen automatically, and why."""

    trainer: str
    choices: dict[str, Choice] = field(default_factory=dict[str, Choice])
    #: What the automatic choices were made from (the model and the data), for the reply.
    basis: str = ""
    #: Facts of the training that are no option (``reference``: DPO's frozen reference model), shown and stored.
    notes: dict[str, str] = field(default_factory=dict[str, str])

    @property
    def values(self) -> dict[str, Value]:
        """What the trainer receives (``TrainingRequest.hyperparameters``)."""
        return {name: choice.value for name, choice in self.choices.items()}

    @property
    def auto(self) -> list[str]:
        return [name for name, choice in self.choices.items() if choice.auto]

    def stored(self) -> dict[str, Value | list[str]]:
        """A flat JSON object for the job row: every value, and ``"auto"``: the names chosen automatically."""
        return {**self.values, **self.notes, "auto": self.auto}

    def describe(self, *, reasons: bool = True) -> str:
        """Lines for ``/train``'s reply: each value, marked *auto* (with its reason) or *given*."""
        lines = [f"Hyperparameters ({self.basis}):" if self.basis and reasons else "Hyperparameters:"]
        for name, choice in self.choices.items():
            how = "given"
            if choice.auto:
                how = f"auto: {choice.reason}" if choice.reason and reasons else "auto"
            lines.append(f"- `{name}` = {_shown(choice.value)} ({how})")
        lines.extend(f"- {name}: {note}" for name, note in self.notes.items())
        return "\n".join(lines)


def _shown(value: Value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}"
    if isinstance(value, float):
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _count(parameters: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if parameters >= size:
            return f"{parameters / size:.3g}{unit}"
    return str(int(parameters))


def _gigabytes(size: float) -> str:
    return f"{size / 1e9:.2g} GB"


def _power_of_two_at_most(value: float) -> int:
    return 1 if value < 2 else 2 ** math.floor(math.log2(value))


def resolve(
    options: TrainerOptions, *, method: str, data: DataFacts, model: ModelFacts, reference: str | None = None
) -> Hyperparameters:
    """Every ``"auto"`` of ``options`` decided for training ``model`` on ``data`` with ``method``.

    ``reference`` names the model preference training compares with (shown; the local trainer's
    ``preference`` uses the starting model, ``supervised+preference`` its supervised stage's model).
    """
    if isinstance(options, LocalOptions):
        return _resolve_local(options, method=method, data=data, model=model, reference=reference)
    if isinstance(options, OpenAIOptions):
        return _resolve_openai(options, method=method)
    raise TypeError(f"no rules for {type(options).__name__}")


class _Chooser:
    """Collects choices: a given value is kept, an automatic one is recorded with its reason."""

    def __init__(self, options: TrainerOptions) -> None:
        self.options = options
        self.choices: dict[str, Choice] = {}

    def given(self, name: str) -> Any:
        value = getattr(self.options, name)
        return None if value == AUTO else value

    def choose(self, name: str, value: Value, reason: str) -> Any:
        given = self.given(name)
        self.choices[name] = Choice(given, auto=False) if given is not None else Choice(value, auto=True, reason=reason)
        return self.choices[name].value


def _supervised_epochs(parameters: int | None) -> tuple[float, str]:
    """Passes by model size alone (before the dataset's bounds)."""
    size = parameters or UNKNOWN_MODEL_PARAMETERS
    if size <= SMALL_MODEL_PARAMETERS:
        return (
            SMALL_MODEL_EPOCHS,
            f"a model of {_count(size)} parameters stores a fact after about {SMALL_MODEL_EPOCHS} passes",
        )
    if size >= LARGE_MODEL_PARAMETERS:
        return LARGE_MODEL_EPOCHS, f"a model of {_count(size)} parameters learns in {LARGE_MODEL_EPOCHS} passes"
    share = math.log(size / SMALL_MODEL_PARAMETERS) / math.log(LARGE_MODEL_PARAMETERS / SMALL_MODEL_PARAMETERS)
    epochs = math.exp(math.log(SMALL_MODEL_EPOCHS) + share * math.log(LARGE_MODEL_EPOCHS / SMALL_MODEL_EPOCHS))
    return round(epochs), (
        f"{SMALL_MODEL_EPOCHS} passes for models up to {_count(SMALL_MODEL_PARAMETERS)} parameters, "
        f"{LARGE_MODEL_EPOCHS} from {_count(LARGE_MODEL_PARAMETERS)}: about {round(epochs)} at {_count(size)}"
    )


def _bounded_epochs(epochs: float, reason: str, examples: int) -> tuple[float, str]:
    """OpenAI's bounds by dataset size: at least MIN_EXAMPLE_PASSES example passes, at most MAX_EXAMPLE_PASSES."""
    n = max(1, examples)
    least = math.ceil(MIN_EXAMPLE_PASSES / n)
    most = max(1, MAX_EXAMPLE_PASSES // n)
    if epochs < least:
        return least, f"{reason}, raised to {least} so {n} examples give at least {MIN_EXAMPLE_PASSES} example passes"
    if epochs > most:
        return most, f"{reason}, lowered to {most}: {n} examples, at most {MAX_EXAMPLE_PASSES} example passes"
    return epochs, reason


def _choose_lora(c: _Chooser, model: ModelFacts) -> bool:
    size = model.parameters
    state = _gigabytes((size or 0) * FULL_FINE_TUNING_BYTES_PER_PARAMETER)
    if size is None:
        return bool(c.choose("lora", True, "the model's size is unknown; an adapter fits in memory whatever it is"))
    if size <= FULL_FINE_TUNING_MAX_PARAMETERS:
        return bool(
            c.choose(
                "lora",
                False,
                f"full fine-tuning: all {_count(size)} parameters train in about {state}, and an adapter of so "
                "small a model adapts too little of it to teach it new answers",
            )
        )
    return bool(c.choose("lora", True, f"training all {_count(size)} parameters would take about {state}"))


def _supervised_rate(lora: bool, model: ModelFacts) -> tuple[float, str]:
    size, width = model.parameters, model.hidden_size
    if lora:
        if size is not None and size >= LORA_LOWER_RATE_FROM:
            return LORA_LOWER_RATE, f"LoRA on {_count(size)} parameters (QLoRA's rate for 33B-65B)"
        return LORA_RATE, "LoRA's usual rate (QLoRA)"
    if width:
        rate = FINE_TUNING_SHARE_OF_PRETRAINING_RATE * PRETRAINING_RATE_TIMES_WIDTH / width
        return rate, f"a tenth of the pretraining rate for width {width} (0.4 / width)"
    return FULL_RATE_UNKNOWN_WIDTH, "full fine-tuning of a model of unknown width"


def _choose_schedule(c: _Chooser, method: str, lora: bool, data: DataFacts, model: ModelFacts) -> None:
    """``epochs`` and ``learning_rate`` of each stage."""
    rate, rate_reason = _supervised_rate(lora, model)
    rate = float(f"{rate:.2g}")  # shown and stored: 3.1e-4, not 3.1250000000000006e-4
    # Preference training alone must also teach what the chosen replies say (its NLL term is the supervised
    # loss), so it takes the supervised passes and rate; after a supervised stage on the same replies it only
    # widens their margin over the rejected ones: a few passes at a small share of the rate.
    c.choose("epochs", *_bounded_epochs(*_supervised_epochs(model.parameters), data.examples))
    c.choose("learning_rate", rate, rate_reason if method != "preference" else f"{rate_reason}, as supervised")
    if method == "supervised+preference":
        c.choose(
            "preference_epochs",
            *_bounded_epochs(PREFERENCE_EPOCHS, "a few passes after the supervised stage", data.examples),
        )
        c.choose(
            "preference_learning_rate",
            float(f"{rate * PREFERENCE_RATE_SHARE:.2g}"),
            f"{PREFERENCE_RATE_SHARE:g} of the supervised rate: the supervised stage taught the replies",
        )
    if c.given("max_steps") is not None:
        c.choose("max_steps", -1, "")


def _choose_batch(c: _Chooser, data: DataFacts) -> None:
    by_steps = max(1, data.examples // MIN_STEPS_PER_EPOCH)
    by_memory = max(1, TOKENS_PER_STEP // max(1, data.longest_tokens))
    batch = _power_of_two_at_most(min(by_steps, by_memory, MAX_BATCH_SIZE))
    if by_memory < min(by_steps, MAX_BATCH_SIZE):
        limit = f"{TOKENS_PER_STEP} tokens a step, {data.longest_tokens} in the longest example"
    elif by_steps < MAX_BATCH_SIZE:
        limit = f"{MIN_STEPS_PER_EPOCH} steps a pass over {data.examples} examples"
    else:
        limit = f"at most {MAX_BATCH_SIZE}"
    c.choose("batch_size", batch, f"a power of two, {limit}")


def _resolve_local(
    options: LocalOptions, *, method: str, data: DataFacts, model: ModelFacts, reference: str | None
) -> Hyperparameters:
    c = _Chooser(options)
    lora = _choose_lora(c, model)
    _choose_schedule(c, method, lora, data, model)
    _choose_batch(c, data)
    width = model.hidden_size
    if lora:
        rank = 16 if not width else min(64, max(8, 2 ** round(math.log2(width / 64))))
        rank = c.choose("lora_rank", rank, f"a 64th of width {width}, 8 to 64" if width else "width unknown")
        c.choose("lora_alpha", 2 * int(rank), "twice the rank")
    window = model.context
    c.choose(
        "max_length",
        min(window, MAX_LENGTH_CAP) if window else DEFAULT_MAX_LENGTH,
        f"the model's window (at most {MAX_LENGTH_CAP})" if window else "the model's window is unknown",
    )
    c.choose("seed", 0, "reproducible")
    notes: dict[str, str] = {}
    if _is_preference(method):
        c.choose("beta", BETA, "the DPO paper's")
        c.choose("rpo_alpha", RPO_ALPHA, "DPO plus the chosen replies' likelihood, so they stay right (RPO)")
        notes["reference"] = (
            "the supervised stage's model"
            if method == "supervised+preference"
            else f"the starting model, {reference or model.name}"
        )
    examples = f"{data.examples} examples" + (f", about {data.total_tokens} tokens" if data.total_tokens else "")
    return Hyperparameters("local", c.choices, basis=f"{model.describe()}; {examples}", notes=notes)


def _resolve_openai(options: OpenAIOptions, *, method: str) -> Hyperparameters:
    c = _Chooser(options)
    for name in ("n_epochs", "learning_rate_multiplier", "batch_size"):
        c.choose(name, AUTO, "OpenAI decides")
    if _is_preference(method):
        c.choose("beta", AUTO, "OpenAI decides")
    if c.given("seed") is not None:
        c.choose("seed", 0, "")
    return Hyperparameters("openai", c.choices, basis="OpenAI's fine-tuning")


# ---------------------------------------------------------------------------------------- the worker's view


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """The local trainer's resolved values, typed: what the worker trains with."""

    lora: bool
    epochs: float
    max_steps: int
    learning_rate: float
    batch_size: int
    lora_rank: int
    lora_alpha: float
    max_length: int
    seed: int
    beta: float
    rpo_alpha: float
    preference_epochs: float
    preference_learning_rate: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, method: str) -> LocalSettings:
        """Read resolved values (as :meth:`Hyperparameters.values` gives them); raises ``ValueError`` naming an
        option that is missing, still ``"auto"``, or invalid.  Options that the method does not use may be
        absent."""
        known = {k: v for k, v in values.items() if k in LocalOptions.model_fields}
        try:
            options = LocalOptions.model_validate(known)
        except ValidationError as exc:
            raise ValueError(f"Invalid hyperparameters: {_problems(exc)}.") from None

        def get(name: str, *, needed: bool = True, default: Any = None) -> Any:
            value = getattr(options, name)
            if value == AUTO:
                if needed:
                    raise ValueError(f"The hyperparameter `{name}` was not resolved.")
                return default
            return value

        lora = bool(get("lora"))
        preference = _is_preference(method)
        two_stages = method == "supervised+preference"
        max_steps = get("max_steps", needed=False, default=-1)
        return cls(
            lora=lora,
            epochs=float(get("epochs", needed=max_steps == -1, default=1.0)),
            max_steps=int(max_steps),
            learning_rate=float(get("learning_rate")),
            batch_size=int(get("batch_size")),
            lora_rank=int(get("lora_rank", needed=lora, default=0)),
            lora_alpha=float(get("lora_alpha", needed=lora, default=0.0)),
            max_length=int(get("max_length")),
            seed=int(get("seed")),
            beta=float(get("beta", needed=preference, default=BETA)),
            rpo_alpha=float(get("rpo_alpha", needed=preference, default=0.0)),
            preference_epochs=float(get("preference_epochs", needed=two_stages, default=0.0)),
            preference_learning_rate=float(get("preference_learning_rate", needed=two_stages, default=0.0)),
        )
