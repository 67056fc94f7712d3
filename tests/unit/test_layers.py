"""The layer contracts of pyproject.toml's ``[tool.importlinter]`` hold: plugins > ml | voice > storage, nothing
below the plugins imports the bot, lightbulb, miru or hikari, and the plugins do not import the wiring."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from typing import TYPE_CHECKING

from tests.paths import REPO

if TYPE_CHECKING:
    from pathlib import Path

ROOT = REPO


def _contract_ids() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [contract["id"] for contract in config["tool"]["importlinter"]["contracts"]]


def _lint_imports(*contract_ids: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root`` (not an installed copy), limited to ``contract_ids``."""
    arguments = [arg for contract_id in contract_ids for arg in ("--contract", contract_id)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--no-cache",
            "--no-logo",
            *arguments,
            str(root / "pyproject.toml"),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_the_contracts_hold() -> None:
    ids = _contract_ids()
    assert {"layers", "core-without-bot", "core-without-hikari", "plugins-without-app"} <= set(ids)
    result = _lint_imports(*ids)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(ids)} kept, 0 broken." in result.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where storage imports ml breaks the layers."""
    import shutil

    copy = tmp_path / "hypotez"
    shutil.copytree(ROOT / "hypotez", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "storage" / "leak.py").write_text("from hypotez.ml import tokens\n", encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _lint_imports("layers", root=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "hypotez.storage.leak -> hypotez.ml.tokens" in result.stdout
