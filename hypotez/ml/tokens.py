"""Token counting without a network: a deterministic estimate close to BPE tokenizers' counts.

OpenAI's tokenizer files are downloaded on first use, which a bot must not depend on; local models count
with their own tokenizer where one is loaded.  The estimate counts a word as one token per four characters
(rounded up), each punctuation mark or symbol as one token, and non-Latin scripts by UTF-8 length, which
over-counts slightly: a budget built on it errs on the side of sending less.
"""

from __future__ import annotations

import math
import re

__all__ = ["estimate_tokens"]

_PIECES = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]+")


def estimate_tokens(text: str) -> int:
    """An estimate of how many tokens ``text`` is for GPT-style tokenizers."""
    total = 0
    for piece in _PIECES.findall(text):
        if piece.isascii():
            total += math.ceil(len(piece) / 4) if piece[0].isalnum() else len(piece)
        else:
            total += math.ceil(len(piece.encode("utf-8")) / 3)
    return total
