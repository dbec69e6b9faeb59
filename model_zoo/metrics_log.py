"""``metrics.csv`` of a training run: one row of metric means every ``log_every`` steps, kept across resumes."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from model_zoo.checkpoint import atomic_write

__all__ = ["CSVLog"]


class CSVLog:
    """``metrics.csv``: appended to and flushed row by row; rewritten when a new metric appears.

    On start the rows after ``keep_until`` (logged after the checkpoint being resumed)
    are dropped, so a resumed run does not log the same steps twice.
    """

    def __init__(self, path: Path, keep_until: int):
        self.path = path
        self.fields: list[str] = []
        self._rows: list[dict[str, float]] = []
        if keep_until > 0 and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                for raw in reader:
                    row = {k: float(v) for k, v in raw.items() if k is not None and v not in (None, "")}
                    if row.get("step", math.inf) <= keep_until:
                        row["step"] = int(row["step"])
                        self._rows.append(row)
        self._rewrite()

    def rows(self) -> list[dict[str, float]]:
        return list(self._rows)

    def append(self, row: dict[str, float]) -> None:
        self._rows.append(row)
        if any(name not in self.fields for name in row):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)

    def _rewrite(self) -> None:
        for row in self._rows:
            self.fields += [name for name in row if name not in self.fields]
        lines: list[str] = []
        if self.fields:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(self._rows)
            lines.append(buffer.getvalue())
        atomic_write(self.path, "".join(lines))
