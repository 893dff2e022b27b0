"""What the command line's values mean, shared by the parser (`bench.cli`) and the run (`bench.command`):
lists that sweep, and where a run's files go by default. Pure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)
RESULTS = Path("bench") / "results"  # relative to the current directory: the repository root, as documented


def default_out(scenario: str, transport: str, stamp: str) -> Path:
    """Where a run's files go without --out (one place, so --help says what really happens)."""
    return RESULTS / f"{scenario}-{transport}-{stamp}"


def numbers(text: str, kind: Callable[[str], N]) -> list[N]:
    """`100,200,400` → [100, 200, 400]: one run per value (a sweep)."""
    return [kind(part) for part in text.split(",") if part.strip()]
