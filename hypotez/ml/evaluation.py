"""Evaluation (the original ``test`` / ``predict`` / ``handle_errors``): run a model on test data, score the
predictions against expected answers (and, optionally, by an LLM judge: :mod:`hypotez.ml.judge`), keep every
failure and error in a report for later analysis.

A training job's examples are kept with their part (train or held out): :func:`cases_from_records` turns them into
test cases, so a model is scored on what it never saw (generalisation) apart from what it learned (memorisation).
Two models are compared case by case (:func:`decide`): exact match first, then normalized match; similarity only
breaks the tie of two wrong answers."""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from hypotez.errors import HypotezError, InvalidInputError
from hypotez.text import jsonl_line

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.ml.chat import ChatBackend, ChatMessage

__all__ = [
    "HELD_OUT",
    "MAX_CASES",
    "MAX_TRAINING_CASES",
    "TIERS",
    "TRAINING",
    "Comparison",
    "EvalReport",
    "Outcome",
    "Prediction",
    "TestCase",
    "cases_from_records",
    "compare",
    "decide",
    "evaluate",
    "failure_line",
    "failure_lines",
    "normalize",
    "parse_test_data",
    "sample_evenly",
]

MAX_CASES = 1000
_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TestCase:
    """One prompt (a conversation ending with the user's turn) and, optionally, the expected answer."""

    __test__ = False  # not a pytest class

    messages: list[ChatMessage]
    expected: str | None = None
    line: int = 0

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


@dataclass(slots=True)
class Prediction:
    case: TestCase
    output: str | None
    error: str | None = None
    exact: bool | None = None
    normalized: bool | None = None
    similarity: float | None = None
    #: The part of a job's examples the case comes from (``held-out``, ``training``), if any.
    split: str | None = None
    #: The LLM judge's score (1-10) and reason, or why it gave none (its answer unreadable, its server failed).
    judge_score: float | None = None
    judge_reason: str | None = None
    judge_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.normalized is False

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "line": self.case.line,
            "messages": self.case.messages,
            "expected": self.case.expected,
            "output": self.output,
            "error": self.error,
            "failed": self.failed,
            "exact_match": self.exact,
            "normalized_match": self.normalized,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }
        if self.split is not None:
            record["split"] = self.split
        if self.judge_score is not None or self.judge_error is not None:
            record |= {
                "judge_score": self.judge_score,
                "judge_reason": self.judge_reason,
                "judge_error": self.judge_error,
            }
        return record


@dataclass(slots=True)
class EvalReport:
    model: str
    predictions: list[Prediction] = field(default_factory=list[Prediction])
    #: What the model was scored by: ``match`` (against expected answers) or ``judge`` (and an LLM judge).
    scorer: str = "match"
    #: The judge model and rubric, when one scored the answers.
    judge: dict[str, Any] | None = None

    @property
    def scored(self) -> list[Prediction]:
        return [p for p in self.predictions if p.case.expected is not None and p.error is None]

    @property
    def errors(self) -> int:
        return sum(1 for p in self.predictions if p.error is not None)

    def _rate(self, attr: str) -> float | None:
        with_expected = [p for p in self.predictions if p.case.expected is not None]
        if not with_expected:
            return None
        return sum(1 for p in with_expected if getattr(p, attr)) / len(with_expected)

    @property
    def exact_match(self) -> float | None:
        """Share of cases with an expected answer that the model matched exactly (errors count as misses)."""
        return self._rate("exact")

    @property
    def normalized_match(self) -> float | None:
        return self._rate("normalized")

    @property
    def similarity(self) -> float | None:
        scored = self.scored
        if not scored:
            return None
        return sum(p.similarity or 0.0 for p in scored) / len(scored)

    @property
    def failures(self) -> list[Prediction]:
        return [p for p in self.predictions if p.failed]

    @property
    def judged(self) -> list[Prediction]:
        return [p for p in self.predictions if p.judge_score is not None]

    @property
    def judge_errors(self) -> int:
        return sum(1 for p in self.predictions if p.judge_error is not None)

    @property
    def judge_mean(self) -> float | None:
        """The judge's mean score (1-10) over the cases it scored."""
        judged = self.judged
        return sum(p.judge_score or 0.0 for p in judged) / len(judged) if judged else None

    def splits(self) -> list[str]:
        """The parts of a job's examples the cases come from, in order of appearance."""
        return list(dict.fromkeys(p.split for p in self.predictions if p.split is not None))

    def part(self, split: str) -> EvalReport:
        """The report of one part's cases alone."""
        return EvalReport(self.model, [p for p in self.predictions if p.split == split], self.scorer, self.judge)

    def _totals(self) -> dict[str, Any]:
        totals: dict[str, Any] = {
            "cases": len(self.predictions),
            "errors": self.errors,
            "failures": len(self.failures),
            "exact_match": self.exact_match,
            "normalized_match": self.normalized_match,
            "similarity": self.similarity,
        }
        if self.scorer == "judge":
            totals |= {"judge_mean": self.judge_mean, "judged": len(self.judged), "judge_errors": self.judge_errors}
        return totals

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"model": self.model, "scorer": self.scorer, **self._totals()}
        if self.judge is not None:
            summary["judge"] = self.judge
        if splits := self.splits():
            summary["splits"] = {split: self.part(split)._totals() for split in splits}
        return summary

    def jsonl(self) -> str:
        """The report file: a summary line, then one line per case (failures and errors included, each with its
        expected answer and what the model said)."""
        return jsonl_line({"summary": self.summary()}) + "".join(jsonl_line(p.as_record()) for p in self.predictions)


_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Case, accents of compatibility forms, punctuation and spacing removed: "Paris." ~ "paris"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", folded).split())


def _case_from_object(obj: object, line: int) -> TestCase:
    if not isinstance(obj, dict):
        raise InvalidInputError(f"Line {line}: a test case is a JSON object, not {type(obj).__name__}.")
    item: dict[str, Any] = {str(k): v for k, v in obj.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    expected_raw = next((item[k] for k in ("expected", "answer", "completion") if k in item), None)
    if expected_raw is not None and not isinstance(expected_raw, str):
        raise InvalidInputError(f"Line {line}: `expected` must be text.")
    if "messages" in item:
        raw = item["messages"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInputError(f"Line {line}: `messages` must be a non-empty list.")
        messages: list[ChatMessage] = []
        for message in raw:  # pyright: ignore[reportUnknownVariableType]
            if (
                not isinstance(message, dict)
                or message.get("role") not in {"system", "user", "assistant"}  # pyright: ignore[reportUnknownMemberType]
                or not isinstance(message.get("content"), str)  # pyright: ignore[reportUnknownMemberType]
            ):
                raise InvalidInputError(
                    f"Line {line}: each message needs a role (system, user, assistant) and text content."
                )
            messages.append({"role": message["role"], "content": message["content"]})  # pyright: ignore[reportUnknownArgumentType]
        if messages[-1]["role"] == "assistant" and expected_raw is None:
            expected_raw = messages.pop()["content"]
        if not messages or messages[-1]["role"] != "user":
            raise InvalidInputError(f"Line {line}: the conversation must end with the user's turn.")
        return TestCase(messages, expected_raw, line)
    text = next((item[k] for k in ("text", "prompt", "input") if k in item), None)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"Line {line}: give `text` (or `messages`) to send to the model.")
    return TestCase([{"role": "user", "content": text}], expected_raw, line)


def _load_json(text: str, where: str) -> object:
    """``json.loads``; a :class:`json.JSONDecodeError` passes through, the other refusals are explained."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise InvalidInputError(f"{where}the JSON is nested too deeply.") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise InvalidInputError(f"{where}the JSON holds a number with too many digits.") from None


def _check_text(case: TestCase) -> None:
    texts = [m["content"] for m in case.messages] + ([case.expected] if case.expected is not None else [])
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"Line {case.line}: the text holds an invalid character (an unpaired \\u surrogate escape)."
            ) from None


def parse_test_data(raw: str) -> list[TestCase]:
    """Test cases from inline JSON (an object or a list of objects) or JSONL (one object per line)."""
    text = raw.strip()
    if not text:
        raise InvalidInputError("No test data given.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            "The test data holds an invalid character (an unpaired surrogate); send it as UTF-8 text."
        ) from None
    cases: list[TestCase] = []
    try:
        whole = _load_json(text, "The test data cannot be read: ")
    except json.JSONDecodeError:
        whole = None
        problems: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cases.append(_case_from_object(_load_json(line, f"Line {number}: "), number))
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not valid JSON ({exc.msg})")
            except InvalidInputError as exc:
                problems.append(str(exc).rstrip("."))
        if problems:
            shown = "; ".join(problems[:10])
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise InvalidInputError(f"The test data has problems: {shown}{more}. Nothing was run.") from None
    if whole is not None:
        items: list[object] = list(whole) if isinstance(whole, list) else [whole]  # pyright: ignore[reportUnknownArgumentType]
        cases = [_case_from_object(item, number) for number, item in enumerate(items, start=1)]
    if not cases:
        raise InvalidInputError("The test data holds no test cases.")
    for case in cases:
        _check_text(case)
    if len(cases) > MAX_CASES:
        raise InvalidInputError(f"At most {MAX_CASES} test cases at a time ({len(cases)} given).")
    return cases


def _score(prediction: Prediction) -> None:
    expected = prediction.case.expected
    if expected is None or prediction.output is None:
        return
    output = prediction.output.strip()
    prediction.exact = output == expected.strip()
    prediction.normalized = normalize(output) == normalize(expected)
    prediction.similarity = difflib.SequenceMatcher(None, normalize(output), normalize(expected)).ratio()


async def evaluate(
    backend: ChatBackend, model: str, cases: Sequence[TestCase], *, concurrency: int = 4, split: str | None = None
) -> EvalReport:
    """Run ``model`` on every case (at most ``concurrency`` at a time); errors are recorded, not raised.
    ``split`` names the part of a job's examples the cases come from (``held-out``, ``training``)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def run(case: TestCase) -> Prediction:
        async with semaphore:
            try:
                result = await backend.complete(case.messages, model)
            except HypotezError as exc:
                return Prediction(case, None, error=exc.user_message, split=split)
            except Exception as exc:  # one failing case is recorded; the others still run
                _LOGGER.exception("test case %s failed on %s", case.line, model)
                return Prediction(case, None, error=f"unexpected error ({type(exc).__name__})", split=split)
        prediction = Prediction(case, result.content, split=split)
        _score(prediction)
        return prediction

    predictions = await asyncio.gather(*(run(case) for case in cases))
    return EvalReport(model, list(predictions))


# ------------------------------------------------------------------------------------------ a job's examples

HELD_OUT = "held-out"
TRAINING = "training"
#: Training examples scored at most (evenly spaced over the part): memorisation needs a sample, not all.
MAX_TRAINING_CASES = 200


def cases_from_records(records: Sequence[dict[str, Any]]) -> list[TestCase]:
    """Test cases from fine-tuning records, as a training job was given them: a supervised record's last
    assistant turn (a preference record's preferred output) is the expected answer to the turns before it.
    Records of another shape, or not ending where a reply is expected, are skipped.  ``line`` is the record's
    position in its part, from 1."""
    cases: list[TestCase] = []
    for number, record in enumerate(records, start=1):
        if "messages" in record:
            raw: list[Any] = list(record["messages"])
            if len(raw) < 2 or raw[-1].get("role") != "assistant":
                continue
            prompt, expected = raw[:-1], str(raw[-1].get("content", ""))
        elif "input" in record and record.get("preferred_output"):
            prompt = list(record["input"].get("messages", []))
            expected = str(record["preferred_output"][-1].get("content", ""))
        else:
            continue
        messages: list[ChatMessage] = [
            {"role": m["role"], "content": str(m["content"])}
            for m in prompt
            if m.get("role") in {"system", "user", "assistant"}
        ]
        if messages and messages[-1]["role"] == "user":
            cases.append(TestCase(messages, expected, number))
    return cases


def sample_evenly(items: Sequence[_T], limit: int) -> list[_T]:
    """At most ``limit`` of ``items``, spread evenly over them (all of them when there are few)."""
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


# ---------------------------------------------------------------------------------------------- failures


def _quoted(text: str | None, limit: int) -> str:
    """A model's or a file's text for one line of a Discord message: on one line, no code markup, cut."""
    if text is None:
        return "—"
    flat = " ".join(text.replace("`", "'").split())
    return f"`{flat[:limit]}{'…' if len(flat) > limit else ''}`" if flat else "(empty)"


def failure_line(prediction: Prediction, *, limit: int = 80) -> str:
    """``❌ line 3 · `Capital of Italy?` — expected `Rome` · got `I am not sure.```` (⚠️ and the error for a
    case that failed to run)."""
    where = f"line {prediction.case.line}" + (f" ({prediction.split})" if prediction.split else "")
    prompt = _quoted(prediction.case.prompt, limit)
    if prediction.error is not None:
        return f"⚠️ {where} · {prompt} — error: {_quoted(prediction.error, limit * 2)}"
    return (
        f"❌ {where} · {prompt} — expected {_quoted(prediction.case.expected, limit)} · "
        f"got {_quoted(prediction.output, limit)}"
    )


def failure_lines(predictions: Sequence[Prediction], *, budget: int, limit: int = 80) -> list[str]:
    """The failures' lines that fit in ``budget`` characters (newlines counted), then how many more there are."""
    lines: list[str] = []
    used = 0
    for index, prediction in enumerate(predictions):
        line = failure_line(prediction, limit=limit)
        rest = len(predictions) - index
        more = f"… and {rest} more in the report"
        if used + len(line) + 1 + (len(more) + 1 if rest > 1 else 0) > budget:
            lines.append(more)
            break
        lines.append(line)
        used += len(line) + 1
    return lines


# ---------------------------------------------------------------------------------------------- comparing

#: The tiers a comparison is decided by, strongest first: one answer ran and the other failed to; exact match;
#: normalized match; and, only when neither answer matches, similarity to the expected answer.
TIERS: tuple[str, ...] = ("error", "exact", "normalized", "similarity")


@dataclass(frozen=True, slots=True)
class Outcome:
    """Who won one case (``a``, ``b`` or ``tie``) and by which tier (``None`` for a tie)."""

    winner: str
    tier: str | None = None
    #: Why a tie is a tie: ``both right``, ``both failed``, ``no expected answer``, ``equally close``.
    why: str | None = None


def decide(pa: Prediction, pb: Prediction) -> Outcome:  # noqa: PLR0911 - one return per rule, in order
    """Exact match first, then normalized match; similarity only breaks the tie of two wrong answers.  Two right
    answers tie; an answer that failed to run loses to one that ran."""
    if (pa.error is None) != (pb.error is None):
        return Outcome("a" if pa.error is None else "b", "error")
    if pa.error is not None:
        return Outcome("tie", why="both failed")
    if pa.case.expected is None:
        return Outcome("tie", why="no expected answer")
    for tier in ("exact", "normalized"):
        ra, rb = bool(getattr(pa, tier)), bool(getattr(pb, tier))
        if ra != rb:
            return Outcome("a" if ra else "b", tier)
        if ra:
            return Outcome("tie", why="both right")
    sa, sb = pa.similarity or 0.0, pb.similarity or 0.0
    if abs(sa - sb) < 1e-9:
        return Outcome("tie", why="equally close")
    return Outcome("a" if sa > sb else "b", "similarity")


@dataclass(slots=True)
class Comparison:
    a: EvalReport
    b: EvalReport
    #: What the cases were (a file name, ``inline data``, ``job #3 held-out``), for titles.
    data: str = "test data"

    def outcomes(self) -> list[Outcome]:
        return [decide(pa, pb) for pa, pb in zip(self.a.predictions, self.b.predictions, strict=True)]

    def tally(self) -> tuple[int, int, int]:
        winners = [o.winner for o in self.outcomes()]
        return winners.count("a"), winners.count("b"), winners.count("tie")

    def wins_by_tier(self) -> dict[str, dict[str, int]]:
        """For each of ``a`` and ``b``: how many of its wins came from each tier."""
        counts: dict[str, dict[str, int]] = {side: dict.fromkeys(TIERS, 0) for side in ("a", "b")}
        for outcome in self.outcomes():
            if outcome.tier is not None:
                counts[outcome.winner][outcome.tier] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        wins_a, wins_b, ties = self.tally()
        return {
            "data": self.data,
            "a": self.a.summary(),
            "b": self.b.summary(),
            "wins_a": wins_a,
            "wins_b": wins_b,
            "ties": ties,
            "wins_by_tier": self.wins_by_tier(),
        }

    def jsonl(self) -> str:
        lines = [jsonl_line({"summary": self.summary()})]
        for pa, pb, outcome in zip(self.a.predictions, self.b.predictions, self.outcomes(), strict=True):
            lines.append(
                jsonl_line(
                    {"line": pa.case.line, "split": pa.split, "prompt": pa.case.prompt, "expected": pa.case.expected,
                     "a": pa.output, "a_error": pa.error, "b": pb.output, "b_error": pb.error,
                     "winner": outcome.winner, "tier": outcome.tier, "tie": outcome.why}
                )
            )  # fmt: skip
        return "".join(lines)


async def compare(
    backend_a: ChatBackend,
    model_a: str,
    backend_b: ChatBackend,
    model_b: str,
    cases: Sequence[TestCase],
    *,
    data: str = "test data",
    split: str | None = None,
) -> Comparison:
    """Both models on the same cases."""
    a, b = await asyncio.gather(
        evaluate(backend_a, model_a, cases, split=split), evaluate(backend_b, model_b, cases, split=split)
    )
    return Comparison(a, b, data)
