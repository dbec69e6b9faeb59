"""benchmarks/walker_discovery.py: relations are judged from the discovered graph; a quick run reports them all."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from model_zoo.causal.discovery import Discovery

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "walker_discovery.py"


@pytest.fixture(scope="module")
def script():
    return runpy.run_path(str(SCRIPT), run_name="walker_discovery")


def test_a_relation_is_found_by_its_edge_or_its_ancestors(script):
    found = Discovery(graph={"walkers": (), "walker_density": ("walkers",), "crowd": ("walker_density",),
                             "trail": (), "speed": ()},
                      ancestors={"walker_density": ("walkers",), "crowd": ("walker_density", "walkers")},
                      tests=(), experiments=1, samples=1, alpha=0.01)
    judged = {(r["cause"], r["effect"]): r["found"] for r in script["relations"](found)}
    assert judged["walkers", "walker_density"] and judged["walkers", "crowd"]  # an edge; an ancestor
    assert not judged["walkers", "trail"] and not judged["trail", "speed"]  # no edge
    assert not judged["walkers", "travel_time"]  # not among travel time's ancestors


def test_a_quick_run_reports_every_relation_and_effect(script, tmp_path, capsys):
    data = script["main"](["--quick", "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert len(data["relations"]) == len(script["RELATIONS"])
    for r in data["relations"]:
        assert f"{'FOUND' if r['found'] else 'MISSING'}  {r['cause']} -> {r['effect']}" in out
    assert {(e["variable"], e["outcome"]) for e in data["effects"]} >= {("walkers", "crowd"), ("trail", "speed")}
    assert json.loads((tmp_path / "out.json").read_text())["graph"] == data["graph"]


def test_a_malformed_background_exits_before_any_episode(script):
    with pytest.raises(SystemExit, match="--background"):
        script["main"](["--quick", "--background", "weather"])


def test_each_background_has_its_own_result_files(script):
    args = script["parse_args"](["--quick"])
    assert script["result_name"](args) == "walker_discovery"
    rainy = script["parse_args"](["--quick", "--background", "weather=rainy,crowd=0.3"])
    assert script["result_name"](rainy) == "walker_discovery_crowd-0p3_weather-rainy"
