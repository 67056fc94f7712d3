"""The mutation score per module after ``mutmut run`` (``make mutate``), equivalent mutants (``equivalent.md``
next to this file) left out; exits 1 when a module is under :data:`REQUIRED`.

A mutant is killed when a test failed (or timed out) on it; one that survived, or that no selected test runs,
counts against the score."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

#: The score each module must reach, in percent.
REQUIRED = 90.0
#: Statuses that count as killed.
KILLED = {"killed", "timeout", "caught by type check"}

_LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>.+?)\s*$")
_LISTED = re.compile(r"`(?P<name>[\w.]+__mutmut_\d+)`")
EQUIVALENT = Path(__file__).with_name("equivalent.md")


def equivalent_mutants(path: Path = EQUIVALENT) -> set[str]:
    """The mutant names listed (in backticks) in ``equivalent.md``."""
    return {m["name"] for m in _LISTED.finditer(path.read_text(encoding="utf-8"))} if path.is_file() else set()


def module_of(name: str) -> str:
    """``hypotez.keys.x_build_key__mutmut_3`` -> ``hypotez.keys``."""
    return name.rsplit(".", 1)[0]


def main(mutmut: str = "mutmut") -> int:
    output = subprocess.run([mutmut, "results", "--all", "true"], check=True, capture_output=True, text=True).stdout
    statuses = {m["name"]: m["status"] for line in output.splitlines() if (m := _LINE.match(line))}
    equivalent = equivalent_mutants()
    unknown = sorted(equivalent - set(statuses))
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in sorted(statuses.items()):
        module = module_of(name)
        if name in equivalent:
            by_module[module]["equivalent"] += 1
        elif status in KILLED:
            by_module[module]["killed"] += 1
        else:
            by_module[module]["alive"] += 1
            survivors[module].append(f"{name}: {status}")
    failed = False
    print(f"{'module':40} {'mutants':>8} {'killed':>7} {'equiv.':>7} {'alive':>6} {'score':>7}")
    for module, counts in sorted(by_module.items()):
        counted = counts["killed"] + counts["alive"]
        score = 100.0 * counts["killed"] / counted if counted else 100.0
        failed |= score < REQUIRED
        total = counted + counts["equivalent"]
        print(f"{module:40} {total:8} {counts['killed']:7} {counts['equivalent']:7} {counts['alive']:6} {score:6.1f}%")
    for module, names in sorted(survivors.items()):
        print(f"\nalive in {module}:", *names, sep="\n  ")
    if unknown:
        print(
            "\nlisted as equivalent but not produced by this run (renumbered? update equivalent.md):",
            *unknown,
            sep="\n  ",
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
