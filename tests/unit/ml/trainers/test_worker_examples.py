"""The local worker's reading of examples (no training): preference pairs as OpenAI's DPO reads them."""

from __future__ import annotations

import pytest

from hypotez.ml.trainers._local_worker import JobError, chosen_rows, preference_rows

PROMPT = [{"role": "user", "content": "Code word for Alice?"}]


def _pair(preferred: list[dict[str, str]], rejected: list[dict[str, str]]) -> dict[str, object]:
    return {"input": {"messages": PROMPT}, "preferred_output": preferred, "non_preferred_output": rejected}


def test_a_single_turn_pair_compares_the_final_replies() -> None:
    [row] = preference_rows(
        [_pair([{"role": "assistant", "content": "quartz"}], [{"role": "assistant", "content": "raven"}])]
    )
    assert row == {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": "quartz"}],
        "rejected": [{"role": "assistant", "content": "raven"}],
    }
    # The supervised stage of supervised+preference learns the chosen reply to the same prompt.
    assert chosen_rows([row]) == [{"prompt": PROMPT, "completion": [{"role": "assistant", "content": "quartz"}]}]


def test_multi_turn_outputs_become_the_prompt_up_to_the_final_reply() -> None:
    shared = [{"role": "assistant", "content": "Let me think."}, {"role": "user", "content": "Well?"}]
    [row] = preference_rows(
        [
            _pair(
                [*shared, {"role": "assistant", "content": "quartz"}],
                [*shared, {"role": "assistant", "content": "raven"}],
            )
        ]
    )
    assert row["prompt"] == [*PROMPT, *shared]
    assert row["chosen"] == [{"role": "assistant", "content": "quartz"}]
    assert row["rejected"] == [{"role": "assistant", "content": "raven"}]


def test_outputs_that_differ_before_their_last_message_are_refused() -> None:
    with pytest.raises(JobError, match="compares one final assistant reply"):
        preference_rows(
            [
                _pair(
                    [
                        {"role": "assistant", "content": "a"},
                        {"role": "user", "content": "b"},
                        {"role": "assistant", "content": "c"},
                    ],
                    [
                        {"role": "assistant", "content": "x"},
                        {"role": "user", "content": "b"},
                        {"role": "assistant", "content": "c2"},
                    ],
                )
            ]
        )
