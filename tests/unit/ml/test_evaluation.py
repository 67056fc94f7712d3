"""The rules under ``/test``: how two answers are compared, how failures are shown, how a judge's verdict is read,
and how a training job's examples become test cases."""

from __future__ import annotations

import pytest

from hypotez.ml.evaluation import (
    Prediction,
    TestCase,
    _score,  # pyright: ignore[reportPrivateUsage]
    cases_from_records,
    decide,
    failure_line,
    failure_lines,
    sample_evenly,
)
from hypotez.ml.judge import parse_verdict

CASE = TestCase([{"role": "user", "content": "Capital of France?"}], "Paris", 1)


def _said(output: str | None, *, error: str | None = None, case: TestCase = CASE) -> Prediction:
    prediction = Prediction(case, output, error=error)
    _score(prediction)
    return prediction


@pytest.mark.parametrize(
    ("a", "b", "winner", "tier", "why"),
    [
        ("Paris", "Paris", "tie", None, "both right"),
        ("Paris", "paris.", "a", "exact", None),
        ("paris!", "Paris", "b", "exact", None),
        ("PARIS", "paris", "tie", None, "both right"),  # both normalized matches, neither exact
        ("paris.", "Lyon", "a", "normalized", None),
        # Two wrong answers: the closer one wins...
        ("Pariss", "London", "a", "similarity", None),
        ("I do not know", "Parisian", "b", "similarity", None),
        ("Lyon", "Lyon", "tie", None, "equally close"),
    ],
)
def test_exact_then_normalized_then_similarity(a: str, b: str, winner: str, tier: str | None, why: str | None) -> None:
    outcome = decide(_said(a), _said(b))
    assert (outcome.winner, outcome.tier, outcome.why) == (winner, tier, why)


def test_a_close_wrong_answer_never_beats_a_right_one() -> None:
    # "Paris, France" is a normalized miss but very similar; "paris" is a normalized match: the match wins.
    right, close = _said("paris"), _said("Paris, France")
    assert (close.similarity or 0) > 0.5
    assert decide(close, right).winner == "b"
    assert decide(close, right).tier == "normalized"


def test_errors_lose_to_answers_and_tie_with_errors() -> None:
    failed = _said(None, error="HTTP 500")
    assert (decide(failed, _said("Lyon")).winner, decide(failed, _said("Lyon")).tier) == ("b", "error")
    assert decide(_said("Lyon"), failed).winner == "a"
    assert decide(failed, _said(None, error="timeout")).why == "both failed"


def test_no_expected_answer_is_a_tie() -> None:
    open_ended = TestCase([{"role": "user", "content": "Write a poem."}], None, 1)
    outcome = decide(_said("Roses", case=open_ended), _said("Violets", case=open_ended))
    assert (outcome.winner, outcome.why) == ("tie", "no expected answer")


def test_a_failure_line_shows_expected_and_got_on_one_line() -> None:
    case = TestCase([{"role": "user", "content": "Capital\nof `Italy`?"}], "Rome", 7)
    line = failure_line(Prediction(case, "I am\nnot sure.", split="held-out"))
    assert line == "❌ line 7 (held-out) · `Capital of 'Italy'?` — expected `Rome` · got `I am not sure.`"
    assert failure_line(Prediction(case, "", normalized=False)).endswith("got (empty)")
    assert failure_line(Prediction(case, None, error="HTTP 500")) == (
        "⚠️ line 7 · `Capital of 'Italy'?` — error: `HTTP 500`"
    )


def test_failure_lines_fit_their_budget_and_say_how_many_more() -> None:
    predictions = [Prediction(CASE, "x" * 200) for _ in range(50)]
    lines = failure_lines(predictions, budget=1000)
    assert sum(len(line) + 1 for line in lines) <= 1000
    shown = len(lines) - 1
    assert lines[-1] == f"… and {50 - shown} more in the report"
    assert all(line.startswith("❌") for line in lines[:-1])
    assert failure_lines(predictions[:2], budget=1000)[-1].startswith("❌")  # all fit: no "more" line


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ('{"score": 7, "reason": "Mostly right."}', 7.0, "Mostly right."),
        ('```json\n{"score": 10, "reason": "Exact."}\n```', 10.0, "Exact."),
        ('Here is my verdict: {"score": "3", "reason": "Wrong city."} Thanks.', 3.0, "Wrong city."),
        ('{"note": 1} then {"score": 5}', 5.0, None),
    ],
)
def test_verdicts_are_read_from_json(text: str, score: float, reason: str | None) -> None:
    verdict = parse_verdict(text)
    assert (verdict.score, verdict.reason, verdict.error) == (score, reason, None)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Great answer, 9 out of 10.", "the judge did not answer with the JSON asked for"),
        ('{"score": 11, "reason": "Wow."}', "the judge's score 11 is outside 1-10"),
        ('{"score": "high"}', "the judge's score is not a number (high)"),
        ('{"score": true}', "the judge's score is not a number (True)"),
        ('{"score": NaN}', "the judge's score is not a number (nan)"),
        ("", "the judge did not answer with the JSON asked for"),
    ],
)
def test_malformed_verdicts_say_what_is_wrong(text: str, error: str) -> None:
    verdict = parse_verdict(text)
    assert verdict.score is None
    assert verdict.error is not None
    assert verdict.error.startswith(error)


def test_a_jobs_records_become_cases() -> None:
    records = [
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "weight": 0},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Bye!"},
            ]
        },
        {
            "input": {"messages": [{"role": "user", "content": "Best colour?"}]},
            "preferred_output": [{"role": "assistant", "content": "Blue."}],
            "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
        },
        {"messages": [{"role": "user", "content": "no answer"}]},  # skipped: nothing expected
        {"something": "else"},  # skipped
    ]
    cases = cases_from_records(records)
    assert [(c.line, c.prompt, c.expected) for c in cases] == [
        (1, "2+2?", "4"),
        (2, "Bye", "Bye!"),
        (3, "Best colour?", "Blue."),
    ]
    assert cases[1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]


def test_sample_evenly() -> None:
    assert sample_evenly(list(range(5)), 10) == [0, 1, 2, 3, 4]
    assert sample_evenly(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert len(sample_evenly(list(range(1000)), 200)) == 200
