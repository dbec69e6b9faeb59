"""benchmarks/dpgmm.py: the quick run end to end over two training seeds, and its argument checks."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dpgmm.py"
dpgmm = SimpleNamespace(**runpy.run_path(str(SCRIPT), run_name="dpgmm"))


def test_quick_run_over_two_training_seeds_judges_the_means(capsys):
    report = dpgmm.main(["--quick", "--seeds", "2", "--baselines", "mlp"])
    rows = report["per_seed"]
    assert [r["seed"] for r in rows] == [0, 1]
    rgb, summed = dpgmm.BALANCED
    for task in (*dpgmm.TASKS, "loss"):
        mean = (rows[0]["losses"][rgb][task] + rows[1]["losses"][rgb][task]) / 2
        assert report["task_losses"][rgb][task] == pytest.approx(mean)
    assert rows[0]["losses"][rgb]["loss"] != rows[1]["losses"][rgb]["loss"]  # another seed, another model
    ratio = sum(r["losses"][rgb]["loss"] / r["losses"][summed]["loss"] for r in rows) / 2
    line = next(t for t in report["targets"] if "summed held-out loss" in t)
    assert line.startswith("PASS" if ratio <= 1.01 else "MISS") and f"({ratio:.4f}x" in line
    assert line.endswith("[means of 2 seeds]")
    out = capsys.readouterr().out
    assert "per training seed" in out and "trained dpgmm_vrnn (rgb), seed 1" in out


def test_seeds_must_be_positive():
    with pytest.raises(SystemExit, match="--seeds must be at least 1"):
        dpgmm.parse_args(["--seeds", "0"])
