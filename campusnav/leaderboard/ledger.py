"""A JSON file of finished stages: what a leaderboard run has measured, kept as it goes.

Each stage's result is written (atomically) the moment the stage ends, so a run
that dies resumes at the stage it was in, and a finished cell is never redone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_zoo.checkpoint import atomic_write

__all__ = ["Ledger"]


class Ledger:
    """Stage name -> JSON result, in one file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.stages: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def __contains__(self, stage: str) -> bool:
        return stage in self.stages

    def run(self, stage: str, measure: Callable[[], Any]) -> Any:
        """The stage's recorded result, or ``measure()``'s, recorded now."""
        if stage not in self.stages:
            self.stages[stage] = measure()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.stages, indent=1, default=_plain) + "\n")
        return self.stages[stage]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
