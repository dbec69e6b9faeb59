"""examples/dream_vs_reality.py runs end to end on a tiny budget and writes its video, plot and metrics."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "dream_vs_reality.py"


def run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path / "out"), *flags],
        capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy(),
    )


@pytest.mark.parametrize(("model", "policy"), [("vae_mdnrnn", "oracle"), ("mlp", "random")])
def test_runs_on_a_tiny_budget_and_writes_its_outputs(tmp_path, model, policy):
    out = run(tmp_path, "--model", model, "--policy", policy).stdout
    assert "obs_mse@1" in out and "copy_mse@1" in out and "termination_f1" in out  # the evaluation table
    assert "horizon" in out and "obs MSE (mean ± std)" in out  # the per-horizon errors
    assert f"2 rollouts of 6 {policy} actions" in out

    folder = tmp_path / "out"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model"]["id"] == model
    assert metrics["error_vs_horizon"][0]["horizon"] == 1 and metrics["error_vs_horizon"][0]["rollouts"] == 2
    assert len(metrics["rollouts"]) == 2
    for rollout in metrics["rollouts"]:
        video = Path(rollout["path"])
        assert video.parent == folder / "videos" and video.is_file()
        frames = iio.imread(video, index=None)
        assert frames.shape[0] == rollout["steps"] + 1 and frames.shape[-1] == 3
    plot = iio.imread(folder / "error_vs_horizon.png")
    assert plot.ndim == 3 and plot.shape[0] > 100
    assert (folder / "model" / "config.json").is_file()
    assert list((folder / "data").rglob("*.hdf5")), "the dataset lives under --out, not in ~/.minari"


def test_a_rerun_into_the_same_folder_replaces_the_dataset(tmp_path):
    run(tmp_path, "--model", "mlp", "--obs-mode", "state", "--policy", "random")
    run(tmp_path, "--model", "mlp", "--obs-mode", "state", "--policy", "random", "--config", "hidden=16")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["model"]["config"] == {"hidden": 16}
    frames = iio.imread(metrics["rollouts"][0]["path"], index=None)
    assert frames.shape[1] > 512 and frames.shape[2] > 2 * 512  # state vectors drawn as the whole campus


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="dream_vs_reality")
    args = namespace["parse_args"](["--model", "mlp", "--rollouts", "3", "--config", "hidden=32,layers=2"])
    assert args.model == "mlp" and args.rollouts == 3 and args.tiny is False
    assert namespace["model_config"](args) == {"hidden": 32, "layers": 2}
    assert namespace["parse_args"]([]) == namespace["Args"]()
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--model", "no_such_model"])


def test_the_same_seed_gives_the_same_weights_in_two_processes(tmp_path):
    """``--seed 0`` twice, in two processes: the saved world model is bit-identical."""
    from safetensors.numpy import load_file

    weights = []
    for run_name in ("a", "b"):
        run(tmp_path / run_name, "--model", "mlp", "--obs-mode", "state", "--policy", "random", "--seed", "0")
        tensors = load_file(tmp_path / run_name / "out" / "model" / "model.safetensors")
        weights.append({name: (str(t.dtype), t.shape, t.tobytes()) for name, t in tensors.items()})
    assert weights[0] == weights[1]
