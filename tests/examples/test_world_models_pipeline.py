"""examples/world_models_pipeline.py runs end to end on a tiny budget, prints its table and saves its results."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "world_models_pipeline.py"
ROWS = ("C trained in the dream", "C trained in reality", "random policy", "shortest-path oracle")


def run(out: Path, *flags: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *flags],
        capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy(),
    )
    return result.stdout


def test_runs_on_a_tiny_budget_and_saves_controllers_and_metrics(tmp_path):
    out = tmp_path / "out"
    stdout = run(out)
    for section in ("== 1. collect", "== 2. V + M", "== 3. C in the dream", "== 4. C in reality", "== 5. evaluation"):
        assert section in stdout
    assert "return (mean ± std)" in stdout and "success" in stdout and "train s" in stdout
    for row in ROWS:
        assert row in stdout
    assert "dream-trained / reality-trained real return:" in stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rows"]) == set(ROWS)
    for row in metrics["rows"].values():
        assert np.isfinite(row["return_mean"]) and 0.0 <= row["success_rate"] <= 1.0
    assert metrics["rows"]["shortest-path oracle"]["train_seconds"] is None
    assert len(metrics["cmaes_history"]["dream"]["best"]) >= 1

    import model_zoo
    from model_zoo.agents.controllers import LinearController, load_params

    model = model_zoo.load(out / "model")
    controller = LinearController(model.feature_dim, model.action_space)
    for name in ("controller_dream.npz", "controller_reality.npz"):
        params = load_params(out / name)
        assert params.shape == (controller.num_params,) and np.all(np.isfinite(params))
    assert list((out / "data").rglob("*.hdf5")), "the dataset lives under --out, not in ~/.minari"


def test_the_same_seed_prints_the_same_table(tmp_path):
    def table(stdout: str) -> list[list[str]]:
        """The rows of the final table without their wall times (the last two columns)."""
        return [re.split(r"\s{2,}", line.strip())[:-2] for line in stdout.splitlines() if line.startswith(ROWS)]

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert table(first) == table(second) and len(table(first)) == len(ROWS)


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="world_models_pipeline")
    args = namespace["parse_args"](["--generations", "3", "--obs-mode", "dict"])
    assert args.generations == 3 and args.obs_mode == "dict" and args.tiny is False
    assert namespace["parse_args"]([]) == namespace["Args"]()
    tiny = namespace["parse_args"](["--tiny"])
    assert tiny.generations <= 2 and tiny.episodes < 20


@pytest.mark.parametrize("obs_mode", ["state", "dict", "pixels"])
def test_the_collection_policy_reads_the_goal_offset_where_there_is_one(obs_mode):
    import gymnasium as gym

    import campus_env  # noqa: F401

    namespace = runpy.run_path(str(SCRIPT), run_name="world_models_pipeline")
    envs = gym.make_vec("CampusNav-v0", num_envs=4, obs_mode=obs_mode)
    obs, _ = envs.reset(seed=0)
    actions = namespace["toward_goal"](0.0, seed=0)(obs)
    assert actions.shape == (4,) and all(0 <= a < 5 for a in actions)
    envs.close()
