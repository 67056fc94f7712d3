"""Reading example files: ``.jsonl``, ``.csv`` and ``.txt`` lines into records, each record validated into an
example, every problem reported with its line.

Files accepted (UTF-8; line numbers are reported for every problem):

``.jsonl``, one JSON object a line, in one of three shapes:
    ``{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", "content": ...}]}``
    (an assistant message may carry OpenAI's ``"weight": 0`` — shown as context, not learned — or ``1``)
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

import codecs
import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from hypotez.errors import InvalidInputError
from hypotez.ml.datasets.examples import NEGATIVE, POSITIVE, chat_example, preference_example
from hypotez.ml.datasets.formats import from_csv_cell
from hypotez.storage.models import DatasetExample

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "KEPT_PROBLEMS",
    "ROLES",
    "SUPPORTED_SUFFIXES",
    "ParsedFile",
    "Problem",
    "example_from_record",
    "iter_examples",
    "parse_file",
]

SUPPORTED_SUFFIXES = (".jsonl", ".csv", ".txt")
ROLES = frozenset({"system", "developer", "user", "assistant"})
#: Problems kept per file; past this only the count grows.
KEPT_PROBLEMS = 500

_LOGGER = logging.getLogger(__name__)
_ESCAPE = re.compile(r"\\(.)")


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
    """Read a ``.jsonl``, ``.csv`` or ``.txt`` file line by line (blocking: run it in a worker thread), every
    example kept in memory, repeated content once: for small files; imports stream with :func:`iter_examples`."""
    parsed = ParsedFile(source)
    seen: set[str] = set()
    for chunk in iter_examples(path, parsed, label=label, origin=origin, max_tokens=max_tokens):
        for example in chunk:
            if example.content_hash in seen:
                parsed.duplicates += 1
                continue
            seen.add(example.content_hash)
            parsed.examples.append(example)
    return parsed


def iter_examples(
    path: Path, parsed: ParsedFile, *, label: str, origin: str, max_tokens: int, chunk: int = 1000
) -> Iterator[list[DatasetExample]]:
    """The examples of a ``.jsonl``, ``.csv`` or ``.txt`` file, ``chunk`` at a time (blocking: advance it in a
    worker thread), as the file is read: memory stays flat in the number of lines.  Problems, and the last line
    read, are counted in ``parsed`` (whose ``examples`` stays empty); repeated content is not removed here.

    The suffix is checked at once, before the first chunk is asked for."""
    readers = {".jsonl": _jsonl_records, ".csv": _csv_records, ".txt": _txt_records}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InvalidInputError(f"`{parsed.source}`: only .jsonl, .csv and .txt files can be imported.")
    return _examples(reader(path), parsed, label=label, origin=origin, max_tokens=max_tokens, chunk=max(chunk, 1))


def _examples(
    records: Iterator[tuple[int, Any]], parsed: ParsedFile, *, label: str, origin: str, max_tokens: int, chunk: int
) -> Iterator[list[DatasetExample]]:
    source = parsed.source
    batch: list[DatasetExample] = []
    for line, record in records:
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
        batch.append(example)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


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
        except ValueError:  # an integer of more digits than Python converts (4,300)
            yield number, _BadLineError("the JSON holds a number with too many digits")
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


def _utf8_lines(handle: Iterator[str]) -> Iterator[str]:
    """The lines of a file read as Latin-1 (each byte one character, split at any line ending as ``newline=""``
    does), each decoded as UTF-8 on its own: a bad byte stops the reading at its own line, the rows before it
    kept (decoding the whole stream would fail a chunk early, at a wrong line)."""
    for number, line in enumerate(handle, start=1):
        data = line.encode("latin-1")
        yield (data.removeprefix(codecs.BOM_UTF8) if number == 1 else data).decode("utf-8")


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="latin-1", newline="") as handle:
        reader = csv.reader(_utf8_lines(handle))
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
                cells = {column: from_csv_cell(cell) for column, cell in zip(columns, row, strict=True)}
                record: dict[str, Any] = {"prompt": cells["prompt"], "completion": cells["completion"]}
                if cells.get("system", "").strip():
                    record["system"] = cells["system"]
                if cells.get("label", "").strip():
                    record["label"] = cells["label"].strip()
                if cells.get("context", "").strip():
                    context = _context_cell(cells["context"])
                    if isinstance(context, _BadLineError):
                        yield start, context
                        continue
                    record["context"] = context
                yield start, record
        except UnicodeDecodeError:
            yield previous_end + 1, _BadLineError("not UTF-8 text (the rest of the file was not read)")
        except csv.Error as exc:
            yield previous_end + 1, _BadLineError(f"not valid CSV ({exc})")


def _context_cell(text: str) -> Any:
    """The JSON in a CSV ``context`` cell, or the :class:`_BadLineError` saying why it cannot be read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return _BadLineError(f"the context column is not valid JSON ({exc.msg})")
    except RecursionError:
        return _BadLineError("the context column's JSON is nested too deeply")
    except ValueError:  # an integer of more digits than Python converts (4,300)
        return _BadLineError("the context column's JSON holds a number with too many digits")


def example_from_record(
    record: dict[str, Any], *, label: str, origin: str, ref: str, max_tokens: int
) -> DatasetExample:
    """One example from a parsed line in any accepted shape; raises with the reason when it is not usable."""
    label = _label(record.get("label"), label)
    if "messages" in record:
        messages = _messages(record["messages"], "messages", weights=True)
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


def _preference_parts(record: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str]:
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


def _prompt_completion(record: dict[str, Any]) -> list[dict[str, Any]]:
    prompt = _text(record.get("prompt"), "the prompt")
    completion = _text(record.get("completion"), "the completion")
    context: list[dict[str, Any]] = []
    if "system" in record:
        context.append({"role": "system", "content": _text(record["system"], "the system message")})
    if "context" in record:
        context += _messages(record["context"], "context", weights=True)
    return [*context, {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _label(value: object, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in {POSITIVE, NEGATIVE}:
        return value.strip().lower()
    raise _BadLineError("`label` must be `positive` or `negative`")


def _kind_of(value: object) -> str:
    """How a JSON value that is not what was wanted is named in a problem."""
    if value is None:
        return "null"
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


def _weight(value: object, role: str, where: str) -> int:
    """OpenAI's per-message ``weight``: 0 (the turn is context, not learned) or 1, on assistant turns only."""
    if role != "assistant":
        raise _BadLineError(f"{where}: `weight` applies to assistant messages only")
    if isinstance(value, bool) or value not in (0, 1):
        raise _BadLineError(f"{where}: `weight` must be 0 (not learned) or 1")
    return int(cast("int", value))


def _messages(value: object, where: str, *, weights: bool = False) -> list[dict[str, Any]]:
    """The messages of a line; ``weights``: a message's ``weight`` is kept (chat examples), else refused."""
    if not isinstance(value, list) or not value:
        raise _BadLineError(f"`{where}` must be a non-empty list of messages")
    messages: list[dict[str, Any]] = []
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
        kept: dict[str, Any] = {"role": role, "content": _content(message.get("content"), f"message {index} ({role})")}
        if "weight" in message:
            if not weights:
                raise _BadLineError(f"{where}: message {index} has a `weight`; only chat examples' messages take one")
            kept["weight"] = _weight(message["weight"], role, f"{where}: message {index} ({role})")
        messages.append(kept)
    return messages


def _show_text(text: str, limit: int) -> str:
    """A member's text, safe inside a problem line: no backticks or control characters, shortened."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text[:limit]).replace("`", "'")
    return cleaned + ("…" if len(text) > limit else "")


def _check_chat(messages: list[dict[str, Any]]) -> None:
    if not any(m["role"] == "user" for m in messages):
        raise _BadLineError("no user message")
    if messages[-1]["role"] != "assistant":
        raise _BadLineError(f"the last message is the {messages[-1]['role']}'s; it must be the assistant's reply")
    if all(m.get("weight") == 0 for m in messages if m["role"] == "assistant"):
        raise _BadLineError("every assistant message has `weight` 0: there is nothing to learn from this example")


def _single_reply(value: object, key: str) -> str:
    if not isinstance(value, list) or len(cast("list[Any]", value)) != 1:
        raise _BadLineError(f"`{key}` must be a list holding one assistant message")
    [item] = cast("list[Any]", value)
    if not isinstance(item, dict) or cast("dict[str, Any]", item).get("role") != "assistant":
        raise _BadLineError(f"`{key}` must hold an assistant message")
    return _content(cast("dict[str, Any]", item).get("content"), f"`{key}`")
