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
        run = json.loads((out / f"{algo}_loop" / "curve.json").read_text())
        assert run["config"]["seq_len"] == 8  # --seq-len reaches the loop's model fits
        loop = run["curve"]
        dream_steps = rows[f"{algo} (dream)"]["real_env_steps"]
        assert dream_steps == loop[-1]["real_steps"] > 0  # the loop's collected transitions, counted exactly
        assert rows[f"{algo} (reality, the dream's real steps)"]["real_env_steps"] == dream_steps
        assert rows[f"{algo} (reality)"]["real_env_steps"] == 512
    assert not (tmp_path / "runs").exists()  # everything under --out
    checks = {check["name"].split(":")[0]: check for check in results["targets"]}
    assert set(checks) == {"ppo", "dqn", "the run within 10 minutes"}
    assert checks["the run within 10 minutes"]["status"] == "PASS"  # the tiny budget runs in well under a minute
    assert any(line.startswith(("PASS", "MISS", "SKIP")) for line in stdout.splitlines())


@pytest.mark.parametrize("dream_steps, real_success, status", [
    (33_922, 0.33, "PASS"),  # 0.48 / 0.33 with 6.8 % of the steps
    (33_922, 0.70, "MISS"),  # 0.48 / 0.70 < 0.8
    (200_000, 0.33, "MISS"),  # 40 % of the steps: more than a fifth
    (33_922, 0.0, "SKIP"),  # a reality agent that never succeeds gives no ratio
])
def test_targets_read_success_ratio_and_real_steps(dream_steps, real_success, status):
    targets = runpy.run_path(str(SCRIPT), run_name="sb3_baselines")["targets"]
    rows = [{"row": "ppo (dream)", "success_rate": 0.48, "real_env_steps": dream_steps},
            {"row": "ppo (reality)", "success_rate": real_success, "real_env_steps": 500_000}]
    success, clock = targets(rows, ("ppo",), 1596.0)
    assert success.status == status
    assert clock.status == "MISS" and "26.6 min" in clock.detail


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="sb3_baselines")
    parse_args, Args = namespace["parse_args"], namespace["Args"]
    assert parse_args([]) == Args()
    args = parse_args(["--algos", "dqn", "--model", "mlp_ensemble", "--iterations", "2", "--seq-len", "17"])
    assert args.algos == ("dqn",) and args.model == "mlp_ensemble" and args.iterations == 2 and args.seq_len == 17
    model_config = namespace["model_config"]  # the default run's narrower mlp, only under auto
    assert model_config(Args()) == {"outcomes": 4, "snap_levels": 64, "rollout_steps": 16, "hidden": 128}
    assert model_config(Args(model_config="hidden=64")) == {"hidden": 64}
    assert "hidden" not in model_config(Args(model="mlp_ensemble"))
    for bad in (["--algos", "a2c"], ["--model", "no_such_model"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
