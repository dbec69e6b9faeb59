"""benchmarks/leaderboard.py (v2): a tiny run over two models and two seeds, its results, and resuming it."""

from __future__ import annotations

import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from campusnav.leaderboard.summary import bootstrap_interval, cell_row, rank_intervals
from model_zoo.pretrained import check_pretrained, list_pretrained, pretrained_card

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard.py"


def run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), "--quick", "--models", "mlp", "causal_vae_mdnrnn", "--seeds", "2",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_a_quick_run_writes_the_board_and_a_rerun_resumes_instead_of_redoing(tmp_path):
    pytest.importorskip("Box2D", reason="the pixel part runs CarRacing-v3 (gymnasium[box2d])")
    run(tmp_path, "--workers", "2")
    results = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = {r["model"]: r for r in results["rows"]}
    assert set(rows) == {"mlp", "causal_vae_mdnrnn"} and all(r["seeds"] == 2 for r in rows.values())
    for row in rows.values():
        for column in ("obs_mse@1", "precision@1", "tv@16", "cmaes_success", "ppo_success", "car_psnr@1", "train_s",
                       "px_tv@16", "px_valid@1", "px_recon_valid"):
            low, high = row[f"{column}_ci"]
            assert low <= row[column] <= high, column  # a mean inside its interval, measured (NaN fails this)
    assert math.isfinite(rows["causal_vae_mdnrnn"]["do_error"]) and rows["mlp"]["do_error"] is None  # NaN: no do()
    assert set(results["ranks"]["precision@16"]) == set(rows)
    assert {"random_return", "cmaes_success", "ppo_return"} <= set(results["reality"])
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "### Prediction and fidelity" in markdown and "| causal_vae_mdnrnn |" in markdown
    assert any(line.startswith(("PASS", "MISS")) for line in markdown.splitlines())
    assert (tmp_path / "out" / "leaderboard.png").stat().st_size > 1000

    # a killed run resumes: only the stage that was lost is measured again
    ledger = tmp_path / "work" / "quick" / "cells" / "mlp" / "seed1" / "stages.json"
    stages = json.loads(ledger.read_text())
    weights = ledger.parent / "model" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    del stages["ppo"]
    ledger.write_text(json.dumps(stages))
    again = run(tmp_path, "--workers", "1")
    assert weights.stat().st_mtime_ns == written  # the trained weights were loaded, not trained again
    resumed = json.loads(ledger.read_text())
    assert set(resumed) == set(stages) | {"ppo"} and resumed["fidelity"] == stages["fidelity"]
    assert "(resumed)" in again.stdout

    # a board of what is there, measuring nothing: a cell that never trained is left out and named; seed 0's
    # models shipped as pretrained entries
    ledger.unlink()
    run(tmp_path, "--report-only", "--save-pretrained", str(tmp_path / "shipped"))
    partial = {r["model"]: r for r in json.loads((tmp_path / "out" / "leaderboard.json").read_text())["rows"]}
    assert partial["mlp"]["seeds"] == 1 and partial["causal_vae_mdnrnn"]["seeds"] == 2
    assert "(unfinished: mlp seed 1)" in (tmp_path / "out" / "leaderboard.md").read_text()
    assert list_pretrained(tmp_path / "shipped") == ["causal_vae_mdnrnn/campusnav-state-v0", "mlp/campusnav-state-v0"]
    check_shipped(tmp_path)
    check_merge(tmp_path)


def check_merge(tmp_path: Path) -> None:
    """--merge: one model measured again, the other's rows and curves kept from the board in --out."""
    before = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    args = [sys.executable, str(SCRIPT), "--quick", "--models", "mlp", "--seeds", "2", "--merge", "--work",
            str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    after = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert {r["model"]: r["seeds"] for r in after["rows"]} == {"mlp": 2, "causal_vae_mdnrnn": 2}
    assert after["per_seed"]["causal_vae_mdnrnn"] == before["per_seed"]["causal_vae_mdnrnn"]
    assert set(after["curves"]) == {"mlp", "causal_vae_mdnrnn"}
    assert "(merged: causal_vae_mdnrnn kept from the board of" in (tmp_path / "out" / "leaderboard.md").read_text()
    # a model measured again without frames keeps its frame columns from the board
    for seed in (0, 1):
        ledger = tmp_path / "work" / "quick" / "cells" / "mlp" / f"seed{seed}" / "stages.json"
        ledger.write_text(json.dumps({k: v for k, v in json.loads(ledger.read_text()).items()
                                      if k not in ("campus_pixels", "car")}))
    subprocess.run([*args, "--no-pixels", "--report-only"], check=True, capture_output=True, timeout=600,
                   env=dict(os.environ), cwd=tmp_path)
    framed = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert {k: v for k, v in framed["per_seed"]["mlp"][1].items() if k.startswith(("px_", "car_"))} == {
        k: v for k, v in after["per_seed"]["mlp"][1].items() if k.startswith(("px_", "car_"))} != {}
    assert "the frame columns of mlp too" in (tmp_path / "out" / "leaderboard.md").read_text()
    fewer = [*args[:6], "1", *args[7:]]
    refused = subprocess.run(fewer, capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path)
    assert refused.returncode != 0 and "has seeds 2, this run 1" in refused.stderr


def check_shipped(tmp_path: Path) -> None:
    """campusnav pretrain on the quick run: cards that name its data and scores, and that reproduce."""
    from campusnav.cli import main as cli

    work, root = tmp_path / "work" / "quick", tmp_path / "pixels"
    argv = ["pretrain", "--work", str(work), "--out", str(root), "--models", "mlp", "--pixel-models", "mlp",
            "--car-model", "mlp"]
    with mock.patch("campusnav.pretrain.MAX_BYTES", 1000), pytest.raises(SystemExit, match="nothing was written"):
        cli(argv)
    assert list_pretrained(root) == [] and not list(tmp_path.glob(".pixels-staging-*"))  # refused: nothing left
    assert cli(argv) == 0
    assert list_pretrained(root) == ["mlp/campusnav-pixels-v0", "mlp/campusnav-state-v0", "mlp/carracing-pixels-v0"]
    files = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    assert cli(argv) == 0  # the same cells again: every entry is kept as it is, not rewritten with a new save id
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == files
    stages = json.loads((work / "cells" / "mlp" / "seed0" / "stages.json").read_text())
    for name, stage in (("mlp/campusnav-state-v0", "errors"), ("mlp/campusnav-pixels-v0", "px_tv@16"),
                        ("mlp/carracing-pixels-v0", "car_psnr@1")):
        card = pretrained_card(name, root)
        assert card["storage"] == "float16"  # half the bytes, every entry alike
        assert (work / "data" / card["dataset"]["id"]).is_dir()  # the quick budget's data, read from --work
        expected = stages[stage] if stage == "errors" else stages["car" if "car" in stage else "campus_pixels"][stage]
        assert card["metrics"].get(stage) == expected
        result = check_pretrained(name, root)
        assert result["measured"] == pytest.approx(result["card"], rel=result["tolerance"])


def test_the_options_are_checked(capsys):
    namespace = runpy.run_path(str(SCRIPT), run_name="leaderboard")
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--models", "nope"])
    assert "unknown ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--seeds", "0"])
    args = namespace["parse_args"](["--quick", "--models", "rssm", "mlp"])
    assert args.models == ["rssm", "mlp"] and args.steps < namespace["Args"]().steps
    assert args.work.endswith("quick")  # a smoke run never mixes with the real board's work


def test_bootstrap_intervals_hold_the_mean_and_widen_with_spread():
    mean, low, high = bootstrap_interval([1.0, 2.0, 3.0, math.nan])
    assert mean == 2.0 and 1.0 <= low < mean < high <= 3.0
    assert bootstrap_interval([5.0, 5.0]) == (5.0, 5.0, 5.0)
    assert math.isnan(bootstrap_interval([math.nan])[0])
    narrow, wide = bootstrap_interval([1.0, 1.1, 0.9]), bootstrap_interval([0.0, 2.0, 1.0])
    assert wide[2] - wide[1] > narrow[2] - narrow[1]


def test_ranks_follow_the_better_direction_and_share_ties():
    ranks = rank_intervals({"a": [0.9, 0.8], "b": [0.1, 0.2], "c": [0.5, 0.5], "d": [0.5, 0.5]}, "higher")
    assert ranks["a"] == (1.0, 1.0, 1.0) and ranks["b"] == (4.0, 4.0, 4.0) and ranks["c"][0] == 2.5
    assert rank_intervals({"a": [0.9], "b": [0.1]}, "lower")["b"][0] == 1.0


def test_a_cell_row_reads_transfer_against_its_seeds_reality():
    cell = {"errors": {"obs_mse@1": 0.1, "obs_mse@16": 0.2}, "fidelity": {"precision@1": 0.9, "position_tv@16": 0.3},
            "cmaes": {"return": -1.0, "success": 0.4}}
    reality = {"random": {"return": -2.0}, "cmaes": {"return": 0.0, "success": 0.6}}
    row = cell_row(cell, reality, long=16)
    assert row["cmaes_transfer"] == 0.5 and row["cmaes_success"] == 0.4
    assert row["precision@1"] == 0.9 and row["tv@16"] == 0.3 and math.isnan(row["recall@16"])
    assert "ppo_transfer" not in row  # PPO was not measured


def test_late_share_tells_a_flat_curve_from_one_still_falling():
    from campusnav.leaderboard.cell import late_share

    still_falling = [(s, 100.0 - s) for s in range(0, 101, 10)]
    flat = [(0, 1000.0), (10, 10.0), (20, 5.0)] + [(s, 5.0 - 0.001 * s) for s in range(30, 101, 10)]
    assert late_share(still_falling) == pytest.approx(0.25)  # a straight line: a quarter of what follows step 20
    assert late_share(flat) < 0.3 and late_share(flat) > 0.0
    assert late_share([(0, 1.0), (50, 0.5), (100, 0.9)]) == 0.0  # rising at the end: more steps would not help
    assert math.isnan(late_share([(0, 1.0), (10, 0.5)]))



def test_the_boards_dreams_end_where_the_env_says_the_agent_reached_its_goal():
    """A model whose termination head never fires still ends a dream on the goal (MBPO's known termination)."""
    import gymnasium as gym
    import torch

    import model_zoo
    from campus_env.schema import STATE_SLICES
    from campusnav.leaderboard import QUICK
    from campusnav.leaderboard.data import CAMPUS, STATE_KWARGS
    from campusnav.leaderboard.transfer import dream_envs
    from model_zoo.base import Imagined

    real = gym.make(CAMPUS, **STATE_KWARGS)
    model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16).eval()
    decode, imagine = model.decode, model.imagine
    on_goal = {"now": False}

    def decoded(state):  # from the step chosen below, the agent's cell is the goal's
        obs = decode(state).clone()
        if on_goal["now"]:
            obs[:, STATE_SLICES["agent"]] = obs[:, STATE_SLICES["goal"]]
        return obs

    def never_ends(*args, **kwargs):
        out = imagine(*args, **kwargs)
        return Imagined(out.state, out.reward, torch.zeros_like(out.terminated))

    model.decode, model.imagine = decoded, never_ends
    envs = dream_envs(model, QUICK)(2)
    envs.reset(seed=0)
    assert not envs.step([0, 0])[2].any()
    on_goal["now"] = True
    assert envs.step([0, 0])[2].all()
