"""``python -m hypotez``: the same entry point as the ``hypotez`` console script."""

from __future__ import annotations

import sys

from hypotez.cli import main

if __name__ == "__main__":
    sys.exit(main())
