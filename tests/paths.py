"""Where the repository's own files are, for tests that read them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO"]

#: The repository root (README.md, pyproject.toml, .ci/).
REPO = Path(__file__).resolve().parent.parent
