"""Stored examples in OpenAI's fine-tuning formats (supervised and preference JSONL lines) and as CSV rows, the
files they are written to, and reproducible train/validation splits."""

from __future__ import annotations

import csv
import json
import os
import random
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hypotez.errors import InvalidInputError
from hypotez.ml.datasets.examples import CHAT, NEGATIVE, POSITIVE, PREFERENCE, content_hash
from hypotez.text import jsonl_line

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from hypotez.ml.datasets.examples import Example

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "csv_cell",
    "csv_rows",
    "loss_bearing_turns",
    "preference_records",
    "split_examples",
    "supervised_records",
    "trainable_prefix",
    "write_csv",
    "write_jsonl",
]

ExportFormat = Literal["openai-chat", "preference", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("openai-chat", "preference", "csv")

_T = TypeVar("_T")
_CSV_COLUMNS: tuple[str, ...] = ("prompt", "completion", "label", "origin", "context")
#: A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _pair(row: Example) -> tuple[str, str]:
    """(preferred, rejected) of a stored pair, the other way round when it is labelled negative."""
    preferred, rejected = row.preferred or "", row.rejected or ""
    return (rejected, preferred) if row.label == NEGATIVE else (preferred, rejected)


def _plain(messages: Iterable[Any], *, weights: bool = True) -> list[dict[str, Any]]:
    """Stored messages as OpenAI's: role and content, and an assistant turn's ``weight`` where one was given
    (``weights``; preference inputs take none)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        message: dict[str, Any] = {"role": str(m["role"]), "content": str(m["content"])}
        if weights and m.get("weight") in (0, 1) and message["role"] == "assistant":
            message["weight"] = int(m["weight"])
        out.append(message)
    return out


def loss_bearing_turns(messages: Sequence[Any]) -> list[int]:
    """The indexes of the turns a trainer learns from: assistant messages whose ``weight`` is not 0 (OpenAI's
    rule; no weight means 1)."""
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("weight", 1) != 0]


def trainable_prefix(messages: Sequence[Any]) -> list[dict[str, Any]] | None:
    """The conversation up to its last loss-bearing assistant turn, for a trainer that learns from the last
    turn alone (the earlier turns, weighted or not, are its context); ``None`` when no turn bears loss."""
    turns = loss_bearing_turns(messages)
    return [dict(m) for m in messages[: turns[-1] + 1]] if turns else None


def supervised_records(rows: Iterable[Example]) -> list[dict[str, Any]]:
    """OpenAI supervised fine-tuning lines, ``{"messages": [...]}``: positive chat examples and the preferred
    side of every pair, without duplicates."""
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        if row.kind == CHAT:
            if row.label != POSITIVE:
                continue
            messages = _plain(row.messages)
        else:
            messages = [*_plain(row.messages), {"role": "assistant", "content": _pair(row)[0]}]
        key = content_hash(messages)
        if key not in seen:
            seen.add(key)
            records.append({"messages": messages})
    return records


def _preference_record(context: list[dict[str, Any]], preferred: str, rejected: str) -> dict[str, Any]:
    return {
        "input": {"messages": context},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def preference_records(rows: Iterable[Example]) -> list[dict[str, Any]]:
    """OpenAI preference (DPO) lines: stored pairs, then a positive and a negative answer to the same
    conversation paired; without duplicates."""
    rows = list(rows)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(context: list[dict[str, Any]], preferred: str, rejected: str) -> None:
        key = content_hash([context, preferred, rejected])
        if key not in seen and preferred != rejected:
            seen.add(key)
            records.append(_preference_record(context, preferred, rejected))

    by_context: dict[str, tuple[list[dict[str, Any]], list[str], list[str]]] = {}
    for row in rows:
        if row.kind == PREFERENCE:
            add(_plain(row.messages, weights=False), *_pair(row))
        elif len(row.messages) >= 2:
            messages = _plain(row.messages, weights=False)
            context = messages[:-1]
            entry = by_context.setdefault(content_hash(context), (context, [], []))
            (entry[1] if row.label == POSITIVE else entry[2]).append(messages[-1]["content"])
    for context, good, bad in by_context.values():
        if good:
            for rejected in bad:
                add(context, good[0], rejected)
    return records


def csv_rows(rows: Iterable[Example]) -> list[dict[str, str]]:
    """Rows for a CSV export (``prompt``, ``completion``, ``label``, ``origin``, ``context``); a pair gives a
    positive and a negative row.  ``/dataset upload`` reads them back."""
    out: list[dict[str, str]] = []

    def add(messages: list[dict[str, Any]], completion: str, label: str, origin: str) -> None:
        split = len(messages) - 1 if messages and messages[-1]["role"] == "user" else len(messages)
        prompt = messages[split]["content"] if split < len(messages) else ""
        context = json.dumps(messages[:split], ensure_ascii=False) if split else ""
        out.append({"prompt": prompt, "completion": completion, "label": label, "origin": origin, "context": context})

    for row in rows:
        messages = _plain(row.messages)
        if row.kind == CHAT:
            add(messages[:-1], messages[-1]["content"], row.label, row.origin)
        else:
            preferred, rejected = _pair(row)
            add(messages, preferred, POSITIVE, row.origin)
            add(messages, rejected, NEGATIVE, row.origin)
    return out


def split_examples(examples: Sequence[_T], validation: float, *, seed: int = 0) -> tuple[list[_T], list[_T]]:
    """A reproducible train/validation split: ``validation`` is the fraction held out (0 holds out nothing).

    With a fraction above 0 and at least two examples, both parts get at least one.  Order is kept.
    """
    if not 0 <= validation < 1:
        raise InvalidInputError("The validation share must be at least 0 and below 1 (e.g. 0.1 for 10 %).")
    count = len(examples)
    if validation == 0 or count < 2:
        return list(examples), []
    held = min(max(round(count * validation), 1), count - 1)
    order = list(range(count))
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible split, not a secret
    chosen = set(order[:held])
    return [e for i, e in enumerate(examples) if i not in chosen], [e for i, e in enumerate(examples) if i in chosen]


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(jsonl_line(record))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def csv_cell(value: object) -> str:
    """A cell as written to a CSV file: one a spreadsheet would run as a formula (starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return) gets a leading ``'``, as OWASP recommends."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def from_csv_cell(text: str) -> str:
    """The value :func:`csv_cell` wrote: a CSV this project exported imports back as it was."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def write_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Rows to a CSV file, every field quoted and neutralised (:func:`csv_cell`): members' chat text is in it."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(_CSV_COLUMNS), quoting=csv.QUOTE_ALL)
            writer.writeheader()
            writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
