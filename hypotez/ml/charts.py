"""PNG charts (matplotlib, headless): a job's loss curve, a comparison's win/loss summary.

Rendering takes tens of milliseconds: callers run these in a worker thread.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["arena_chart_png", "loss_chart_png", "win_loss_chart_png"]

# pyplot keeps global state; one figure at a time.
_LOCK = threading.Lock()


def _pyplot() -> Any:
    """matplotlib.pyplot on the headless backend (typed loosely: its signatures are partly untyped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_chart_png(points: Sequence[Sequence[float]], *, title: str) -> bytes:
    """Training loss by step."""
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
        try:
            if points:
                steps = [p[0] for p in points]
                losses = [p[1] for p in points]
                ax.plot(steps, losses, color="#5865F2", linewidth=1.5)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.grid(alpha=0.3)
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
            right.legend(loc="lower right", fontsize="small")
            fig.suptitle(title)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            return buffer.getvalue()
        finally:
            plt.close(fig)


def win_loss_chart_png(label_a: str, label_b: str, wins_a: int, wins_b: int, ties: int) -> bytes:
    """How often each model gave the better answer."""
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 2.5), dpi=100)
        try:
            labels = [label_a[:40], "tie", label_b[:40]]
            values = [wins_a, ties, wins_b]
            ax.barh(labels, values, color=["#57F287", "#99AAB5", "#ED4245"])
            for index, value in enumerate(values):
                ax.text(value, index, f" {value}", va="center")
            ax.set_xlabel("examples won")
            ax.set_title("Comparison")
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            return buffer.getvalue()
        finally:
            plt.close(fig)
