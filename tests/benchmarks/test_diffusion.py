"""benchmarks/diffusion.py: the quick run end to end, its tables and targets, and its argument checks."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "diffusion.py"
diffusion = SimpleNamespace(**runpy.run_path(str(SCRIPT), run_name="diffusion_benchmark"))


def test_quick_run_fills_both_tables_and_judges_the_targets(capsys, tmp_path):
    report = diffusion.main(["--quick", "--compare", "--json", str(tmp_path / "report.json")])
    steps, games = report["steps"], report["games"]
    for size in ("64", "128"):
        for k in diffusion.STEPS:
            row = steps[f"diffusion {size} px, steps={k}"]
            assert 0.0 <= row["valid@1"] <= 1.0 and 0.0 <= row["valid@16"] <= 1.0
            assert row["fps@1"] > 0 and row["fps@64"] > 0 and row["train_steps"] >= 1
    assert set(diffusion.COMPARE) <= set(steps)
    assert games["one game: CampusNav-v0"] == steps[diffusion.DEFAULT_ROW]
    assert games["two games"]["psnr@1"] > 0 and "valid@16" in games["two games"]
    assert games["two games"]["train_s"] > games["one game: CarRacing-v3"]["train_s"]  # twice the seconds
    lines = report["targets"]
    assert len(lines) == 8 and all(line.startswith(("PASS  ", "MISS  ")) for line in lines)
    car = games["one game: CarRacing-v3"]["psnr@1"]
    line = next(t for t in lines if "(psnr@1)" in t)
    assert line.startswith("PASS" if games["two games"]["psnr@1"] >= 0.9 * car else "MISS")
    out = capsys.readouterr().out
    assert "| model | valid@1 | valid@16 | fps@1 | fps@64 | train_s | train_steps |" in out
    assert (tmp_path / "report.json").is_file()


def test_seconds_must_be_positive():
    with pytest.raises(SystemExit, match="--seconds must be positive"):
        diffusion.parse_args(["--seconds", "0"])


def test_a_device_that_is_not_there_stops_before_anything_runs():
    with pytest.raises(SystemExit, match="expected cpu, cuda, cuda:N or auto"):
        diffusion.parse_args(["--device", "tpu"])
    if not diffusion.torch.cuda.is_available():
        with pytest.raises(SystemExit, match="CUDA is not available"):
            diffusion.parse_args(["--device", "cuda"])
    assert diffusion.parse_args(["--device", "auto"]).device == "auto"
