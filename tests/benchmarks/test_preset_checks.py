"""benchmarks/preset_checks.py: one preset choice changed at a time, scored as the leaderboard scores."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

import model_zoo

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def checks():
    return runpy.run_path(str(BENCHMARKS / "preset_checks.py"), run_name="preset_checks")


def test_the_preset_run_is_the_leaderboards_cell_and_retraining_it_gives_the_same_numbers(tmp_path, checks):
    board = runpy.run_path(str(BENCHMARKS / "leaderboard.py"), run_name="leaderboard")
    work = tmp_path / "work"
    board["main"](["--quick", "--models", "mlp", "--seeds", "1", "--no-pixels", "--workers", "1", "--work", str(work),
                   "--out", str(tmp_path / "board")])
    report = checks["main"](["--quick", "--work", str(work), "--checks", "mlp:lr=1e-3", "mlp:lr=3e-2"])
    same, faster = report["rows"]
    assert same["preset"] == 1e-3 and same["changed"] == 1e-3
    cell = json.loads((work / "quick" / "cells" / "mlp" / "seed0" / "stages.json").read_text())
    assert same["preset_run"]["obs_mse@1"] == cell["errors"]["obs_mse@1"]  # read from the board's cell
    for key in ("obs_mse@1", "obs_mse@16", "precision@16", "position_tv@16"):
        assert same["changed_run"][key] == pytest.approx(same["preset_run"][key], rel=1e-5), key  # retrained alike
    assert faster["changed_run"]["obs_mse@1"] != faster["preset_run"]["obs_mse@1"]
    assert json.loads((work / "quick" / "preset_checks.json").read_text())["rows"][1]["changed"] == 3e-2


@pytest.mark.parametrize("text, message", [
    ("rssm", "write MODEL:FIELD=VALUE"), ("nope:lr=1", "unknown model 'nope'"),
    ("rssm:nope=1", "no config field 'nope'"), ("rssm:delta_vector=yes", "not a Python literal")])
def test_a_bad_check_is_refused_by_name(checks, capsys, text, message):
    with pytest.raises(SystemExit):
        checks["parse_args"](["--checks", text])
    assert message in capsys.readouterr().err


def test_parsed_checks_name_the_preset_they_change(checks):
    check = checks["parse_check"]("rssm:delta_vector=False")
    assert check.overrides == {"delta_vector": False} and check.lr is None and check.preset_value() is True
    rate = checks["parse_check"]("vae_mdnrnn:lr=2e-3")
    assert rate.overrides == {} and rate.lr == 2e-3
    assert rate.preset_value() == model_zoo.preset("vae_mdnrnn", "campusnav-state").lr != 2e-3


def test_the_verdict_counts_wins_in_each_metrics_direction(checks):
    verdict = checks["verdict"]
    base = {"obs_mse@1": 1.0, "obs_mse@16": 1.0, "precision@16": 0.5, "position_tv@16": 0.5}
    better = {"obs_mse@1": 0.9, "obs_mse@16": 0.9, "precision@16": 0.6, "position_tv@16": 0.4}
    assert verdict(base, better) == "changed" and verdict(better, base) == "preset"
    assert verdict(base, {**better, "precision@16": 0.4, "position_tv@16": 0.6}) == "split"
    assert verdict(base, dict(base)) == "split"


def test_merge_replaces_the_rows_measured_again_and_keeps_the_others(checks, tmp_path):
    path = tmp_path / "preset_checks.json"
    row = lambda model, choice, seed, value: {"model": model, "choice": choice, "seed": seed, "changed": value}  # noqa: E731
    path.write_text(json.dumps({"rows": [row("rssm", "lr", 0, 1), row("mlp", "lr", 0, 2), row("mlp", "lr", 1, 3)]}))
    rows = checks["merged"](path, [row("mlp", "lr", 0, 20), row("vae_mdnrnn", "delta_vector", 0, 4)])
    assert [(r["model"], r["seed"], r["changed"]) for r in rows] == [
        ("rssm", 0, 1), ("mlp", 0, 20), ("mlp", 1, 3), ("vae_mdnrnn", 0, 4)]
    assert checks["merged"](tmp_path / "none.json", rows[:1]) == rows[:1]
