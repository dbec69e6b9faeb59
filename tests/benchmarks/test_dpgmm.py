"""benchmarks/dpgmm.py: the quick run end to end over two training seeds (RGB, summation and torchjd's ConFIG),
and its argument checks."""

from __future__ import annotations

import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dpgmm.py"
dpgmm = SimpleNamespace(**runpy.run_path(str(SCRIPT), run_name="dpgmm"))


def test_quick_run_over_two_training_seeds_judges_the_means(capsys):
    pytest.importorskip("torchjd")
    report = dpgmm.main(["--quick", "--seeds", "2", "--baselines", "mlp"])
    rows = report["per_seed"]
    assert [r["seed"] for r in rows] == [0, 1]
    rgb, summed, config = dpgmm.BALANCED
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
    assert "trained dpgmm_vrnn (config), seed 1" in out and config in report["results"]
    for name in dpgmm.BALANCED:  # each task's loss over summation's, same seed; their geometric mean; over seeds
        for row in rows:
            ratios = [row["losses"][name][t] / row["losses"][summed][t] for t in dpgmm.TASKS]
            assert [row["ratios"][name][t] for t in dpgmm.TASKS] == pytest.approx(ratios)
            assert row["geomean"][name] == pytest.approx(dpgmm.geometric_mean(ratios), nan_ok=True)
        summary = report["balancers"][name]
        assert summary["usage_tv"] == pytest.approx(sum(r["usage"][name]["tv"] for r in rows) / 2)
        assert summary["geomean"] == pytest.approx(sum(r["geomean"][name] for r in rows) / 2, nan_ok=True)
    assert report["balancers"][summed]["geomean"] == pytest.approx(1.0)
    lowest = next(t for t in report["targets"] if "lowest geometric mean" in t)
    means = {n.split("(")[1][:-1]: report["balancers"][n]["geomean"] for n in dpgmm.BALANCED}
    assert f"summation: {min(means, key=means.get)} (" in lowest


def test_geometric_mean_is_undefined_for_ratios_of_mixed_signs():
    assert dpgmm.geometric_mean([2.0, 0.5, 1.0]) == pytest.approx(1.0)
    assert math.isnan(dpgmm.geometric_mean([2.0, -0.5]))


def test_seeds_must_be_positive():
    with pytest.raises(SystemExit, match="--seeds must be at least 1"):
        dpgmm.parse_args(["--seeds", "0"])
