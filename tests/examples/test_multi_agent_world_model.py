"""examples/multi_agent_world_model.py: the tiny budget trains both models and scores them on held-out walkers."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "multi_agent_world_model.py"


def test_tiny_run_trains_both_models_and_writes_results(tmp_path):
    example = runpy.run_path(str(SCRIPT), run_name="example")
    results = example["main"](["--tiny", "--out", str(tmp_path)])
    assert len(results) == 2 and all(r["trips"] > 0 for r in results.values())
    for r in results.values():
        assert 1 <= r["real_travel"] <= 24 and 1 <= r["imagined_travel"] <= 24
        assert np.isfinite(r["obs_mse@1"]) and r["travel_abs_error"] >= 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["args"]["walkers"] == 8 and "| training data |" in (tmp_path / "results.md").read_text()


def test_walker_trips_are_one_episode_per_walker():
    example = runpy.run_path(str(SCRIPT), run_name="example")
    trips = example["walker_trips"](5, 2, 30, seed=1)
    assert len(trips) == 10
    for trip in trips:
        assert trip.obs.shape == (len(trip) + 1, 72) and trip.action.shape == (len(trip),)
        assert trip.terminated.sum() + trip.truncated.sum() == 1  # a trip ends once, at its last step
        assert trip.terminated[-1] == (trip.reward[-1] > 0.5)  # arriving is rewarded
