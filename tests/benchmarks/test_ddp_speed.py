"""benchmarks/ddp_speed.py: a quick run trains in one process and in two torchrun processes and compares them."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ddp_speed.py"


def test_a_quick_run_measures_one_and_two_processes(tmp_path, capsys):
    main = runpy.run_path(str(SCRIPT), run_name="ddp_speed")["main"]
    report = main(["--quick", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert report["one_process"] > 0 and report["two_processes"] > 0
    assert report["one_thread"] > 0 and report["half_batch"] > 0
    assert report["batch_ceiling"] == report["half_batch"] / report["one_process"]
    assert report["ratio"] == report["two_processes"] / report["one_process"]
    assert report["ceiling"] == 2 * report["one_thread"] / report["one_process"]
    assert report["efficiency"] == report["two_processes"] / (2 * report["one_thread"])
    assert report["target"]["status"] in ("PASS", "MISS")
    assert f"{report['target']['status']}  2 processes / 1 process >= 1.4" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # --quick writes nothing
