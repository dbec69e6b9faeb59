"""examples/multi_agent_emergence.py runs end to end on a tiny budget and writes its video, picture and tables."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "multi_agent_emergence.py"


def test_runs_on_a_tiny_budget_and_writes_its_outputs(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy(),
    ).stdout
    for heading in ("travel (min/trip)", "top-5% share, first → last day", "footfall off single-agent paths",
                    "against the number of walkers", "day by day"):
        assert heading in out
    for condition in ("natural", "do(gameday=True)", "do(weather='rainy')", "off (do(trail=0))"):
        assert condition in out
    assert (tmp_path / "results.md").read_text().count("| Mon |") == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["runs"]) == 3 * 2 * 2  # conditions x trails on/off x walker counts
    for run in metrics["runs"]:
        assert len(run["top5_share_by_day"]) == 2 and 0 < run["top5_share_week"] <= 1
        assert run["trips_per_walker_per_day"] > 0
        if not run["trails"]:
            assert run["worn_cells"] == 0 and max(run["trail_by_day"]) == 0
    video = next(tmp_path.glob("traffic.*"))
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == 2 * 40 // 10  # two days of 40 minutes, a frame every 10
    assert frames.shape[2] == 2 * (frames.shape[1] - 48)  # campus | heat map, a status strip below
    picture = iio.imread(tmp_path / "trail_map.png")
    assert picture.ndim == 3 and picture.shape[1] > 800


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="multi_agent_emergence")
    args = namespace["parse_args"](["--walkers", "30", "--counts", "1", "30", "--days", "3"])
    assert args.walkers == 30 and args.counts == [1, 30] and args.days == 3 and not args.tiny
    assert namespace["parse_args"]([]) == namespace["Args"]()
    for bad in (["--days", "8"], ["--walkers", "0"], ["--day-minutes", "2000"]):
        with pytest.raises(SystemExit):
            namespace["parse_args"](bad)
