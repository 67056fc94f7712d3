from __future__ import annotations

import re

from hypotez.config import Settings
from tests.paths import REPO

ROOT = REPO


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"HYPOTEZ_{name.upper()}" in readme, name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", readme, re.MULTILINE)
    assert re.search(r"^make test$", ci, re.MULTILINE)
