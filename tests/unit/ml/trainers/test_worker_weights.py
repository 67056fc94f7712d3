"""The local worker honours OpenAI's ``weight: 0`` on assistant turns: it learns from the last assistant turn that
is trained on (the later, weight-0 turns are dropped), and an example with no trained turn teaches nothing."""

from __future__ import annotations

import pytest

from hypotez.ml.trainers._local_worker import JobError, supervised_rows


def _turn(role: str, content: str, **extra: object) -> dict[str, object]:
    return {"role": role, "content": content, **extra}


def test_the_last_trained_assistant_turn_is_the_completion() -> None:
    example = {
        "messages": [
            _turn("user", "hi"),
            _turn("assistant", "Hello!"),
            _turn("user", "and?"),
            _turn("assistant", "a reply not to learn", weight=0),
        ]
    }
    [row] = supervised_rows([example])
    assert row["completion"] == [{"role": "assistant", "content": "Hello!"}]
    assert row["prompt"] == [{"role": "user", "content": "hi"}]


def test_weight_one_and_unweighted_turns_are_learned() -> None:
    example = {"messages": [_turn("user", "q"), _turn("assistant", "a", weight=1)]}
    [row] = supervised_rows([example])
    assert row["completion"] == [{"role": "assistant", "content": "a"}]


def test_an_example_whose_every_assistant_turn_has_weight_0_is_left_out() -> None:
    kept = {"messages": [_turn("user", "q"), _turn("assistant", "learn me")]}
    skipped = {"messages": [_turn("user", "q"), _turn("assistant", "not me", weight=0)]}
    rows = supervised_rows([skipped, kept])
    assert [r["completion"][0]["content"] for r in rows] == ["learn me"]


def test_an_example_without_an_assistant_turn_is_still_refused() -> None:
    with pytest.raises(JobError, match="does not end with an assistant message"):
        supervised_rows([{"messages": [_turn("user", "q")]}])
