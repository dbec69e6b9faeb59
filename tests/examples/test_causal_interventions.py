"""examples/causal_interventions.py runs end to end on a tiny budget and writes its tables, plots and summary."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "causal_interventions.py"


def test_runs_on_a_tiny_budget_and_writes_its_outputs(tmp_path):
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out_dir)],
        capture_output=True, text=True, check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    out = result.stdout
    assert "SHD to env.unwrapped.causal_graph:" in out and "11 experiments" in out
    assert "p (Friedman, Holm)" in out  # effects on the outcomes
    for model in ("causal_vae_mdnrnn", "vae_mdnrnn"):
        assert f"| train -> heldout contexts | {model} |" in out and f"| fall -> spring | {model} |" in out
    assert "| dream of causal_vae_mdnrnn, surprise gameday |" in out and "| reality, surprise gameday |" in out
    assert "| dream of vae_mdnrnn, normal day (no do()) |" in out
    assert "| gameday | blocked_moves |" in out and "| snow | return |" in out  # the twins

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["discovery"]["samples"] == 11 * 300 and metrics["discovery"]["shd"] >= 0
    assert set(metrics["twins"]) == {"gameday", "crowd", "snow", "spring"}
    assert len(metrics["generalization"]) == 4
    for row in metrics["surprise_gameday"].values():
        assert len(row["return"]) == 2  # two seeded episodes per condition
    summary = (out_dir / "summary.md").read_text()
    assert "## 1. Structure discovery" in summary and "**SHD" in summary and "![twins](twins.png)" in summary
    for name in ("surprise_gameday.png", "twins.png", "generalization.png"):
        image = iio.imread(out_dir / name)
        assert image.ndim == 3 and image.shape[0] > 100


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="causal_interventions")
    args = namespace["parse_args"](["--discovery-samples", "500", "--surprise-step", "7"])
    assert args.discovery_samples == 500 and args.surprise_step == 7 and args.tiny is False
    assert namespace["parse_args"]([]) == namespace["Args"]()
    tiny = namespace["parse_args"](["--tiny"])
    assert tiny.train_steps < namespace["Args"]().train_steps and tiny.discovery_samples == 300
