"""Token and cost estimates for OpenAI's hosted fine-tuning."""

from __future__ import annotations

from typing import Any

from hypotez.ml.tokens import estimate_tokens

__all__ = ["ESTIMATE_EPOCHS", "HOSTED_TRAINING_PRICES", "record_tokens", "training_costs"]

#: Epochs assumed by the training-cost estimate (OpenAI's usual automatic choice for small datasets).
ESTIMATE_EPOCHS = 3
#: OpenAI's published fine-tuning prices, USD per million training tokens (2025 price list; check before
#: relying on them).  OpenAI accepts no new fine-tuning jobs from 2027-01-06.
HOSTED_TRAINING_PRICES: dict[str, float] = {
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4o-2024-08-06": 25.00,
}


def record_tokens(record: dict[str, Any]) -> int:
    """Estimated tokens of one fine-tuning record, with OpenAI's few tokens of overhead per message."""
    messages: list[dict[str, Any]] = list(record.get("messages") or record.get("input", {}).get("messages", []))
    messages += list(record.get("preferred_output", [])) + list(record.get("non_preferred_output", []))
    return sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)


def training_costs(tokens: int, *, epochs: int = ESTIMATE_EPOCHS) -> dict[str, float]:
    """Estimated USD to train on ``tokens`` per epoch with OpenAI's hosted fine-tuning, by base model."""
    return {model: tokens * epochs * price / 1_000_000 for model, price in HOSTED_TRAINING_PRICES.items()}
