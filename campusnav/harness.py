"""The benchmark harness: timing windows, ratio cells, markdown tables, PASS/MISS lines, result files.

Every benchmark measures the same way: a warm-up, then ``repeats`` timed windows
of a step function, reporting the best window (the least disturbed on a shared
machine) or the median. Results print as a markdown table plus one PASS/MISS/SKIP
line per target (a benchmark, not a test: a miss does not fail), and a real run
writes ``<name>.md`` and ``<name>.json`` through :func:`write_results`, into the
docs' ``results`` folder by default, so every measured number has one source.

>>> rate = measure_rate(lambda: 10, seconds=0.01, repeats=2)
>>> len(rate.windows), rate.best >= rate.median > 0
(2, True)
>>> ratio(300.0, 100.0), ratio(1.0, None)
('3.0×', '—')
>>> print(markdown_table(["model", "steps/s"], [["mlp", "1,000"]], align="lr"))
| model | steps/s |
|---|---:|
| mlp | 1,000 |
>>> print(Target("rate >= 5", value=7.0, target=5.0, detail="7 steps/s").line)
PASS  rate >= 5: 7 steps/s
>>> Target("rate >= 5", value=None, target=5.0).status
'SKIP'
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campusnav.results import plain

__all__ = [
    "Rate",
    "Target",
    "default_results_directory",
    "earlier_results",
    "machine_info",
    "markdown_table",
    "measure_rate",
    "ratio",
    "this_command",
    "write_json",
    "write_results",
]


@dataclass(frozen=True)
class Rate:
    """Items per second of each timed window."""

    windows: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest window: the least disturbed one on a shared machine."""
        return max(self.windows, default=0.0)

    @property
    def median(self) -> float:
        return statistics.median(self.windows) if self.windows else 0.0


def measure_rate(
    step: Callable[[], int],
    seconds: float,
    warmup: float = 0.0,
    repeats: int = 1,
    sync: Callable[[], None] | None = None,
    check_every: int = 1,
) -> Rate:
    """Calls ``step`` (which returns the items it did, e.g. env steps) in a warm-up and ``repeats`` windows.

    A window ends at the first clock check after ``seconds``; the clock is read
    every ``check_every`` calls, after ``sync`` (e.g. ``torch.cuda.synchronize``).
    """
    clock = time.perf_counter
    windows = []
    for window in range(repeats + 1):  # window 0 is the warm-up
        budget = warmup if window == 0 else seconds
        if window == 0 and budget <= 0:
            continue
        items, calls = 0, 0
        if sync is not None:
            sync()
        start = clock()
        while True:
            items += step()
            calls += 1
            if calls % check_every == 0:
                if sync is not None:
                    sync()
                elapsed = clock() - start
                if elapsed >= budget:
                    break
        if window > 0:
            windows.append(items / elapsed)
    return Rate(windows)


def ratio(value: float, reference: float | None) -> str:
    """``value / reference`` as a table cell (``"3.0×"``), or ``"—"`` without a reference."""
    return "—" if not reference else f"{value / reference:,.1f}×"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default: all left)."""
    align = align or "l" * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """One target of a benchmark: PASS when ``value >= target``, SKIP when it was not measured."""

    name: str
    value: float | None
    target: float
    detail: str = "not measured"

    @property
    def status(self) -> str:
        if self.value is None:
            return "SKIP"
        return "PASS" if self.value >= self.target else "MISS"

    @property
    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "target": self.target, "status": self.status,
                "detail": self.detail}


def report_faults(
    name: str, title: str, report: Mapping[str, Any], config: Mapping[str, Any], *, unit: str, rate_header: str,
    json_path: str | Path | None = None, write: bool = True,
) -> dict[str, Any]:
    """Prints a fuzz benchmark's result and writes it: a row per configuration, its faults, the target of none.

    ``report`` holds ``rows`` (each with ``config``, ``steps``, ``steps_per_s`` and
    ``faults``), ``faults`` (the first few, as dicts), ``fault_count``,
    ``faults_by_kind`` and ``calls``; ``unit`` names what ``steps`` counts. Returns
    the results written (``config``, the report, the target) as ``<name>.{md,json}``
    when ``write``, and to ``json_path`` when given.
    """
    total = sum(row["steps"] for row in report["rows"])
    table = markdown_table(
        ["configuration", unit, rate_header, "faults"],
        [[", ".join(f"{k}={v}" for k, v in row["config"].items()), f"{row['steps']:,}",
          f"{row['steps_per_s']:,.0f}", row["faults"]] for row in report["rows"]], align="lrrr")
    calls = ", ".join(f"{k} {v:,}" for k, v in sorted(report["calls"].items()))
    count = report["fault_count"]
    target = Target("faults = 0", value=-float(count), target=0.0,
                    detail=f"{count} faults in {total:,} {unit} ({report['faults_by_kind'] or 'none'})")
    print(f"\n{title}; calls: {calls}\n")
    print(table)
    for fault in report["faults"]:
        print(f"  fault [{fault['kind']}] {fault['config']}, step {fault['call']}: {fault['message']}")
    print(target.line)
    results = {"config": dict(config), **report, "targets": [target.as_dict()]}
    if json_path:
        write_json(json_path, results)
    if write:
        write_results(name, f"{table}\n\nCalls: {calls}.\n\n`{target.line}`\n", results)
    return results


def machine_info() -> dict[str, Any]:
    """Platform, Python, CPU count and load average, for the header of a result."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def default_results_directory() -> Path:
    """``docs/results`` of the source checkout (the docs site includes it), else ``./results``."""
    root = Path(__file__).resolve().parents[1]
    return root / "docs" / "results" if (root / "pyproject.toml").is_file() else Path.cwd() / "results"


def earlier_results(path: Path, what: str, same: Mapping[str, Any]) -> dict[str, Any]:
    """The results a benchmark's ``--merge`` adds to: the JSON at ``path``, whose ``args`` must agree with
    this run's on every field of ``same`` (else rows measured differently would sit side by side).

    Raises:
        SystemExit: naming ``what`` (e.g. "board") when there are none, or the first field that differs.
    """
    if not path.exists():
        raise SystemExit(f"--merge: no {what} at {path} to merge with")
    earlier = json.loads(path.read_text())
    for name, value in same.items():
        if earlier["args"][name] != value:
            raise SystemExit(f"--merge: the {what} at {path} has {name} {earlier['args'][name]!r}, this run {value!r}")
    return earlier


def write_json(path: str | Path, data: Any) -> Path:
    """Writes ``data`` as strict JSON (numpy values as numbers, NaN as null), atomically."""
    path = Path(path)
    _write_text(path, json.dumps(plain(data), indent=2, allow_nan=False, default=float) + "\n")
    return path


def this_command(argv: Sequence[str] | None = None) -> str:
    """The command line that runs this process again: ``python <script> ...``, or ``campusnav ...`` when the
    package's console script (an executable without ``.py``) started it."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name == "campusnav":
        return shlex.join(["campusnav", *argv[1:]])
    return "python " + shlex.join(argv)


def write_results(name: str, markdown: str, data: Mapping[str, Any], directory: str | Path | None = None,
                  command: str | None = None) -> Path:
    """Writes ``<directory>/<name>.md`` and ``<name>.json``, each saying what ran, when and where.

    The JSON holds ``benchmark``, ``command`` (default: this process's command
    line), ``date`` and ``machine`` beside ``data``; the markdown opens with a line
    naming the same. Returns the markdown file's path.
    """
    directory = Path(directory) if directory is not None else default_results_directory()
    command = command or this_command()
    date = datetime.date.today().isoformat()
    machine = machine_info()
    write_json(directory / f"{name}.json", {"benchmark": name, "command": command, "date": date, "machine": machine,
                                           **dict(data)})
    where = f"{machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}"
    header = f"*Measured {date} with `{command}` on {where}.*\n\n"
    return _write_text(directory / f"{name}.md", header + markdown.rstrip("\n") + "\n")


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
