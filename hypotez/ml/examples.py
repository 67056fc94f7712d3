"""Training examples from corrections: the content hash that deduplicates examples, and the supervised example
and preference pair each correction yields (stored with it by
:class:`~hypotez.storage.repositories.CorrectionRepository`)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from hypotez.ml.tokens import estimate_tokens
from hypotez.storage.models import DatasetExample

if TYPE_CHECKING:
    from hypotez.storage.models import Correction

__all__ = ["content_hash", "examples_from_correction"]


def content_hash(payload: object) -> str:
    """A stable hash of an example's content, for deduplication."""
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def examples_from_correction(correction: Correction) -> list[DatasetExample]:
    """The supervised example and the preference pair a correction yields (not yet attached to a dataset)."""
    context = [dict(m) for m in correction.context]
    chat = [*context, {"role": "assistant", "content": correction.corrected_text}]
    ref = f"correction:{correction.id}"
    return [
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
