"""PNG charts (matplotlib, headless): a job's loss curve, a comparison's win/loss summary.

Rendering takes tens of milliseconds: callers run these in a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "MODEL_PALETTE",
    "Series",
    "arena_chart_png",
    "ema",
    "loss_chart_png",
    "loss_chart_series",
    "model_colour",
    "pair_colours",
    "win_loss_chart_png",
]

# pyplot keeps global state; one figure at a time.
_LOCK = threading.Lock()


def _pyplot() -> Any:
    """matplotlib.pyplot on the headless backend (typed loosely: its signatures are partly untyped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or row of points) of a chart: what the legend calls it, its points, and how it is drawn."""

    label: str
    steps: list[float]
    values: list[float]
    color: str
    #: ``line``, ``faint`` (a thin, pale line under a smoothed one) or ``points`` (markers joined thinly).
    style: str = "line"
    #: ``loss`` (the upper panel) or ``reward`` (a second panel, for preference training).
    panel: str = "loss"


def ema(values: Sequence[float], weight: float = 0.6) -> list[float]:
    """An exponential moving average, debiased at the start (TensorBoard's smoothing): ``weight`` 0 leaves the
    values as they are, closer to 1 smooths more."""
    smoothed: list[float] = []
    last = 0.0
    for count, value in enumerate(values, 1):
        last = weight * last + (1 - weight) * value
        smoothed.append(last / (1 - weight**count) if weight else value)
    return smoothed


def loss_chart_series(
    train: Sequence[Sequence[float]],
    *,
    valid: Sequence[Sequence[float]] = (),
    reward_accuracy: Sequence[Sequence[float]] = (),
    reward_margin: Sequence[Sequence[float]] = (),
    smoothing: float = 0.6,
) -> list[Series]:
    """What a job's chart shows: the training loss (raw, faint) and its smoothed curve, the validation loss as
    points, and for preference training the reward accuracy and margin in a second panel."""
    out: list[Series] = []
    if train:
        steps = [float(p[0]) for p in train]
        losses = [float(p[1]) for p in train]
        if len(train) > 2:
            out.append(Series("training loss", steps, losses, "#5865F2", "faint"))
            out.append(Series(f"training loss (smoothed, EMA {smoothing:g})", steps, ema(losses, smoothing), "#5865F2"))
        else:
            out.append(Series("training loss", steps, losses, "#5865F2"))
    if valid:
        steps, values = [float(p[0]) for p in valid], [float(p[1]) for p in valid]
        out.append(Series("validation loss", steps, values, "#ED4245", "points"))
    for points, label, color in (
        (reward_accuracy, "reward accuracy", "#57F287"),
        (reward_margin, "reward margin", "#FEE75C"),
    ):
        if points:
            steps, values = [float(p[0]) for p in points], [float(p[1]) for p in points]
            out.append(Series(label, steps, values, color, panel="reward"))
    return out


def loss_chart_png(
    points: Sequence[Sequence[float]],
    *,
    title: str,
    valid: Sequence[Sequence[float]] = (),
    reward_accuracy: Sequence[Sequence[float]] = (),
    reward_margin: Sequence[Sequence[float]] = (),
) -> bytes:
    """Training loss by step with its smoothed curve and the validation loss on the same axes (and the rewards of
    preference training below), with a legend and labelled axes."""
    series = loss_chart_series(points, valid=valid, reward_accuracy=reward_accuracy, reward_margin=reward_margin)
    rewards = [s for s in series if s.panel == "reward"]
    with _LOCK:
        plt = _pyplot()
        reward_ax: Any = None
        if rewards:
            fig, (ax, reward_ax) = plt.subplots(2, 1, figsize=(6, 4.5), dpi=100, sharex=True, height_ratios=[3, 2])
        else:
            fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
        try:
            for line in series:
                target = ax if line.panel == "loss" else reward_ax
                if line.style == "faint":
                    target.plot(line.steps, line.values, color=line.color, linewidth=0.8, alpha=0.35, label=line.label)
                elif line.style == "points":
                    target.plot(
                        line.steps, line.values, color=line.color, linewidth=0.8, marker="o", markersize=4,
                        label=line.label,
                    )  # fmt: skip
                else:
                    target.plot(line.steps, line.values, color=line.color, linewidth=1.6, label=line.label)
            ax.set_title(title)
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            if series and any(s.panel == "loss" for s in series):
                ax.legend(loc="upper right", fontsize="small")
            if reward_ax is not None:
                reward_ax.set_ylabel("reward")
                reward_ax.set_xlabel("step")
                reward_ax.grid(alpha=0.3)
                reward_ax.legend(loc="upper left", fontsize="small")
            else:
                ax.set_xlabel("step")
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            return buffer.getvalue()
        finally:
            plt.close(fig)


def arena_chart_png(rows: Sequence[tuple[str, float, int, int, int]], *, title: str) -> bytes:
    """A server's arena: each model's Elo (left) and its wins, ties and losses (right), best first.  ``rows`` are
    ``(model, elo, wins, ties, losses)``, already sorted."""
    with _LOCK:
        plt = _pyplot()
        height = max(2.5, 0.45 * len(rows) + 1.5)
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, height), dpi=100, sharey=True)
        try:
            names = [row[0][:40] for row in reversed(rows)]
            elo = [row[1] for row in reversed(rows)]
            wins = [row[2] for row in reversed(rows)]
            ties = [row[3] for row in reversed(rows)]
            losses = [row[4] for row in reversed(rows)]
            left.barh(names, elo, color="#5865F2")
            for index, value in enumerate(elo):
                left.text(value, index, f" {value:.0f}", va="center")
            if elo:
                low, high = min(elo), max(elo)
                left.set_xlim(min(low, 1000) - 60, max(high, 1000) + 60)
            left.axvline(1000, color="#99AAB5", linewidth=1, linestyle="--")
            left.set_xlabel("Elo (everyone starts at 1000)")
            right.barh(names, wins, color="#57F287", label="wins")
            right.barh(names, ties, left=wins, color="#99AAB5", label="ties")
            right.barh(names, losses, left=[w + t for w, t in zip(wins, ties, strict=True)], color="#ED4245",
                       label="losses")  # fmt: skip
            right.set_xlabel("votes")
            right.xaxis.get_major_locator().set_params(integer=True)
            right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize="small", frameon=False)
            fig.suptitle(title)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            return buffer.getvalue()
        finally:
            plt.close(fig)


#: Model colours (matplotlib's tab10, red left out: it reads as "lost"); grey is kept for ties.
MODEL_PALETTE = ("#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD", "#8C564B", "#E377C2", "#17BECF", "#BCBD22")
TIE_COLOUR = "#99AAB5"
#: How a model's wins of each tier are drawn: (label, opacity, hatch).
_TIER_STYLE = {
    "exact": ("exact match", 1.0, ""),
    "normalized": ("normalized match", 0.7, "//"),
    "similarity": ("closer (neither matched)", 0.45, ".."),
    "error": ("the other failed to answer", 0.25, "xx"),
}


def model_colour(name: str) -> str:
    """A model's colour, the same in every chart whatever its position: picked from :data:`MODEL_PALETTE` by a
    stable hash of its name."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return MODEL_PALETTE[int.from_bytes(digest[:4], "big") % len(MODEL_PALETTE)]


def pair_colours(label_a: str, label_b: str) -> tuple[str, str]:
    """The two models' colours; when both names hash to one colour, the name sorting later takes the next one
    (so the pair is coloured alike whichever model is first)."""
    colour_a, colour_b = model_colour(label_a), model_colour(label_b)
    if colour_a == colour_b and label_a != label_b:
        shifted = MODEL_PALETTE[(MODEL_PALETTE.index(colour_a) + 1) % len(MODEL_PALETTE)]
        colour_a, colour_b = (colour_a, shifted) if label_a < label_b else (shifted, colour_b)
    return colour_a, colour_b


def win_loss_chart_png(
    label_a: str,
    label_b: str,
    wins_a: int,
    wins_b: int,
    ties: int,
    *,
    data: str = "test data",
    by_tier: Mapping[str, Mapping[str, int]] | None = None,
) -> bytes:
    """How often each model gave the better answer, each model in its own colour (:func:`pair_colours`), its
    wins split by the tier that decided them (``by_tier``: ``{"a": {"exact": n, ...}, "b": {...}}``); a
    legend, and a title naming the models and the data.  The PNG's ``Title`` and ``Description`` text fields
    hold the title and the legend's entries."""
    colours = pair_colours(label_a, label_b)
    tiers = by_tier or {"a": {"exact": wins_a}, "b": {"exact": wins_b}}
    total = wins_a + wins_b + ties
    title = textwrap.fill(f"{label_a[:60]} vs {label_b[:60]} · {data[:60]} ({total} cases)", 70)
    with _LOCK:
        plt = _pyplot()
        from matplotlib.patches import Patch

        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
        try:
            rows = [(label_a, colours[0], "a", wins_a), (label_b, colours[1], "b", wins_b)]
            for index, (_, colour, side, wins) in enumerate(rows):
                left = 0
                for tier, (_, alpha, hatch) in _TIER_STYLE.items():
                    count = tiers.get(side, {}).get(tier, 0)
                    if count:
                        ax.barh(index, count, left=left, color=colour, alpha=alpha, hatch=hatch,
                                edgecolor=colour, linewidth=0.8)  # fmt: skip
                        left += count
                ax.text(wins, index, f" {wins}", va="center")
            ax.barh(2, ties, color=TIE_COLOUR)
            ax.text(ties, 2, f" {ties}", va="center")
            ax.set_yticks([0, 1, 2], [label_a[:40], label_b[:40], "tie"])
            ax.invert_yaxis()
            ax.set_xlim(0, max(total, 1) * 1.15)
            ax.set_xlabel("cases won")
            ax.set_title(title, fontsize="medium")
            handles = [
                Patch(facecolor=colours[0], label=f"{label_a[:40]}: {wins_a} won"),
                Patch(facecolor=colours[1], label=f"{label_b[:40]}: {wins_b} won"),
                Patch(facecolor=TIE_COLOUR, label=f"tie: {ties}"),
            ]
            used = [t for t in _TIER_STYLE if any(tiers.get(side, {}).get(t, 0) for side in ("a", "b"))]
            for tier in used:
                label, alpha, hatch = _TIER_STYLE[tier]
                handles.append(Patch(facecolor="#666666", alpha=alpha, hatch=hatch, edgecolor="#666666",
                                     label=f"won by {label}"))  # fmt: skip
            ax.legend(handles=handles, loc="lower right", fontsize="x-small", framealpha=0.9)
            fig.tight_layout()
            buffer = io.BytesIO()
            legend = "; ".join(str(h.get_label()) for h in handles)
            fig.savefig(buffer, format="png", metadata={"Title": title.replace("\n", " "), "Description": legend})
            return buffer.getvalue()
        finally:
            plt.close(fig)
