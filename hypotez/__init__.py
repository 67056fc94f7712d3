"""hypotez: a Discord bot that trains the model it talks with."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    #: The installed distribution's version: ``pyproject.toml`` is the one place it is written.
    __version__ = version("hypotez")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
