"""benchmarks/leaderboard.py: a tiny run over two models writes the table (markdown + CSV), the plot and results."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard.py"


def test_a_quick_run_over_two_models_writes_the_leaderboard(tmp_path):
    pytest.importorskip("Box2D", reason="the pixel part runs CarRacing-v3 (gymnasium[box2d])")
    out = tmp_path / "lb"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--models", "mlp", "rssm", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]

    with open(out / "leaderboard.csv", newline="") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"mlp", "rssm"}
    for row in rows.values():
        for column in ("obs_mse@1", "obs_mse@16", "dream_ctrl_return", "reality_ctrl_return", "car_psnr@1"):
            assert float(row[column]) == float(row[column]), f"{column} is NaN"  # measured, not left empty
        assert row["do_error"] == ""  # neither model takes interventions
    mse = [float(r["obs_mse@16"]) for r in rows.values()]
    assert mse == sorted(mse), "rows are ranked by the 16-step observation error"

    markdown = (out / "leaderboard.md").read_text()
    assert "| model | obs_mse@1 | obs_mse@16 |" in markdown and "| rssm |" in markdown and "| mlp |" in markdown
    assert "rssm's 16-step observation error on CampusNav-v0 ranks" in markdown
    assert any(line.startswith(("PASS", "MISS")) for line in markdown.splitlines())
    assert (out / "leaderboard.png").stat().st_size > 1000
    results = json.loads((out / "leaderboard.json").read_text())  # written by campusnav.harness.write_results
    assert results["args"]["models"] == ["mlp", "rssm"] and results["wall_seconds"] > 0
    assert {"train/mlp", "transfer/rssm", "pixels/rssm"} <= set(results["seconds"])


def test_unknown_models_are_refused_with_the_registered_ids(capsys):
    namespace = runpy.run_path(str(SCRIPT), run_name="leaderboard")
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--models", "nope"])
    err = capsys.readouterr().err
    assert "unknown ['nope']" in err and "rssm" in err
    args = namespace["parse_args"](["--quick", "--models", "rssm", "mlp"])
    assert args.models == ["rssm", "mlp"] and args.steps < namespace["Args"]().steps
