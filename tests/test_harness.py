"""campusnav.harness: result files say what ran, when and where, in a pair the docs include."""

from __future__ import annotations

import datetime
import json
import math

import pytest

from campusnav.harness import Target, earlier_results, measure_rate, write_results


def test_write_results_stamps_both_files(tmp_path):
    path = write_results("probe", "| a |\n|---|\n| 1 |", {"rows": [{"a": 1}], "ratio": math.inf},
                         directory=tmp_path, command="python benchmarks/probe.py --seeds 2")
    assert path == tmp_path / "probe.md"
    data = json.loads((tmp_path / "probe.json").read_text())
    today = datetime.date.today().isoformat()
    assert data["benchmark"] == "probe" and data["date"] == today
    assert data["command"] == "python benchmarks/probe.py --seeds 2"
    assert data["rows"] == [{"a": 1}] and data["machine"]["cpus"] >= 1
    assert data["ratio"] is None or isinstance(data["ratio"], str)  # strict JSON: no Infinity
    markdown = path.read_text()
    assert markdown.splitlines()[0].startswith(f"*Measured {today} with `python benchmarks/probe.py --seeds 2`")
    assert markdown.rstrip().endswith("| 1 |")


def test_write_results_defaults_to_this_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["benchmarks/probe.py", "--quick", "a b"])
    write_results("probe", "text", {}, directory=tmp_path)
    assert json.loads((tmp_path / "probe.json").read_text())["command"] == "python benchmarks/probe.py --quick 'a b'"
    monkeypatch.setattr("sys.argv", ["/opt/venv/bin/campusnav", "pretrain", "--work", "runs/pretrain"])
    write_results("probe", "text", {}, directory=tmp_path)  # the console script, by its name
    assert json.loads((tmp_path / "probe.json").read_text())["command"] == "campusnav pretrain --work runs/pretrain"


def test_measure_rate_counts_items_per_second():
    rate = measure_rate(lambda: 5, seconds=0.02, repeats=3)
    assert len(rate.windows) == 3 and min(rate.windows) > 0 and rate.best == max(rate.windows)


def test_target_is_judged_on_its_value():
    assert Target("x", value=1.0, target=1.0).status == "PASS"
    assert Target("x", value=0.99, target=1.0).status == "MISS"
    assert Target("x", value=None, target=1.0).line.startswith("SKIP")


def test_earlier_results_are_merged_only_when_measured_the_same_way(tmp_path):
    path = tmp_path / "board.json"
    with pytest.raises(SystemExit, match="no board at"):
        earlier_results(path, "board", {"seeds": 3})
    path.write_text(json.dumps({"args": {"seeds": 3, "loop": "--iterations 15"}, "rows": [1]}))
    assert earlier_results(path, "board", {"seeds": 3, "loop": "--iterations 15"})["rows"] == [1]
    with pytest.raises(SystemExit, match="has loop '--iterations 15', this run '--iterations 5'"):
        earlier_results(path, "board", {"seeds": 3, "loop": "--iterations 5"})
