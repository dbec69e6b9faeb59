"""benchmarks/demo_under_load.py: the demo is timed beside a spinning process."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "demo_under_load.py"


def test_a_tiny_demo_beside_a_busy_process_is_timed(tmp_path, capsys):
    namespace = runpy.run_path(str(SCRIPT), run_name="demo_under_load")
    report = namespace["main"](["--tiny", "--out", str(tmp_path / "demo")])
    assert report["seconds"] > 0 and set(report["stages"]) >= {"collect", "train"}
    assert (tmp_path / "demo" / "report.md").is_file()
    assert "beside 1 spinning process(es)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--busy must be >= 0"):
        namespace["main"](["--busy", "-1"])
