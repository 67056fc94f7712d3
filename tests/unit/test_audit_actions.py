"""Every action the bot records in the audit log has words in ``/audit`` (a new action without them would show as
its raw name)."""

from __future__ import annotations

import re
from pathlib import Path

import hypotez
from hypotez.plugins.audit import ACTIONS


def _recorded_actions() -> set[str]:
    root = Path(next(iter(hypotez.__path__)))
    found: set[str] = set()
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"\.record\((.{0,200}?)(?:guild_id|\))", text, re.S):
            found |= set(re.findall(r"[\"']([a-z_]+\.[a-z_]+(?:\.[a-z_]+)?)[\"']", call.group(1)))
        found |= set(re.findall(r"action=[\"']([a-z_]+\.[a-z_]+)[\"']", text))
    return found


def test_every_recorded_action_has_words() -> None:
    actions = _recorded_actions()
    assert {"correction.create", "privacy.forget", "job.start"} <= actions  # the scan finds them
    rejected = {f"{a}.rejected" for a in actions if a.startswith("dataset.")}
    missing = sorted(a for a in actions | (rejected & set(ACTIONS)) if a not in ACTIONS)
    assert missing == []
