"""benchmarks/mbrl.py: a quick run writes the curves and targets; the targets read curves as the issue says."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mbrl.py"
_spec = importlib.util.spec_from_file_location("mbrl_benchmark", SCRIPT)
_module = importlib.util.module_from_spec(_spec)
sys.modules["mbrl_benchmark"] = _module  # tyro reads the field docstrings from the module's source
_spec.loader.exec_module(_module)
BENCH = vars(_module)


def test_a_quick_run_writes_curves_plot_and_targets_and_resumes(tmp_path):
    argv = ["--quick", "--models", "mlp", "--seeds", "1", "--work", str(tmp_path / "work"),
            "--out", str(tmp_path / "out")]
    report = BENCH["main"](argv)
    loop = report["loops"]["mlp"][0]
    assert len(loop["steps"]) == 2 and loop["steps"][1] > loop["steps"][0]
    assert report["reality"][0]["steps"][0] == 0 and report["reality"][0]["steps"][-1] >= 1_024
    saved = json.loads((tmp_path / "out" / "mbrl.json").read_text())
    assert [t["status"] for t in saved["targets"]] != [] and (tmp_path / "out" / "mbrl.png").stat().st_size > 0
    again = BENCH["main"](argv)  # finished runs are read back, not run again
    assert again["loops"] == report["loops"] and again["reality"] == report["reality"]

    earlier = {**saved, "loops": {**saved["loops"], "other": [curve([100], [-1.0], [0.5])]},
               "loop_minutes": {"other": 7.0}}
    (tmp_path / "out" / "mbrl.json").write_text(json.dumps(earlier))
    merged = BENCH["main"](argv + ["--merge"])  # mlp measured by this run, "other" kept from the results
    assert merged["loops"]["mlp"] == report["loops"]["mlp"] and merged["loops"]["other"] == earlier["loops"]["other"]
    assert merged["loop_minutes"]["other"] == 7.0 and "other" in (tmp_path / "out" / "mbrl.md").read_text()
    more = BENCH["main"](["--quick", "--models", "mlp", "--seeds", "2", "--work", str(tmp_path / "work"),
                          "--out", str(tmp_path / "out"), "--merge"])  # a model given more seeds, the others kept
    assert more["loops"]["mlp"][0] == report["loops"]["mlp"][0] and len(more["loops"]["mlp"]) == 2
    assert more["loops"]["other"] == earlier["loops"]["other"] and len(more["reality"]) == 2
    table = (tmp_path / "out" / "mbrl.md").read_text()
    assert "| loop: mlp | 2 |" in table and "| loop: other | 1 |" in table  # each row says its seeds
    with pytest.raises(SystemExit, match="loop"):  # other loop options: refused
        BENCH["main"](argv + ["--merge", "--loop=--dream-steps 5000 --iterations 3"])


def curve(steps, returns, success):
    return {"steps": steps, "return_mean": returns, "success_rate": success}


def test_targets_judge_gain_within_a_tenth_of_reality_steps():
    reality = [curve([0, 50_000, 100_000, 200_000], [-4.0, -2.0, 0.1, 0.2], [0.0, 0.4, 0.9, 0.95])] * 2
    good = [curve([5_000, 10_000, 20_000], [-3.0, -0.6, 0.0], [0.1, 0.8, 0.9])]  # 10k = 10 % of 100k steps
    late = [curve([5_000, 20_000], [-3.5, 0.1], [0.1, 0.9])]  # good only past the budget
    checks = BENCH["targets"](reality, {"a": good, "b": good, "c": late}, random_return=-4.0)
    assert [c.status for c in checks[:2]] == ["PASS", "PASS"]
    assert abs(checks[1].value - 3.4 / 4.2) < 1e-9  # (-0.6 + 4) / (0.2 + 4)
    assert checks[2].value == 3.0  # reality at 20k steps: -3.2, below every loop's last return
    checks = BENCH["targets"](reality, {"a": good, "c": late}, random_return=-4.0)
    assert checks[1].status == "MISS" and checks[1].value < 0.8  # only one model reaches 0.8 in time


def test_reality_reads_the_reference_run_of_its_seed(tmp_path):
    curve_of = {"steps": [0, 50_000], "return_mean": [-4.0, -1.0], "success_rate": [0.0, 0.5], "seconds": [0, 9]}
    reference = tmp_path / "sb3_reality.json"
    reference.write_text(json.dumps({"rows": [{"preset": "dqn", "seed": 0, "curve": {}},
                                              {"preset": "tuned", "seed": 0, "curve": curve_of}]}))
    args = BENCH["parse_args"](["--reference", str(reference), "--work", str(tmp_path / "work")])
    assert BENCH["reality_curve"](args, 0) == {k: curve_of[k] for k in ("steps", "return_mean", "success_rate")}
