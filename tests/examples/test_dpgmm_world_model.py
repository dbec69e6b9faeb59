"""examples/dpgmm_world_model.py runs end to end on a tiny budget and writes its plots and metrics."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "dpgmm_world_model.py"


def test_runs_on_a_tiny_budget_and_writes_its_outputs(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path / "out"), "--config", "components=3"],
        capture_output=True, text=True, check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    assert "held-out task losses" in out and "rgb / sum" in out
    assert "components_in_use" in out and "dpgmm_vrnn (rgb)" in out and "dpgmm_vrnn (sum)" in out

    folder = tmp_path / "out"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["components"] == 3  # --config on top of the tiny model
    assert set(metrics["heldout_task_losses"]) == {"rgb", "sum"}
    for losses in metrics["heldout_task_losses"].values():
        assert set(losses) == {"elbo", "vq", "predictive", "attention", "loss"}
    history = metrics["usage_history"]
    assert [row["step"] for row in history] == [0, 2, 4]  # before training, then every --usage-every steps
    contexts = [name for name in history[-1] if name != "step"]
    assert contexts and all(1 <= history[-1][name]["in_use"] <= 3 for name in contexts)
    assert all(len(history[-1][name]["weights"]) == 3 for name in contexts)
    for row in metrics["evaluation"].values():
        assert 1 <= row["components_in_use"] <= 3
    for name in ("mixture_usage.png", "attention_maps.png"):
        image = iio.imread(folder / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert list((folder / "data").rglob("*.hdf5")), "the dataset lives under --out, not in ~/.minari"


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="dpgmm_world_model")
    args = namespace["parse_args"](["--train-steps", "7", "--no-compare", "--config", "components=10,balancer=pcgrad"])
    assert args.train_steps == 7 and args.compare is False and args.tiny is False
    assert namespace["model_config"](args.config) == {"components": 10, "balancer": "pcgrad"}
    assert namespace["parse_args"]([]) == namespace["Args"]()
    with pytest.raises(SystemExit):
        namespace["model_config"]("components")
