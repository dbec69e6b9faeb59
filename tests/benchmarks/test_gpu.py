"""benchmarks/gpu.py: a quick CPU run measures every state-vector model; without a GPU, one line and no files."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _main():
    return runpy.run_path(str(SCRIPT), run_name="gpu")["main"]


def _check(report) -> None:
    namespace = runpy.run_path(str(SCRIPT), run_name="gpu")
    assert {r["model"] for r in report["rows"]} == set(namespace["state_models"]())
    for row in report["rows"]:
        if row["precision"] == "fp32" or "error" not in row:  # bf16 may be unsupported by a model's ops
            assert math.isfinite(row["train_samples_per_s"]) and row["train_samples_per_s"] > 0, row
            assert row["imagined_steps_per_s"] > 0, row


def test_a_quick_cpu_run_measures_every_state_vector_model_in_both_precisions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = _main()(["--device", "cpu", "--quick", "--out", str(tmp_path / "out")])
    assert {r["precision"] for r in report["rows"]} == {"fp32", "bf16"}
    _check(report)
    assert not (tmp_path / "out").exists()  # --quick writes nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_writes_nothing(tmp_path, capsys):
    assert _main()(["--quick", "--out", str(tmp_path / "out")]) is None
    out = capsys.readouterr().out
    assert "no GPU found" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_a_quick_run_on_the_gpu():
    report = _main()(["--device", "cuda", "--quick"])
    assert report["device"].startswith("cuda")
    _check(report)
