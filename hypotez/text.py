"""Splitting long text into Discord-sized messages without losing a character, and redacting secrets from
text that came from elsewhere (an upstream service's error) before members see it or it is stored."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["MESSAGE_LIMIT", "REDACTED", "REDACTED_LIMIT", "jsonl_line", "redact", "split_text"]

#: Discord's limit on a message's content, in characters.
MESSAGE_LIMIT = 2000


def _cut_point(text: str, limit: int) -> int:
    """Where to end a part: after a paragraph, line, sentence or word break, else at the limit."""
    window = text[:limit]
    for separator in ("\n\n", "\n", ". ", " "):
        index = window.rfind(separator)
        if index >= limit // 2:
            return index + len(separator)
    return limit


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` covering ``text`` exactly, each at most ``limit`` characters.

    Joining the parts gives back the text unchanged; breaks fall on paragraph, line, sentence or word
    boundaries where one lies in the second half of a part.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > limit:
        end = start + _cut_point(text[start:], limit)
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    return spans


#: What a removed secret reads as.
REDACTED = "[redacted]"
#: The most characters :func:`redact` keeps by default.
REDACTED_LIMIT = 300

# A header or field naming a credential, then its value (an optional scheme word such as ``Bearer`` included).
_CREDENTIAL_FIELD = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api[-_ ]?key|access[-_]?token|secret|password|token)"
    r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?:(?:bearer|basic|token|digest)\s+)?[^\s\"',;}\\]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# OpenAI-style keys: sk-..., sk-proj-..., and the like.
_KEY = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{6,}")
# Long runs of hex or base64 with both letters and digits: tokens, hashes, keys of other services.
_TOKEN = re.compile(r"(?<![\w+/=-])(?=[A-Za-z0-9+/_=-]*\d)(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_=-]{32,}")


def redact(text: str, *, secrets: Iterable[str | None] = (), limit: int | None = REDACTED_LIMIT) -> str:
    """``text`` fit to show or store: every one of ``secrets`` (the configured API key, say) and anything that
    looks like a credential — ``sk-...`` keys, ``Bearer ...`` tokens, ``Authorization:`` and ``api_key=``
    values, long hex or base64 tokens — replaced by ``[redacted]``, then cut to ``limit`` characters (``None``
    keeps it whole).  The full text belongs in the log only."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _CREDENTIAL_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY.sub(REDACTED, text)
    text = _TOKEN.sub(REDACTED, text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text


# JSON allows U+2028 and U+2029 raw inside strings, but line readers that follow Unicode's line breaks (Python's
# ``str.splitlines``, JavaScript before ES2019) split a JSONL line there.
_LINE_SEPARATORS = {ord("\u2028"): "\\u2028", ord("\u2029"): "\\u2029"}


def jsonl_line(value: object, *, sort_keys: bool = False, default: Callable[[Any], object] | None = None) -> str:
    """One JSONL line (newline included): ``value`` as UTF-8 JSON with U+2028 and U+2029
    escaped, so no reader splits the line inside a string.  Every JSONL file the project writes goes through
    this."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, default=default)
    return text.translate(_LINE_SEPARATORS) + "\n"
