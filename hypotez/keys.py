"""Custom ids for buttons and modals: built by one helper from named prefixes, parsed in one place.

A custom id is ``<prefix>:<arg>:<arg>...`` (Discord allows 100 characters).  Persistent components carry every
piece of state they need in their id, so they keep working after a restart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Key", "ParsedKey", "build_key", "parse_key"]

_SEP = ":"
_MAX = 100


class Key(enum.StrEnum):
    """Prefixes of every custom id hypotez issues."""

    RATE_UP = "hz.up"
    RATE_DOWN = "hz.down"
    CORRECT = "hz.correct"
    CORRECTION_MODAL = "hz.cm"
    CORRECTION_VIEW = "hz.cv"
    CORRECTION_UNDO = "hz.cu"
    FEEDBACK_MODAL = "hz.fm"
    JOB_CANCEL = "hz.jc"
    JOB_REFRESH = "hz.jr"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key: Key
    args: tuple[str, ...]

    def int_arg(self, index: int = 0) -> int:
        return int(self.args[index])


def build_key(key: Key, *args: object) -> str:
    """``build_key(Key.RATE_UP, 42)`` -> ``"hz.up:42"``."""
    parts = [str(a) for a in args]
    if any(_SEP in p for p in parts):
        raise ValueError("custom id arguments cannot contain ':'")
    custom_id = _SEP.join([key.value, *parts])
    if len(custom_id) > _MAX:
        raise ValueError(f"custom id too long ({len(custom_id)} > {_MAX})")
    return custom_id


def parse_key(custom_id: str) -> ParsedKey | None:
    """The key and arguments of a custom id, or ``None`` when it is not one of ours."""
    prefix, *args = custom_id.split(_SEP)
    try:
        return ParsedKey(Key(prefix), tuple(args))
    except ValueError:
        return None
