"""`campusnav demo` at its defaults while another CPU-bound job runs: the threads it picks for itself.

Every command chooses torch's thread count (one per process for the zoo's small networks,
``campusnav.threads``), so that a second job on the machine does not make the demo several
times slower. This script starts ``--busy`` processes that spin on a core each, runs the demo
in a subprocess beside them (the command a user types), and prints its wall time against
the target of at most ``--target-minutes`` minutes, with the demo's own stage times. A full
run writes ``docs/results/demo_under_load.{md,json}``; ``--tiny`` runs the demo's smoke budget
and writes nothing.

    python benchmarks/demo_under_load.py            # the demo's minutes, on a 2-core CPU
    python benchmarks/demo_under_load.py --tiny     # seconds
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tyro

from campusnav.harness import markdown_table, write_results

SPIN = "while True: pass"


@dataclass(frozen=True)
class Args:
    busy: int = 1
    """CPU-bound processes running beside the demo"""
    target_minutes: float = 10.0
    """the demo's wall time must stay within this"""
    tiny: bool = False
    """the demo's smoke budget (seconds); nothing written"""
    out: str = ""
    """the demo's report folder (default: a temporary folder)"""


def timed_demo(args: Args, out: Path) -> tuple[float, dict[str, Any]]:
    """Runs ``campusnav demo`` beside ``args.busy`` spinning processes; its wall seconds and metrics.json."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
    try:
        command = [sys.executable, "-m", "campusnav", "demo", "--out", str(out), *(["--tiny"] if args.tiny else [])]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return seconds, json.loads((out / "metrics.json").read_text())


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = tyro.cli(Args, args=argv, description=__doc__.split("\n\n")[0])
    if args.busy < 0 or args.target_minutes <= 0:
        raise SystemExit("demo_under_load.py: --busy must be >= 0 and --target-minutes > 0")
    with tempfile.TemporaryDirectory(prefix="demo-under-load-") as scratch:
        seconds, metrics = timed_demo(args, Path(args.out or scratch))
    verdict = "PASS" if seconds <= args.target_minutes * 60 else "MISS"
    stages = metrics.get("seconds", {})
    table = markdown_table(["stage", "seconds"], [[name, f"{value:.0f}"] for name, value in stages.items()], "lr")
    lines = [f"`campusnav demo` at its {'tiny budget' if args.tiny else 'defaults'} beside {args.busy} spinning "
             f"process(es): {seconds / 60:.1f} min in all.", "", table, "",
             f"- Dream-trained over reality-trained gain above the random policy: "
             f"{metrics.get('dream_to_reality_ratio', float('nan')):.2f}.",
             f"- {verdict}: {seconds / 60:.1f} min with {args.busy} CPU-bound job(s) beside it "
             f"(target: at most {args.target_minutes:g} min)"]
    markdown = "\n".join(lines)
    print(markdown)
    report = {"args": asdict(args), "seconds": seconds, "stages": stages,
              "dream_to_reality_ratio": metrics.get("dream_to_reality_ratio"), "verdict": verdict}
    if not args.tiny:
        write_results("demo_under_load", markdown, report)
    return report


if __name__ == "__main__":
    main()
