"""The blind arena's arithmetic: which model sits on which side, the preference pair a vote yields, and each
model's standing (wins, losses, ties, win rate, Elo) replayed from the votes in the order they were cast.

Elo is the standard logistic rating: every model starts at :data:`INITIAL_RATING`; after a game between ``a`` and
``b`` with ``a``'s score ``s`` (1 win, ½ tie, 0 loss), ``a`` moves by ``K · (s − E)`` where
``E = 1 / (1 + 10^((R_b − R_a) / 400))``, and ``b`` by the opposite.  Each vote is one game.  Replaying the
votes in order makes the table deterministic: the same votes always give the same ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hypotez.ml.datasets.examples import POSITIVE, preference_example

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from hypotez.storage.models import ArenaMatch, DatasetExample

__all__ = [
    "INITIAL_RATING",
    "K_FACTOR",
    "SCALE",
    "Game",
    "Standing",
    "draw_sides",
    "expected_score",
    "pair_from_vote",
    "standings",
]

#: Every model's rating before its first game.
INITIAL_RATING: Final = 1000.0
#: How far one game moves a rating at most (the usual K of 32).
K_FACTOR: Final = 32.0
#: A rating difference of this many points makes the stronger model ten times as likely to win.
SCALE: Final = 400.0

#: The outcomes of a game: ``a`` won, ``b`` won, or a tie.
OUTCOMES: Final = ("a", "b", "tie")


def draw_sides(first: str, second: str, rng: random.Random) -> tuple[str, str]:
    """The models shown as A and B: the two in a random order, so no one can tell a name from the position."""
    return (first, second) if rng.random() < 0.5 else (second, first)


def pair_from_vote(match: ArenaMatch, winner: str) -> DatasetExample:
    """The preference pair a vote for ``winner`` (``a`` or ``b``) yields: the match's prompt, the chosen answer
    preferred over the other (not yet attached to a dataset)."""
    if winner not in {"a", "b"}:
        raise ValueError(f"a preference pair needs a winner, not {winner!r}")
    chosen, other = (match.answer_a, match.answer_b) if winner == "a" else (match.answer_b, match.answer_a)
    context = [{"role": str(m["role"]), "content": str(m["content"])} for m in match.prompt_messages]
    return preference_example(context, chosen, other, label=POSITIVE, origin="arena", ref=f"arena:{match.id}:{winner}")


@dataclass(frozen=True, slots=True)
class Game:
    """One vote: the models shown as A and B, and the outcome (``a``, ``b`` or ``tie``)."""

    model_a: str
    model_b: str
    outcome: str
    match_id: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    """A model's record in a server's arena."""

    model: str
    #: Matches it played that got at least one counted vote.
    matches: int
    wins: int
    losses: int
    ties: int
    elo: float

    @property
    def games(self) -> int:
        """Votes on its matches."""
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        """Wins per vote (a tie is played, not won)."""
        return self.wins / self.games if self.games else 0.0


def expected_score(rating: float, opponent: float) -> float:
    """The score a model rated ``rating`` is expected to take from one game against ``opponent``."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / SCALE))


def standings(games: Iterable[Game], *, k: float = K_FACTOR) -> list[Standing]:
    """Every model's record and Elo after replaying ``games`` in order, best first (by Elo, then name)."""
    ratings: dict[str, float] = {}
    record: dict[str, list[int]] = {}  # wins, losses, ties
    matches: dict[str, set[int]] = {}
    for game in games:
        if game.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {game.outcome!r}")
        if game.model_a == game.model_b:
            continue  # a model against itself tells nothing
        a, b = game.model_a, game.model_b
        rating_a = ratings.setdefault(a, INITIAL_RATING)
        rating_b = ratings.setdefault(b, INITIAL_RATING)
        score_a = {"a": 1.0, "b": 0.0, "tie": 0.5}[game.outcome]
        expected_a = expected_score(rating_a, rating_b)
        ratings[a] = rating_a + k * (score_a - expected_a)
        ratings[b] = rating_b + k * ((1.0 - score_a) - (1.0 - expected_a))
        for model, score in ((a, score_a), (b, 1.0 - score_a)):
            counts = record.setdefault(model, [0, 0, 0])
            counts[0 if score == 1.0 else 1 if score == 0.0 else 2] += 1
            matches.setdefault(model, set()).add(game.match_id)
    table: list[Standing] = []
    for model, rating in ratings.items():
        wins, losses, ties = record[model]
        table.append(Standing(model, len(matches[model]), wins, losses, ties, rating))
    return sorted(table, key=lambda s: (-s.elo, s.model))
