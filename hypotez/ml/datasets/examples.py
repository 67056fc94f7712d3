"""Training examples: their kinds and labels, the content hash that deduplicates them, chat examples and
preference pairs, and the examples built from members' corrections (stored with each correction by
:class:`~hypotez.storage.repositories.CorrectionRepository`) and rated replies (``/dataset build``)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from hypotez.ml.tokens import estimate_tokens
from hypotez.storage.models import DatasetExample
from hypotez.storage.repositories import StoredExample

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from hypotez.storage.models import BotReply, Correction

__all__ = [
    "CHAT",
    "NEGATIVE",
    "POSITIVE",
    "PREFERENCE",
    "Example",
    "build_examples",
    "chat_example",
    "content_hash",
    "example_from_feedback",
    "examples_from_correction",
    "preference_example",
]

#: A stored example, as an ORM object or as plain values (:meth:`DatasetRepository.rows`).
Example = DatasetExample | StoredExample

CHAT = "chat"
PREFERENCE = "preference"
POSITIVE = "positive"
NEGATIVE = "negative"


def content_hash(payload: object) -> str:
    """A stable hash of an example's content, for deduplication."""
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def examples_from_correction(correction: Correction) -> list[DatasetExample]:
    """The supervised example and the preference pair a correction yields (not yet attached to a dataset).

    A correction of a reply the model could not give (empty, or the backend failed) yields the chat example only:
    a pair preferring an answer over nothing teaches preference training nothing."""
    context = [dict(m) for m in correction.context]
    chat = [*context, {"role": "assistant", "content": correction.corrected_text}]
    ref = f"correction:{correction.id}"
    examples = [
        DatasetExample(
            kind="chat",
            label="positive",
            origin="correction",
            source_ref=ref,
            messages=chat,
            content_hash=content_hash(chat),
            token_count=estimate_tokens(" ".join(m["content"] for m in chat)),
        ),
        DatasetExample(
            kind="preference",
            label="positive",
            origin="correction",
            source_ref=ref,
            messages=context,
            preferred=correction.corrected_text,
            rejected=correction.original_text,
            content_hash=content_hash([context, correction.corrected_text, correction.original_text]),
            token_count=estimate_tokens(
                " ".join([*(m["content"] for m in context), correction.corrected_text, correction.original_text])
            ),
        ),
    ]
    return examples if correction.original_text.strip() else examples[:1]


def chat_example(messages: list[dict[str, Any]], *, label: str, origin: str, ref: str | None) -> DatasetExample:
    """A supervised example (not yet attached to a dataset); hashed like :func:`examples_from_correction`.

    An assistant message may carry OpenAI's ``weight`` (0: context only, not learned; 1): it is kept."""
    return DatasetExample(
        kind=CHAT,
        label=label,
        origin=origin,
        source_ref=ref[:300] if ref else None,
        messages=messages,
        content_hash=content_hash(messages),
        token_count=estimate_tokens(" ".join(m["content"] for m in messages)),
    )


def preference_example(
    context: list[dict[str, Any]], preferred: str, rejected: str, *, label: str, origin: str, ref: str | None
) -> DatasetExample:
    """A preference pair (not yet attached to a dataset); hashed like :func:`examples_from_correction`."""
    return DatasetExample(
        kind=PREFERENCE,
        label=label,
        origin=origin,
        source_ref=ref[:300] if ref else None,
        messages=context,
        preferred=preferred,
        rejected=rejected,
        content_hash=content_hash([context, preferred, rejected]),
        token_count=estimate_tokens(" ".join([*(m["content"] for m in context), preferred, rejected])),
    )


def example_from_feedback(
    reply: BotReply, ratings: Sequence[tuple[str, int]], *, min_rating: int | None = None
) -> DatasetExample | None:
    """The reply as a chat example labelled by its ratings, or ``None`` when they do not decide.

    A thumb up counts 5, a thumb down 1, a rating its value.  Without ``min_rating``: a mean of 4 or more is
    positive, 2 or less negative, in between skipped.  With it: a mean at or above it is positive, else skipped.
    """
    if not ratings:
        return None
    scores = [(5 if rating > 0 else 1) if kind == "thumbs" else rating for kind, rating in ratings]
    mean = sum(scores) / len(scores)
    if min_rating is not None:
        label = POSITIVE if mean >= min_rating else None
    else:
        label = POSITIVE if mean >= 4 else NEGATIVE if mean <= 2 else None
    if label is None or not reply.content.strip():
        return None
    context = [{"role": str(m["role"]), "content": str(m["content"])} for m in reply.prompt_messages]
    messages = [*context, {"role": "assistant", "content": reply.content}]
    return chat_example(messages, label=label, origin="feedback", ref=f"reply:{reply.id}")


def build_examples(
    corrections: Iterable[Correction],
    rated: Iterable[tuple[BotReply, Sequence[tuple[str, int]]]],
    *,
    min_rating: int | None = None,
) -> tuple[list[DatasetExample], int]:
    """Examples from corrections (a supervised example and a preference pair each) and rated replies,
    without duplicates; returns them and how many duplicates were dropped."""
    examples: list[DatasetExample] = []
    seen: set[str] = set()
    duplicates = 0
    candidates: list[DatasetExample] = [e for c in corrections for e in examples_from_correction(c)]
    for reply, ratings in rated:
        example = example_from_feedback(reply, ratings, min_rating=min_rating)
        if example is not None:
            candidates.append(example)
    for example in candidates:
        if example.content_hash in seen:
            duplicates += 1
            continue
        seen.add(example.content_hash)
        examples.append(example)
    return examples, duplicates
