"""Every JSONL line the project writes escapes U+2028 and U+2029 (:func:`hypotez.text.jsonl_line`): readers that
follow Unicode's line breaks split a line there otherwise."""

from __future__ import annotations

import ast
import json

from hypotez.text import jsonl_line
from tests.paths import REPO


def test_jsonl_line_escapes_the_unicode_line_separators() -> None:
    value = {"text": "a\u2028b\u2029c\nd", "name": "é"}
    line = jsonl_line(value)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert len(line.splitlines()) == 1
    assert "\u2028" not in line
    assert "\u2029" not in line
    assert "é" in line  # still UTF-8, not ASCII-escaped
    assert json.loads(line) == value
    assert jsonl_line({"b": 1, "a": 2}, sort_keys=True) == '{"a": 2, "b": 1}\n'


def _is_newline(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == "\n"


def _is_json_dumps(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "dumps"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "json"
    )


def test_no_jsonl_line_is_written_by_hand() -> None:
    """``json.dumps(...) + "\\n"`` anywhere in the package (outside the helper) is a JSONL writer that bypasses
    it; ``"\\n".join(json.dumps(...) ...)`` too."""
    offenders: list[str] = []
    for path in sorted((REPO / "hypotez").rglob("*.py")):
        if path.name == "text.py" and path.parent.name == "hypotez":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Add)
                and _is_json_dumps(node.left)
                and _is_newline(node.right)
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "join"
                and _is_newline(node.func.value)
                and any(_is_json_dumps(n) for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.expr))
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    # The local worker's events file is written ASCII-escaped (json.dumps' default), so U+2028 cannot occur raw.
    assert [o for o in offenders if not o.startswith("hypotez/ml/trainers/_local_worker.py")] == []
