"""benchmarks/mlp_outcomes.py: a quick run compares the two mlps on fidelity and the deterministic bound."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mlp_outcomes.py"


def test_a_quick_run_writes_both_variants_and_the_targets(tmp_path):
    main = runpy.run_path(str(SCRIPT), run_name="mlp_outcomes")["main"]
    report = main(["--quick", "--seeds", "1", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert set(report["runs"]) == {"deterministic", "outcomes=4"}
    for runs in report["runs"].values():
        assert len(runs) == 1 and 0.0 <= runs[0]["precision@16"] <= 1.0 and runs[0]["copy_over_model@1"] > 0
    assert report["bound"] > 1.0  # copying is worse than the best deterministic guess
    saved = json.loads((tmp_path / "out" / "mlp_outcomes.json").read_text())
    assert len(saved["targets"]) == 3 and all(t.startswith(("PASS", "MISS")) for t in saved["targets"])
