"""Evaluation (the original ``test`` / ``predict`` / ``handle_errors``): run a model on test data, score the
predictions against expected answers, keep every failure and error in a report for later analysis."""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypotez.errors import HypotezError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.ml.chat import ChatBackend, ChatMessage

__all__ = [
    "Comparison",
    "EvalReport",
    "Prediction",
    "TestCase",
    "compare",
    "evaluate",
    "normalize",
    "parse_test_data",
]

MAX_CASES = 1000
_LOGGER = logging.getLogger(__name__)


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

    @property
    def failed(self) -> bool:
        return self.error is not None or self.normalized is False

    def as_record(self) -> dict[str, Any]:
        return {
            "line": self.case.line,
            "messages": self.case.messages,
            "expected": self.case.expected,
            "output": self.output,
            "error": self.error,
            "exact_match": self.exact,
            "normalized_match": self.normalized,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


@dataclass(slots=True)
class EvalReport:
    model: str
    predictions: list[Prediction] = field(default_factory=list[Prediction])

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

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cases": len(self.predictions),
            "errors": self.errors,
            "exact_match": self.exact_match,
            "normalized_match": self.normalized_match,
            "similarity": self.similarity,
        }

    def jsonl(self) -> str:
        """The report file: a summary line, then one line per case (failures and errors included)."""
        lines = [json.dumps({"summary": self.summary()}, ensure_ascii=False)]
        lines += [json.dumps(p.as_record(), ensure_ascii=False) for p in self.predictions]
        return "\n".join(lines) + "\n"


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


async def evaluate(backend: ChatBackend, model: str, cases: Sequence[TestCase], *, concurrency: int = 4) -> EvalReport:
    """Run ``model`` on every case (at most ``concurrency`` at a time); errors are recorded, not raised."""
    semaphore = asyncio.Semaphore(concurrency)

    async def run(case: TestCase) -> Prediction:
        async with semaphore:
            try:
                result = await backend.complete(case.messages, model)
            except HypotezError as exc:
                return Prediction(case, None, error=exc.user_message)
            except Exception as exc:  # one failing case is recorded; the others still run
                _LOGGER.exception("test case %s failed on %s", case.line, model)
                return Prediction(case, None, error=f"unexpected error ({type(exc).__name__})")
        prediction = Prediction(case, result.content)
        _score(prediction)
        return prediction

    predictions = await asyncio.gather(*(run(case) for case in cases))
    return EvalReport(model, list(predictions))


@dataclass(slots=True)
class Comparison:
    a: EvalReport
    b: EvalReport

    def outcomes(self) -> list[str]:
        """Per case: "a", "b" or "tie" (higher similarity to the expected answer wins; errors lose)."""
        result: list[str] = []
        for pa, pb in zip(self.a.predictions, self.b.predictions, strict=True):
            sa = -1.0 if pa.error else (pa.similarity if pa.similarity is not None else 0.0)
            sb = -1.0 if pb.error else (pb.similarity if pb.similarity is not None else 0.0)
            result.append("tie" if abs(sa - sb) < 1e-9 else ("a" if sa > sb else "b"))
        return result

    def tally(self) -> tuple[int, int, int]:
        outcomes = self.outcomes()
        return outcomes.count("a"), outcomes.count("b"), outcomes.count("tie")

    def jsonl(self) -> str:
        wins_a, wins_b, ties = self.tally()
        lines = [
            json.dumps(
                {
                    "summary": {
                        "a": self.a.summary(),
                        "b": self.b.summary(),
                        "wins_a": wins_a,
                        "wins_b": wins_b,
                        "ties": ties,
                    }
                },
                ensure_ascii=False,
            )
        ]
        for pa, pb, outcome in zip(self.a.predictions, self.b.predictions, self.outcomes(), strict=True):
            lines.append(
                json.dumps(
                    {"line": pa.case.line, "prompt": pa.case.prompt, "expected": pa.case.expected,
                     "a": pa.output, "a_error": pa.error, "b": pb.output, "b_error": pb.error, "winner": outcome},
                    ensure_ascii=False,
                )
            )  # fmt: skip
        return "\n".join(lines) + "\n"


async def compare(
    backend_a: ChatBackend, model_a: str, backend_b: ChatBackend, model_b: str, cases: Sequence[TestCase]
) -> Comparison:
    """Both models on the same cases."""
    a, b = await asyncio.gather(evaluate(backend_a, model_a, cases), evaluate(backend_b, model_b, cases))
    return Comparison(a, b)
