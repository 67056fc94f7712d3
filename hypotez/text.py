"""Splitting long text into Discord-sized messages without losing a character."""

from __future__ import annotations

__all__ = ["MESSAGE_LIMIT", "split_text"]

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
