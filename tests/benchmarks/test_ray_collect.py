"""benchmarks/ray_collect.py: a quick run collects the same pixel dataset on 1 and 2 workers and reports the ratio."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ray_collect.py"


def test_a_quick_run_finds_the_datasets_identical_and_writes_its_json(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    main = runpy.run_path(str(SCRIPT), run_name="ray_collect")["main"]
    started = not ray.is_initialized()
    try:
        data = main(["--quick", "--data-path", str(tmp_path / "data"), "--json", str(tmp_path / "out.json")])
    finally:
        if started:
            ray.shutdown()
    out = capsys.readouterr().out
    assert data["identical"] and data["steps"] == 4 * 10 and data["ratio"] > 0
    assert 0 < data["writing_seconds"]["1"] < data["seconds"]["1"] and 1 < data["ceiling"] < 2
    assert "Datasets identical: yes" in out and ("PASS: 2 workers" in out or "MISS: 2 workers" in out)
    assert json.loads((tmp_path / "out.json").read_text())["steps_per_second"].keys() == {"1", "2"}
