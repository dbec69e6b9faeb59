"""benchmarks/dream_fidelity.py: a quick run measures the walk in reality and in every variant's dream."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dream_fidelity.py"


def test_a_quick_run_measures_every_variant_against_reality(tmp_path, capsys):
    namespace = runpy.run_path(str(SCRIPT), run_name="dream_fidelity")
    results = namespace["main"](["--quick", "--json", str(tmp_path / "out.json")])
    rows = results["rows"]
    assert list(rows) == ["reality", *namespace["VARIANTS"]]
    assert rows["reality"]["share_of_real_gain"] == 1.0
    # the walk reaches the goal in reality (the probe works), and every row counts whole episodes
    assert rows["reality"]["success"] > 0.3
    for row in rows.values():
        assert 0.0 <= row["success"] <= 1.0 and 0.0 <= row["blocked_per_step"] <= 1.0
        assert 1.0 <= row["steps"] <= 100.0
    assert json.loads((tmp_path / "out.json").read_text())["rows"].keys() == rows.keys()
    table = capsys.readouterr().out
    assert "| reality |" in table and "| outcomes=4, snap_levels=64 |" in table


def test_pretrained_dreams_are_probed_as_shipped_and_unknown_names_refused(tmp_path):
    namespace = runpy.run_path(str(SCRIPT), run_name="dream_fidelity")
    name = "mlp/campusnav-state-v0"
    results = namespace["main"](["--quick", "--episodes", "16", "--pretrained", name])
    assert list(results["rows"]) == ["reality", name]  # no mlp variant is trained
    assert 1.0 <= results["rows"][name]["steps"] <= 100.0 and "train_s" not in results["rows"][name]
    with pytest.raises(SystemExit, match="unknown"):
        namespace["main"](["--quick", "--pretrained", "mlp/no-such-weights"])
