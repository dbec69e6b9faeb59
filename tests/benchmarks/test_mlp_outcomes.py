"""benchmarks/mlp_outcomes.py: a quick run compares the mlps on fidelity, the deterministic bound and transfer."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mlp_outcomes.py"
mlp_outcomes = runpy.run_path(str(SCRIPT), run_name="mlp_outcomes")


def test_a_quick_run_writes_both_variants_and_the_targets(tmp_path):
    report = mlp_outcomes["main"](["--quick", "--seeds", "1", "--work", str(tmp_path / "work"), "--out",
                                   str(tmp_path / "out")])
    assert set(report["runs"]) == {"deterministic", "outcomes=4"}
    for runs in report["runs"].values():
        assert len(runs) == 1 and 0.0 <= runs[0]["precision@16"] <= 1.0 and runs[0]["copy_over_model@1"] > 0
        assert "cmaes_transfer" not in runs[0]
    assert report["bound"] > 1.0  # copying is worse than the best deterministic guess
    saved = json.loads((tmp_path / "out" / "mlp_outcomes.json").read_text())
    assert len(saved["targets"]) == 3 and all(t.startswith(("PASS", "MISS")) for t in saved["targets"])


def test_with_transfer_every_row_has_a_controller_scored_against_reality(tmp_path):
    report = mlp_outcomes["main"](["--quick", "--seeds", "1", "--models", "mlp", "mlp_ensemble", "--transfer",
                                   "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    names = {"deterministic", "outcomes=4", "mlp_ensemble, deterministic", "mlp_ensemble, outcomes=4"}
    assert set(report["runs"]) == names
    reference = report["reality"][0]
    for run in (runs[0] for runs in report["runs"].values()):
        assert 0.0 <= run["cmaes_success"] <= 1.0
        gain = reference["reality_return"] - reference["random_return"]
        expected = (run["cmaes_return"] - reference["random_return"]) / gain if gain > 0 else math.nan
        assert run["cmaes_transfer"] == pytest.approx(expected, nan_ok=True)
    transfer = [t for t in report["targets"] if "CMA-ES transfer" in t]
    assert len(report["targets"]) == 3 + 4 and len(transfer) == 4


def test_only_the_mlp_family_is_compared():
    with pytest.raises(SystemExit, match="--models"):
        mlp_outcomes["parse_args"](["--models", "rssm"])
