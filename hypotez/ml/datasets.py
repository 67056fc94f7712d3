"""Datasets: reading and validating example files, building from corrections and feedback, exporting in
OpenAI's fine-tuning formats, train/validation splits, and the catalog behind ``/dataset``.

Training code calls :func:`load_examples` (a dataset's examples as OpenAI fine-tuning records) and
:func:`split_examples`.

Files accepted (UTF-8; line numbers are reported for every problem):

``.jsonl``, one JSON object a line, in one of three shapes:
    ``{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", "content": ...}]}``
    ``{"prompt": ..., "completion": ...}``
    ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": ...}],
    "non_preferred_output": [{"role": "assistant", "content": ...}]}``
``.csv``, a header naming ``prompt`` and ``completion`` (optional: ``system``; ``context``, a JSON list of the
    messages before the prompt; ``label``); one example a row.
``.txt``, one example a line: the prompt, a tab, the completion.  ``\\n``, ``\\t`` and ``\\\\`` stand for a
    newline, a tab and a backslash; blank lines and lines starting with ``#`` are skipped.

Every example is labelled ``positive`` (what the model should do) or ``negative`` (what it should not); an
optional ``label`` field or column overrides the label chosen for the whole file.  A negative preference pair
is read as the same pair the other way round.  For supervised training only positive chat examples (and the
preferred side of pairs) are used; preference training also pairs a positive and a negative answer to the
same conversation.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.examples import content_hash, examples_from_correction
from hypotez.ml.tokens import estimate_tokens
from hypotez.storage.files import DATASETS, EXPORTS, TMP, safe_filename
from hypotez.storage.models import DatasetExample, utcnow
from hypotez.storage.repositories import CorrectionRepository, DatasetRepository, StoredExample

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

    from hypotez.config import Settings
    from hypotez.storage.db import Database
    from hypotez.storage.files import ArchiveInfo, DataDirectory
    from hypotez.storage.models import BotReply, Correction, Dataset
    from hypotez.storage.repositories import AuditLog, DatasetCounts

#: A stored example, as an ORM object or as plain values (:meth:`DatasetRepository.rows`).
Example = DatasetExample | StoredExample

__all__ = [
    "EXPORT_FORMATS",
    "HOSTED_TRAINING_PRICES",
    "SUPPORTED_SUFFIXES",
    "BuildReport",
    "DatasetCatalog",
    "DatasetDescription",
    "ExportResult",
    "ImportReport",
    "ParsedFile",
    "Problem",
    "build_examples",
    "chat_example",
    "csv_rows",
    "example_from_feedback",
    "example_from_record",
    "load_examples",
    "parse_file",
    "preference_example",
    "preference_records",
    "split_examples",
    "supervised_records",
    "training_costs",
]

CHAT = "chat"
PREFERENCE = "preference"
POSITIVE = "positive"
NEGATIVE = "negative"
SUPPORTED_SUFFIXES = (".jsonl", ".csv", ".txt")
ExportFormat = Literal["openai-chat", "preference", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("openai-chat", "preference", "csv")
ROLES = frozenset({"system", "developer", "user", "assistant"})
#: Problems shown in a reply (all of them are in the error's ``details``).
SHOWN_PROBLEMS = 10
#: Problems kept per file; past this only the count grows.
KEPT_PROBLEMS = 500
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

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
_NAME = re.compile(r"^\w[\w.-]{0,63}$")
_ESCAPE = re.compile(r"\\(.)")
_CSV_COLUMNS: tuple[str, ...] = ("prompt", "completion", "label", "origin", "context")


# ----------------------------------------------------------------------------------------------------------
# Parsing and validation
# ----------------------------------------------------------------------------------------------------------


class _BadLineError(Exception):
    """One line (or row) cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one line of a file was not imported."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.source} line {self.line}" if self.source else f"line {self.line}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ParsedFile:
    """The examples read from one file, and the problems found in it."""

    source: str
    examples: list[DatasetExample] = field(default_factory=list[DatasetExample])
    problems: list[Problem] = field(default_factory=list[Problem])
    problem_count: int = 0
    duplicates: int = 0
    lines: int = 0

    def problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append(Problem(self.source, line, message))


def parse_file(path: Path, *, label: str, origin: str, source: str, max_tokens: int) -> ParsedFile:
    """Read a ``.jsonl``, ``.csv`` or ``.txt`` file line by line (blocking: run it in a worker thread)."""
    readers = {".jsonl": _jsonl_records, ".csv": _csv_records, ".txt": _txt_records}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InvalidInputError(f"`{source}`: only .jsonl, .csv and .txt files can be imported.")
    parsed = ParsedFile(source)
    seen: set[str] = set()
    for line, record in reader(path):
        parsed.lines = line
        try:
            if isinstance(record, _BadLineError):
                raise record
            example = example_from_record(
                record, label=label, origin=origin, ref=f"{origin}:{source}:{line}", max_tokens=max_tokens
            )
        except _BadLineError as bad:
            parsed.problem(line, str(bad))
            continue
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):
            # A shape no check above foresaw: still this line's problem, not a failed import.
            _LOGGER.warning("unforeseen problem in %s line %d", source, line, exc_info=True)
            parsed.problem(line, "this line cannot be read as an example (check the types of its fields)")
            continue
        if example.content_hash in seen:
            parsed.duplicates += 1
            continue
        seen.add(example.content_hash)
        parsed.examples.append(example)
    return parsed


def _binary_lines(path: Path) -> Iterator[tuple[int, str | _BadLineError]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            data = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                yield number, data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                yield number, _BadLineError("not UTF-8 text")


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    for number, text in _binary_lines(path):
        if isinstance(text, _BadLineError):
            yield number, text
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, _BadLineError(f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield number, _BadLineError("the JSON is nested too deeply")
            continue
        if not isinstance(value, dict):
            yield number, _BadLineError("each line must be one JSON object")
            continue
        yield number, value


def _txt_records(path: Path) -> Iterator[tuple[int, Any]]:
    for number, text in _binary_lines(path):
        if isinstance(text, _BadLineError):
            yield number, text
            continue
        if (not text.strip() and "\t" not in text) or text.lstrip().startswith("#"):
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            problem = (
                "no tab between the prompt and the completion"
                if len(fields) == 1
                else (f"{len(fields) - 1} tabs; write tabs inside the text as \\t")
            )
            yield number, _BadLineError(problem)
            continue
        yield number, {"prompt": _unescape(fields[0]), "completion": _unescape(fields[1])}


def _unescape(text: str) -> str:
    table = {"n": "\n", "t": "\t", "\\": "\\"}
    return _ESCAPE.sub(lambda m: table.get(m[1], m[0]), text)


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        previous_end = 0
        try:
            header = next(reader, None)
            if header is None:
                return
            columns = [h.strip().lower() for h in header]
            previous_end = reader.line_num
            missing = [c for c in ("prompt", "completion") if c not in columns]
            if missing:
                yield (
                    1,
                    _BadLineError(
                        f"the header must name the columns `prompt` and `completion` (missing: {', '.join(missing)})"
                    ),
                )
                return
            for row in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    yield start, _BadLineError(f"{len(row)} columns; the header has {len(columns)}")
                    continue
                cells = dict(zip(columns, row, strict=True))
                record: dict[str, Any] = {"prompt": cells["prompt"], "completion": cells["completion"]}
                if cells.get("system", "").strip():
                    record["system"] = cells["system"]
                if cells.get("label", "").strip():
                    record["label"] = cells["label"].strip()
                if cells.get("context", "").strip():
                    try:
                        record["context"] = json.loads(cells["context"])
                    except json.JSONDecodeError as exc:
                        yield start, _BadLineError(f"the context column is not valid JSON ({exc.msg})")
                        continue
                    except RecursionError:
                        yield start, _BadLineError("the context column's JSON is nested too deeply")
                        continue
                yield start, record
        except UnicodeDecodeError:
            yield previous_end + 1, _BadLineError("not UTF-8 text (the rest of the file was not read)")
        except csv.Error as exc:
            yield previous_end + 1, _BadLineError(f"not valid CSV ({exc})")


def example_from_record(
    record: dict[str, Any], *, label: str, origin: str, ref: str, max_tokens: int
) -> DatasetExample:
    """One example from a parsed line in any accepted shape; raises with the reason when it is not usable."""
    label = _label(record.get("label"), label)
    if "messages" in record:
        messages = _messages(record["messages"], "messages")
        _check_chat(messages)
        example = chat_example(messages, label=label, origin=origin, ref=ref)
    elif {"input", "preferred_output", "non_preferred_output"} & record.keys():
        context, preferred, rejected = _preference_parts(record)
        example = preference_example(context, preferred, rejected, label=label, origin=origin, ref=ref)
    elif "prompt" in record or "completion" in record:
        example = chat_example(_prompt_completion(record), label=label, origin=origin, ref=ref)
    else:
        raise _BadLineError(
            "expected `messages`; or `prompt` and `completion`; or `input`, `preferred_output` and "
            "`non_preferred_output`"
        )
    if example.token_count > max_tokens:
        raise _BadLineError(f"about {example.token_count:,} tokens long; the limit is {max_tokens:,}")
    return example


def _preference_parts(record: dict[str, Any]) -> tuple[list[dict[str, str]], str, str]:
    for key in ("input", "preferred_output", "non_preferred_output"):
        if key not in record:
            raise _BadLineError(
                f"a preference example needs `input`, `preferred_output` and `non_preferred_output`; `{key}` is missing"
            )
    source = record["input"]
    if not isinstance(source, dict) or "messages" not in source:
        raise _BadLineError("`input` must be an object with `messages`")
    context = _messages(cast("dict[str, Any]", source)["messages"], "input messages")
    if not any(m["role"] == "user" for m in context):
        raise _BadLineError("the input has no user message")
    if context[-1]["role"] == "assistant":
        raise _BadLineError("the last input message is the assistant's; the input must end with the user's turn")
    preferred = _single_reply(record["preferred_output"], "preferred_output")
    rejected = _single_reply(record["non_preferred_output"], "non_preferred_output")
    if preferred == rejected:
        raise _BadLineError("`preferred_output` and `non_preferred_output` are the same")
    return context, preferred, rejected


def _prompt_completion(record: dict[str, Any]) -> list[dict[str, str]]:
    prompt = _text(record.get("prompt"), "the prompt")
    completion = _text(record.get("completion"), "the completion")
    context: list[dict[str, str]] = []
    if "system" in record:
        context.append({"role": "system", "content": _text(record["system"], "the system message")})
    if "context" in record:
        context += _messages(record["context"], "context")
    return [*context, {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _label(value: object, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in {POSITIVE, NEGATIVE}:
        return value.strip().lower()
    raise _BadLineError("`label` must be `positive` or `negative`")


def _kind_of(value: object) -> str:
    """How a JSON value that is not what was wanted is named in a problem."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "not text"


def _valid_text(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadLineError(f"{what} holds an invalid character (an unpaired \\u surrogate escape)") from None
    return value


def _text(value: object, what: str) -> str:
    if value is None:
        raise _BadLineError(f"{what} is missing")
    if not isinstance(value, str):
        raise _BadLineError(f"{what} must be text, not {_kind_of(value)}")
    if not value.strip():
        raise _BadLineError(f"{what} is empty")
    return _valid_text(value, what)


def _content(value: object, where: str) -> str:
    if isinstance(value, list):
        texts: list[str] = []
        for part in cast("list[Any]", value):
            if not isinstance(part, dict) or cast("dict[str, Any]", part).get("type") != "text":
                raise _BadLineError(f"{where} has content other than text; only text can be trained here")
            text = cast("dict[str, Any]", part).get("text", "")
            if not isinstance(text, str):
                raise _BadLineError(f"{where}: a text part's `text` must be text, not {_kind_of(text)}")
            texts.append(text)
        value = "".join(texts)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _BadLineError(f"{where} has empty content")
    if not isinstance(value, str):
        raise _BadLineError(f"{where}: content must be text, not {_kind_of(value)}")
    return _valid_text(value, where)


def _messages(value: object, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _BadLineError(f"`{where}` must be a non-empty list of messages")
    messages: list[dict[str, str]] = []
    for index, item in enumerate(cast("list[Any]", value), start=1):
        if not isinstance(item, dict):
            raise _BadLineError(f"{where}: message {index} is not an object")
        message = cast("dict[str, Any]", item)
        role = message.get("role")
        if role is None:
            raise _BadLineError(f"{where}: message {index} has no role")
        if not isinstance(role, str):
            raise _BadLineError(
                f"{where}: message {index}'s role must be text (system, user or assistant), not {_kind_of(role)}"
            )
        if role not in ROLES:
            raise _BadLineError(
                f"{where}: message {index} has the role `{_show_text(role, 30)}`; use system, user or assistant"
            )
        messages.append({"role": role, "content": _content(message.get("content"), f"message {index} ({role})")})
    return messages


def _show_text(text: str, limit: int) -> str:
    """A member's text, safe inside a problem line: no backticks or control characters, shortened."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text[:limit]).replace("`", "'")
    return cleaned + ("…" if len(text) > limit else "")


def _check_chat(messages: list[dict[str, str]]) -> None:
    if not any(m["role"] == "user" for m in messages):
        raise _BadLineError("no user message")
    if messages[-1]["role"] != "assistant":
        raise _BadLineError(f"the last message is the {messages[-1]['role']}'s; it must be the assistant's reply")


def _single_reply(value: object, key: str) -> str:
    if not isinstance(value, list) or len(cast("list[Any]", value)) != 1:
        raise _BadLineError(f"`{key}` must be a list holding one assistant message")
    [item] = cast("list[Any]", value)
    if not isinstance(item, dict) or cast("dict[str, Any]", item).get("role") != "assistant":
        raise _BadLineError(f"`{key}` must hold an assistant message")
    return _content(cast("dict[str, Any]", item).get("content"), f"`{key}`")


def chat_example(messages: list[dict[str, str]], *, label: str, origin: str, ref: str | None) -> DatasetExample:
    """A supervised example (not yet attached to a dataset); hashed like :func:`examples_from_correction`."""
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
    context: list[dict[str, str]], preferred: str, rejected: str, *, label: str, origin: str, ref: str | None
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


# ----------------------------------------------------------------------------------------------------------
# Building from corrections and feedback
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# OpenAI fine-tuning records, CSV rows, splits
# ----------------------------------------------------------------------------------------------------------


def _pair(row: Example) -> tuple[str, str]:
    """(preferred, rejected) of a stored pair, the other way round when it is labelled negative."""
    preferred, rejected = row.preferred or "", row.rejected or ""
    return (rejected, preferred) if row.label == NEGATIVE else (preferred, rejected)


def _plain(messages: Iterable[Any]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


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


def _preference_record(context: list[dict[str, str]], preferred: str, rejected: str) -> dict[str, Any]:
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

    def add(context: list[dict[str, str]], preferred: str, rejected: str) -> None:
        key = content_hash([context, preferred, rejected])
        if key not in seen and preferred != rejected:
            seen.add(key)
            records.append(_preference_record(context, preferred, rejected))

    by_context: dict[str, tuple[list[dict[str, str]], list[str], list[str]]] = {}
    for row in rows:
        if row.kind == PREFERENCE:
            add(_plain(row.messages), *_pair(row))
        elif len(row.messages) >= 2:
            messages = _plain(row.messages)
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

    def add(messages: list[dict[str, str]], completion: str, label: str, origin: str) -> None:
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


def record_tokens(record: dict[str, Any]) -> int:
    """Estimated tokens of one fine-tuning record, with OpenAI's few tokens of overhead per message."""
    messages: list[dict[str, Any]] = list(record.get("messages") or record.get("input", {}).get("messages", []))
    messages += list(record.get("preferred_output", [])) + list(record.get("non_preferred_output", []))
    return sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)


def training_costs(tokens: int, *, epochs: int = ESTIMATE_EPOCHS) -> dict[str, float]:
    """Estimated USD to train on ``tokens`` per epoch with OpenAI's hosted fine-tuning, by base model."""
    return {model: tokens * epochs * price / 1_000_000 for model, price in HOSTED_TRAINING_PRICES.items()}


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(_CSV_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# For training
# ----------------------------------------------------------------------------------------------------------


async def load_examples(
    db: DatasetRepository | Database, dataset: int | str, kind: str, *, guild_id: int | None = None
) -> list[dict[str, Any]]:
    """A dataset's examples as OpenAI fine-tuning records.

    ``db`` is the dataset repository (or the database it reads).
    ``dataset`` is a dataset id, or a name (``name`` or ``name@version``) in ``guild_id``'s datasets.
    ``kind`` is ``"supervised"`` (``{"messages": [...]}`` lines) or ``"preference"`` (DPO lines:
    ``{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}``).
    Raises :class:`NotFoundError` for an unknown dataset; returns ``[]`` when it has no examples of that kind.
    Split with :func:`split_examples`.  The examples are read in chunks and turned into records in a worker
    thread, so a large dataset does not hold up the event loop.
    """
    repository = db if isinstance(db, DatasetRepository) else DatasetRepository(db)
    if isinstance(dataset, int):
        row = await repository.get(dataset)
        if row is None:
            raise NotFoundError("dataset", dataset, f"No dataset with id {dataset} exists.")
    else:
        if guild_id is None:
            raise ValueError("a dataset given by name needs its guild_id")
        row = await repository.resolve(guild_id, dataset)
    if kind not in {"supervised", "preference"}:
        raise ValueError(f"unknown kind of examples: {kind!r} (supervised or preference)")
    rows = await repository.rows(row.id)
    return await asyncio.to_thread(supervised_records if kind == "supervised" else preference_records, rows)


# ----------------------------------------------------------------------------------------------------------
# The catalog behind /dataset
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import stored."""

    dataset: Dataset
    files: int
    added: int
    duplicates: int
    skipped: int
    problems: list[Problem]
    archive: ArchiveInfo | None = None

    def summary(self) -> str:
        text = (
            f"Imported {self.added:,} example{'s' if self.added != 1 else ''} into `{self.dataset.name}` "
            f"(version {self.dataset.version})"
        )
        if self.files > 1:
            text += f" from {self.files} files"
        text += "."
        if self.duplicates:
            text += f" {self.duplicates:,} duplicate{'s were' if self.duplicates != 1 else ' was'} left out."
        if self.skipped:
            text += f"\nSkipped {self.skipped:,} bad line{'s' if self.skipped != 1 else ''}:\n" + _problem_lines(
                self.problems, self.skipped
            )
        if self.archive is not None:
            text += f"\nThe directory was archived as `archive/{self.archive.name}`."
            if self.archive.kept:
                text += f" {len(self.archive.kept)} file(s) changed while archiving and were left in place."
        return _clip(text)


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What ``/dataset build`` stored."""

    dataset: Dataset
    corrections: int
    rated_replies: int
    added: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class DatasetDescription:
    """Everything ``/dataset show`` tells about a dataset version."""

    dataset: Dataset
    versions: list[Dataset]
    counts: DatasetCounts
    supervised: int
    preference: int
    supervised_tokens: int
    costs: dict[str, float]
    sample_chat: dict[str, Any] | None
    sample_pair: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Files written by an export, and how many records each part holds."""

    dataset: Dataset
    format: str
    stem: str
    paths: list[Path]
    train: int
    validation: int


def _clip(text: str, limit: int = 1990) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem_lines(problems: Sequence[Problem], total: int) -> str:
    shown = [f"• {_clip(str(p), 150)}" for p in problems[:SHOWN_PROBLEMS]]
    if total > len(shown):
        shown.append(f"… and {total - len(shown):,} more.")
    return "\n".join(shown)


class DatasetCatalog:
    """Dataset operations for one bot: imports, builds, descriptions, exports and archives, each audited."""

    def __init__(
        self, settings: Settings, repository: DatasetRepository, files: DataDirectory, audit: AuditLog
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.files = files
        self.audit = audit

    @staticmethod
    def check_name(name: str) -> str:
        """A valid name for a dataset that members write to."""
        name = name.strip()
        if not _NAME.match(name):
            raise InvalidInputError(
                f"`{name[:80]}` cannot name a dataset: use up to 64 letters, digits, `.`, `_` or `-`, "
                "starting with a letter or digit."
            )
        if name == CorrectionRepository.DATASET:
            raise InvalidInputError(
                "`corrections` is kept up to date from members' corrections; choose another name "
                "(`/dataset build` makes a snapshot of it)."
            )
        return name

    async def _parse(self, path: Path, *, label: str, origin: str, source: str) -> ParsedFile:
        return await asyncio.to_thread(
            parse_file,
            path,
            label=label,
            origin=origin,
            source=source,
            max_tokens=self.settings.dataset_max_example_tokens,
        )

    async def import_file(
        self,
        path: Path,
        *,
        filename: str,
        guild_id: int,
        actor_id: int | None,
        name: str,
        positive: bool,
        skip_bad: bool = False,
    ) -> ImportReport:
        """Import an uploaded file into a new version of ``name`` (the previous version's examples kept)."""
        name = self.check_name(name)
        parsed = await self._parse(path, label=POSITIVE if positive else NEGATIVE, origin="upload", source=filename)
        return await self._store(
            [parsed],
            guild_id=guild_id,
            actor_id=actor_id,
            name=name,
            skip_bad=skip_bad,
            action="dataset.upload",
            target=filename,
            what=f"`{filename}`",
        )

    async def import_directory(
        self,
        path: str,
        *,
        guild_id: int,
        actor_id: int | None,
        name: str | None,
        positive: bool,
        skip_bad: bool = False,
        archive: bool = True,
    ) -> ImportReport:
        """Import every dataset file under ``datasets/<path>`` of the guild's area, then (unless ``archive`` is
        false) zip the directory into the guild's ``archive/`` and remove it."""
        area = self.files.for_guild(guild_id)
        directory = await area.directory(path, area=DATASETS)
        name = self.check_name(name if name else safe_filename(directory.name, default="dataset"))
        files = await asyncio.to_thread(area.dataset_files, directory, SUPPORTED_SUFFIXES)
        rel = area.relative(directory)
        if not files:
            raise InvalidInputError(f"`{rel}` has no .jsonl, .csv or .txt files to import.")
        label = POSITIVE if positive else NEGATIVE
        parsed = [
            await self._parse(p, label=label, origin="directory", source=p.relative_to(directory).as_posix())
            for p in files
        ]
        report = await self._store(
            parsed,
            guild_id=guild_id,
            actor_id=actor_id,
            name=name,
            skip_bad=skip_bad,
            action="dataset.select",
            target=rel,
            what=f"`{rel}`",
        )
        if not archive:
            return report
        info = await area.archive_directory(directory)
        await self.audit.record(
            "archive.create",
            guild_id=guild_id,
            actor_id=actor_id,
            target=rel,
            details={"archive": info.name, "files": len(info.files), "kept": info.kept},
        )
        return ImportReport(
            report.dataset, report.files, report.added, report.duplicates, report.skipped, report.problems, info
        )

    async def _store(
        self,
        parsed: Sequence[ParsedFile],
        *,
        guild_id: int,
        actor_id: int | None,
        name: str,
        skip_bad: bool,
        action: str,
        target: str,
        what: str,
    ) -> ImportReport:
        problems = [p for f in parsed for p in f.problems]
        problem_count = sum(f.problem_count for f in parsed)
        if problem_count and not skip_bad:
            await self.audit.record(
                f"{action}.rejected",
                guild_id=guild_id,
                actor_id=actor_id,
                target=target[:300],
                details={"dataset": name, "problems": problem_count},
            )
            raise InvalidInputError(
                _clip(
                    f"Nothing was imported: {what} has {problem_count:,} problem{'s' if problem_count != 1 else ''}. "
                    "Fix them, or run the command again with `skip_bad:True` to import only the valid lines.\n"
                    + _problem_lines(problems, problem_count)
                ),
                details=[str(p) for p in problems],
            )
        examples, repeated = await asyncio.to_thread(_unique, [e for f in parsed for e in f.examples])
        duplicates = sum(f.duplicates for f in parsed) + repeated
        if not examples:
            raise InvalidInputError(f"Nothing was imported: {what} holds no usable examples.")
        dataset, added, already = await self.repository.add_version(
            guild_id, name, examples, created_by=actor_id, description=f"Imported from {target}"[:500]
        )
        await self.audit.record(
            action,
            guild_id=guild_id,
            actor_id=actor_id,
            target=target[:300],
            details={
                "dataset_id": dataset.id,
                "dataset": name,
                "version": dataset.version,
                "added": added,
                "duplicates": duplicates + already,
                "skipped": problem_count,
            },
        )
        return ImportReport(dataset, len(parsed), added, duplicates + already, problem_count, problems)

    async def build(
        self,
        *,
        guild_id: int,
        actor_id: int | None,
        name: str,
        days: int | None = None,
        channel_id: int | None = None,
        model: str | None = None,
        min_rating: int | None = None,
    ) -> BuildReport:
        """A new version of ``name`` from the guild's corrections and rated replies matching the filters."""
        name = self.check_name(name)
        if min_rating is not None and not 1 <= min_rating <= 5:
            raise InvalidInputError("`min_rating` is a rating from 1 to 5.")
        since = utcnow() - dt.timedelta(days=days) if days else None
        filters = {"days": days, "channel_id": channel_id, "model": model, "min_rating": min_rating}
        corrections = await self.repository.corrections_for_build(
            guild_id, since=since, channel_id=channel_id, model=model
        )
        rated = await self.repository.rated_replies(guild_id, since=since, channel_id=channel_id, model=model)
        examples, duplicates = await asyncio.to_thread(build_examples, corrections, rated, min_rating=min_rating)
        if not examples:
            raise InvalidInputError(
                "No corrections or rated replies match these filters, so no dataset was built. "
                "Widen the period or drop a filter."
            )
        described = ", ".join(f"{k}={v}" for k, v in filters.items() if v is not None) or "no filters"
        dataset, added, _ = await self.repository.add_version(
            guild_id,
            name,
            examples,
            created_by=actor_id,
            description=f"Built from corrections and feedback ({described})",
            extend=False,
        )
        await self.audit.record(
            "dataset.build",
            guild_id=guild_id,
            actor_id=actor_id,
            target=name,
            details={"dataset_id": dataset.id, "version": dataset.version, "added": added, **filters},
        )
        return BuildReport(dataset, len(corrections), len(rated), added, duplicates)

    async def summaries(self, guild_id: int, *, include_archived: bool = False) -> list[tuple[Dataset, DatasetCounts]]:
        """The newest version of each dataset, with its counts."""
        datasets = await self.repository.latest(guild_id, include_archived=include_archived)
        counts = await self.repository.counts([d.id for d in datasets])
        return [(d, counts[d.id]) for d in datasets]

    async def describe(self, guild_id: int, ref: str) -> DatasetDescription:
        """Counts by label and origin, tokens, the training-cost estimate and a sample of one version.

        Counted by the database (:meth:`DatasetRepository.overview`); only a version holding both positive and
        negative chat examples, whose answers to the same conversation pair up for preference training, is read
        whole to count those pairs (in chunks, paired in a worker thread).
        """
        dataset = await self.repository.resolve(guild_id, ref, include_archived="@" in ref)
        versions = await self.repository.versions(guild_id, dataset.name)
        counts = (await self.repository.counts([dataset.id]))[dataset.id]
        overview = await self.repository.overview(dataset.id)
        sample_chat = supervised_records([overview.sample_supervised]) if overview.sample_supervised else []
        pairs = preference_records([overview.sample_pair]) if overview.sample_pair else []
        preference = overview.stored_pairs
        if overview.positive_chats and overview.negative_chats:
            pairs = await asyncio.to_thread(preference_records, await self.repository.rows(dataset.id))
            preference = len(pairs)
        return DatasetDescription(
            dataset=dataset,
            versions=versions,
            counts=counts,
            supervised=overview.supervised,
            preference=preference,
            supervised_tokens=overview.supervised_tokens,
            costs=training_costs(overview.supervised_tokens),
            sample_chat=sample_chat[0] if sample_chat else None,
            sample_pair=pairs[0] if pairs else None,
        )

    async def export(
        self, *, guild_id: int, actor_id: int | None, ref: str, fmt: str, validation: float = 0.0
    ) -> ExportResult:
        """Write a version as ``openai-chat``, ``preference`` or ``csv`` files under the guild's ``exports/``."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(f"`{fmt[:40]}` is not an export format: use {', '.join(EXPORT_FORMATS)}.")
        area = self.files.for_guild(guild_id)
        dataset = await self.repository.resolve(guild_id, ref, include_archived="@" in ref)
        rows = await self.repository.rows(dataset.id)
        builder = {"openai-chat": supervised_records, "preference": preference_records, "csv": csv_rows}[fmt]
        records = cast("list[dict[str, Any]]", await asyncio.to_thread(builder, rows))
        if not records:
            hint = (
                " Preference pairs come from corrections, preference files, or a positive and a negative answer "
                "to the same conversation."
                if fmt == "preference"
                else ""
            )
            raise InvalidInputError(f"`{dataset.name}` (version {dataset.version}) has no {fmt} examples.{hint}")
        train, held = await asyncio.to_thread(split_examples, records, validation)
        folder = area.root / EXPORTS
        suffix = ".csv" if fmt == "csv" else ".jsonl"
        stem = f"{safe_filename(dataset.name, default='dataset')}-v{dataset.version}" + (
            "" if fmt == "csv" else f".{fmt}"
        )
        parts = [("", train)] if not held else [(".train", train), (".validation", held)]
        writer = _write_csv if fmt == "csv" else _write_jsonl

        def write() -> list[Path]:
            folder.mkdir(parents=True, exist_ok=True)
            paths: list[Path] = []
            for part, items in parts:
                path = folder / f"{stem}{part}{suffix}"
                writer(path, items)
                paths.append(path)
            return paths

        paths = await asyncio.to_thread(write)
        await self.audit.record(
            "dataset.export",
            guild_id=guild_id,
            actor_id=actor_id,
            target=dataset.name,
            details={
                "dataset_id": dataset.id,
                "version": dataset.version,
                "format": fmt,
                "train": len(train),
                "validation": len(held),
                "files": [area.relative(p) for p in paths],
            },
        )
        return ExportResult(dataset, fmt, stem, paths, len(train), len(held))

    async def archive(self, *, guild_id: int, actor_id: int | None, name: str) -> ArchiveInfo:
        """Zip every live version of ``name`` (JSONL and CSV, with its exported files) into the archive area,
        verified, then mark it archived and remove the exported files."""
        name = name.strip()
        if name == CorrectionRepository.DATASET:
            raise InvalidInputError(
                "`corrections` is kept up to date from members' corrections and cannot be archived; "
                "archive a snapshot from `/dataset build` instead."
            )
        await self.repository.resolve(guild_id, name)  # NotFoundError with the name
        versions = [v for v in await self.repository.versions(guild_id, name) if v.archived_at is None]
        area = self.files.for_guild(guild_id)
        staging = area.root / TMP / f"archive-{uuid.uuid4().hex}"
        safe = safe_filename(name, default="dataset")
        exports = area.root / EXPORTS
        try:
            members: list[tuple[str, Path]] = []
            for version in versions:
                rows = await self.repository.rows(version.id)
                members += await asyncio.to_thread(_write_version, staging, f"v{version.version}/{safe}", rows)
            exported = await asyncio.to_thread(
                lambda: (
                    sorted(p for p in exports.glob(f"{safe}-v*") if p.is_file() and not p.is_symlink())
                    if exports.is_dir()
                    else []
                )
            )
            members += [(f"exports/{p.name}", p) for p in exported]
            info = await area.archive_files(
                f"dataset-{safe}", members, source=f"dataset:{name}", remove_originals=False
            )
            await self.repository.archive(guild_id, name)
            await asyncio.to_thread(_unlink_all, exported)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        await self.audit.record(
            "dataset.archive",
            guild_id=guild_id,
            actor_id=actor_id,
            target=name,
            details={"archive": info.name, "versions": [v.version for v in versions], "files": len(info.files)},
        )
        return info


def _unique(examples: Sequence[DatasetExample]) -> tuple[list[DatasetExample], int]:
    """``examples`` without repeated content, and how many repeats were dropped."""
    unique: list[DatasetExample] = []
    seen: set[str] = set()
    for example in examples:
        if example.content_hash not in seen:
            seen.add(example.content_hash)
            unique.append(example)
    return unique, len(examples) - len(unique)


def _write_version(staging: Path, stem: str, rows: Sequence[Example]) -> list[tuple[str, Path]]:
    """A version's supervised, preference and CSV files under ``staging`` (blocking); (name in the archive, path)
    of those that are not empty."""
    tables: list[tuple[str, list[dict[str, Any]], bool]] = [
        (f"{stem}.openai-chat.jsonl", supervised_records(rows), False),
        (f"{stem}.preference.jsonl", preference_records(rows), False),
        (f"{stem}.csv", cast("list[dict[str, Any]]", csv_rows(rows)), True),
    ]
    written: list[tuple[str, Path]] = []
    for arcname, records, is_csv in tables:
        if not records:
            continue
        path = staging / arcname
        path.parent.mkdir(parents=True, exist_ok=True)
        (_write_csv if is_csv else _write_jsonl)(path, records)
        written.append((arcname, path))
    return written


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
