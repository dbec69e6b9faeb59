"""examples/sb3_baselines.py runs end to end on a tiny budget, prints its table and writes results.json."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "sb3_baselines.py"


def test_runs_on_a_tiny_budget_and_writes_the_table(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--algos", "ppo", "dqn"],
        capture_output=True, text=True, timeout=240, env=dict(os.environ), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    stdout = result.stdout
    assert "return (mean ± std)" in stdout and "real env steps" in stdout
    worlds = ("dream", "reality", "reality, the dream's real steps")
    names = ["random", "shortest path (oracle)"] + [f"{algo} ({where})" for algo in ("ppo", "dqn") for where in worlds]
    for name in names:
        assert name in stdout

    results = json.loads((out / "results.json").read_text())
    rows = {row["row"]: row for row in results["rows"]}
    assert list(rows) == names
    assert results["eval_seeds"] == list(range(10_000, 10_008))
    for name, row in rows.items():
        assert len(row["returns"]) == 8
        assert ("in_dream" in row) == name.endswith("(dream)")
        assert 0.0 <= row["success_rate"] <= 1.0 and 1.0 <= row["steps_mean"] <= 200.0
    assert rows["shortest path (oracle)"]["success_rate"] > rows["random"]["success_rate"]
    for algo in ("ppo", "dqn"):
        loop = json.loads((out / f"{algo}_loop" / "curve.json").read_text())["curve"]
        dream_steps = rows[f"{algo} (dream)"]["real_env_steps"]
        assert dream_steps == loop[-1]["real_steps"] > 0  # the loop's collected transitions, counted exactly
        assert rows[f"{algo} (reality, the dream's real steps)"]["real_env_steps"] == dream_steps
        assert rows[f"{algo} (reality)"]["real_env_steps"] == 512
    assert not (tmp_path / "runs").exists()  # everything under --out


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="sb3_baselines")
    parse_args, Args = namespace["parse_args"], namespace["Args"]
    assert parse_args([]) == Args()
    args = parse_args(["--algos", "dqn", "--model", "mlp_ensemble", "--iterations", "2"])
    assert args.algos == ("dqn",) and args.model == "mlp_ensemble" and args.iterations == 2
    for bad in (["--algos", "a2c"], ["--model", "no_such_model"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
