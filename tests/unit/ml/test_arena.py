"""The arena's arithmetic: Elo by hand-checked numbers, ties, order, the random sides, the pair a vote yields."""

from __future__ import annotations

import random

import pytest

from hypotez.ml.arena import Game, draw_sides, expected_score, pair_from_vote, standings
from hypotez.ml.datasets.examples import content_hash
from hypotez.storage.models import ArenaMatch


def _by_model(games: list[Game]) -> dict[str, tuple[int, int, int, int, float]]:
    return {s.model: (s.matches, s.wins, s.losses, s.ties, s.elo) for s in standings(games)}


def test_one_win_between_equals_moves_each_by_half_of_k() -> None:
    table = _by_model([Game("x", "y", "a", 1)])
    assert table["x"] == (1, 1, 0, 0, pytest.approx(1016.0))
    assert table["y"] == (1, 0, 1, 0, pytest.approx(984.0))


def test_a_tie_between_equals_changes_nothing_and_an_upset_moves_more() -> None:
    tied = _by_model([Game("x", "y", "tie")])
    assert tied["x"][4] == pytest.approx(1000.0)
    assert tied["x"][3] == 1
    # After x beat y once (1016 vs 984), y beating x is an upset: y gains more than the 16 x gained.
    upset = _by_model([Game("x", "y", "a"), Game("x", "y", "b")])
    gain = 32 * (1 - expected_score(984.0, 1016.0))
    assert gain > 16
    assert upset["y"][4] == pytest.approx(984.0 + gain)
    assert upset["x"][4] == pytest.approx(1016.0 - gain)
    assert upset["x"][4] + upset["y"][4] == pytest.approx(2000.0)  # Elo is zero-sum


def test_the_replay_is_deterministic_ordered_and_sorted_best_first() -> None:
    games = [Game("x", "y", "a", 1), Game("y", "z", "b", 2), Game("z", "x", "tie", 3), Game("x", "z", "b", 4)]
    first = standings(games)
    assert standings(list(games)) == first
    assert [s.elo for s in first] == sorted((s.elo for s in first), reverse=True)
    # Order matters: the same games replayed backwards give other ratings.
    assert {s.model: s.elo for s in standings(reversed(games))} != {s.model: s.elo for s in first}
    x = next(s for s in first if s.model == "x")
    assert (x.matches, x.wins, x.losses, x.ties, x.games) == (3, 1, 1, 1, 3)
    assert x.win_rate == pytest.approx(1 / 3)


def test_no_games_and_bad_outcomes() -> None:
    assert standings([]) == []
    assert standings([Game("x", "x", "a")]) == []  # a model against itself tells nothing
    with pytest.raises(ValueError, match="unknown outcome"):
        standings([Game("x", "y", "maybe")])


def test_sides_are_drawn_both_ways() -> None:
    rng = random.Random(7)
    drawn = {draw_sides("x", "y", rng) for _ in range(50)}
    assert drawn == {("x", "y"), ("y", "x")}


def test_a_vote_yields_the_chosen_answer_over_the_other() -> None:
    match = ArenaMatch(
        id=5,
        prompt_messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}],
        answer_a="Lyon.",
        answer_b="Paris.",
    )
    pair = pair_from_vote(match, "b")
    assert (pair.kind, pair.origin, pair.source_ref) == ("preference", "arena", "arena:5:b")
    assert (pair.preferred, pair.rejected) == ("Paris.", "Lyon.")
    assert pair.messages == match.prompt_messages
    assert pair.content_hash == content_hash([match.prompt_messages, "Paris.", "Lyon."])
    assert pair_from_vote(match, "a").preferred == "Lyon."
    with pytest.raises(ValueError, match="needs a winner"):
        pair_from_vote(match, "tie")
