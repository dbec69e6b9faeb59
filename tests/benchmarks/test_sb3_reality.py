"""benchmarks/sb3_reality.py and campusnav.baselines: result files, curve points, frame stacking, bad settings,
shaped pixels, runs that resume."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from campusnav.baselines import PRESETS, Baseline, Evaluation, make_venv, score, train

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sb3_reality.py"
EVALUATION = Evaluation(episodes=2, reset_seed=0)


def tiny(name: str, num_envs: int = 4) -> Baseline:
    baseline = PRESETS[name]
    if baseline.algo == "dqn":
        return baseline.replace(num_envs=num_envs, hyperparams=dict(learning_starts=16, buffer_size=500, batch_size=16))
    return baseline.replace(num_envs=num_envs, hyperparams=dict(n_steps=16, batch_size=32))


def test_quick_run_writes_the_results(tmp_path):
    main = runpy.run_path(str(SCRIPT), run_name="sb3_reality")["main"]
    main(["--quick", "--out", str(tmp_path), "--work", str(tmp_path / "work"), "--candidates", "default", "framestack4",
          "--presets", "tuned", "dqn"])
    sweep = json.loads((tmp_path / "sb3_sweep.json").read_text())
    assert {"benchmark", "command", "date", "machine", "args", "best", "rows"} <= set(sweep)
    assert [r["preset"] for r in sweep["rows"]] == ["default", "framestack4"]
    assert sweep["best"] in ("default", "framestack4")
    reality = json.loads((tmp_path / "sb3_reality.json").read_text())
    assert [r["preset"] for r in reality["rows"]] == ["tuned", "dqn"]
    assert reality["targets"][0]["status"] in ("PASS", "MISS")
    for row in sweep["rows"] + reality["rows"]:
        assert {"final_success_rate", "final_return_mean", "train_seconds", "steps_to_0.9", "settings"} <= set(row)
        assert set(row["curve"]) == {"steps", "return_mean", "success_rate", "seconds"}
        assert row["curve"]["steps"][0] == 0 and row["curve"]["steps"][-1] == row["final_steps"] == 512
    assert (tmp_path / "sb3_reality.png").stat().st_size > 0
    assert (tmp_path / "work" / "quick" / "tuned-512" / "seed0" / "agent.safetensors").exists()  # kept to resume
    assert "tuned PPO success >= 0.90" in (tmp_path / "sb3_reality.md").read_text()


def test_merge_keeps_the_presets_a_run_does_not_train_and_judges_tuned(tmp_path):
    main = runpy.run_path(str(SCRIPT), run_name="sb3_reality")["main"]
    argv = ["--quick", "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    first = main(argv + ["--presets", "tuned", "dqn"])["reference"]
    merged = main(argv + ["--presets", "dqn", "recurrent", "--merge"])["reference"]
    assert [r["preset"] for r in merged["rows"]] == ["tuned", "dqn", "recurrent"]
    assert merged["rows"][0] == first["rows"][0]  # kept as it was, not trained again
    assert merged["targets"][0]["value"] == first["targets"][0]["value"]  # the tuned row still judged
    assert "(merged: tuned kept" in (tmp_path / "sb3_reality.md").read_text()
    with pytest.raises(SystemExit, match="eval_seed"):  # scored on other episodes: refused before training
        main(argv + ["--presets", "dqn", "--eval-seed", "5", "--merge"])
    alone = main(["--quick", "--out", str(tmp_path / "alone"), "--work", str(tmp_path / "work"), "--presets", "dqn"])[
        "reference"]
    assert alone["targets"][0]["status"] == "SKIP"  # no tuned row to judge


@pytest.mark.parametrize(("eval_every", "expected"), [(256, [0, 256, 512, 768, 1024]),
                                                       (250, [0, 252, 500, 752, 1000, 1024])])
def test_curve_points_at_each_multiple_of_eval_every(eval_every, expected):
    run = train(tiny("default"), 1024, seed=0, evaluation=EVALUATION, eval_every=eval_every)
    assert run.curve["steps"] == expected  # the first step of 4 envs at or past each multiple, and the end
    assert all(0.0 <= s <= 1.0 for s in run.curve["success_rate"])
    assert run.final["steps"] == 1024 and run.seconds == run.curve["seconds"][-1]


def test_scoring_during_training_does_not_change_it():
    often = train(tiny("default"), 256, seed=0, evaluation=EVALUATION, eval_every=64)
    rarely = train(tiny("default"), 256, seed=0, evaluation=EVALUATION, eval_every=256)
    for a, b in zip(often.agent.policy.parameters(), rarely.agent.policy.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_frame_stacking_changes_the_observation_shape():
    plain, stacked = make_venv(tiny("default", 2)), make_venv(tiny("framestack4", 2))
    assert plain.observation_space.shape == (72,) and stacked.observation_space.shape == (4 * 72,)
    assert stacked.reset().shape == (2, 4 * 72)
    plain.close(), stacked.close()


@pytest.mark.parametrize("name", ["framestack4", "recurrent", "dqn", "pixels-cnn"])
def test_every_kind_of_agent_learns_and_is_scored(name, sb3_temp_dir):
    run = train(tiny(name, 2), 64, seed=0, evaluation=EVALUATION, eval_every=64)
    assert run.curve["steps"] == [0, 64]
    assert not list(sb3_temp_dir.glob("SB3-*"))  # no log folder left behind
    outcomes = score(run.agent, tiny(name, 2), EVALUATION)
    assert outcomes.returns.shape == (2,)


def test_recurrent_tuned_differs_from_tuned_by_its_memory_only():
    recurrent, tuned = PRESETS["recurrent-tuned"], PRESETS["tuned"]
    assert recurrent.policy == "MlpLstmPolicy" and recurrent.replace(algo="ppo") == tuned


def test_the_cnn_takes_64x64_rgb_frames():
    venv = make_venv(tiny("pixels-cnn", 2))
    assert venv.observation_space.shape == (64, 64, 3) and venv.observation_space.dtype == np.uint8
    assert venv.reset().shape == (2, 64, 64, 3)
    venv.close()
    assert PRESETS["pixels-cnn"].policy == "CnnPolicy"
    assert PRESETS["pixels-cnn"].replace(obs_mode="state") == PRESETS["tuned"]


def test_shaped_pixels_earn_the_shaped_rewards_of_state_vectors():
    pixels, state = make_venv(tiny("pixels-cnn", 3)), make_venv(tiny("tuned", 3))
    assert PRESETS["pixels-cnn"].shaping > 0
    pixels.seed(7), state.seed(7)
    pixels.reset(), state.reset()
    actions = np.random.default_rng(0).integers(0, state.action_space.n, (150, 3))
    shaped = []
    for action in actions:  # 150 steps: past the 100-step time limit, so terminal observations are read too
        _, pixel_reward, pixel_done, pixel_infos = pixels.step(action)
        _, state_reward, state_done, _ = state.step(action)
        np.testing.assert_allclose(pixel_reward, state_reward, atol=1e-6)
        assert np.array_equal(pixel_done, state_done)
        shaped.append(pixel_reward)
        for info in pixel_infos:
            if "terminal_observation" in info:
                assert info["terminal_observation"].shape == (64, 64, 3)
    assert np.unique(np.round(shaped, 4)).size > 3  # shaping makes rewards other than the env's few values
    pixels.close(), state.close()


def test_shaped_pixels_refuse_a_world_without_dict_observations():
    with pytest.raises(ValueError, match="dict observations"):
        make_venv(tiny("pixels-cnn", 2), lambda n: None)


@pytest.mark.parametrize("bad", [dict(algo="a2c"), dict(obs_mode="rgb"), dict(frame_stack=0)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        Baseline(**bad)


def test_unknown_preset_exits():
    main = runpy.run_path(str(SCRIPT), run_name="sb3_reality")["main"]
    with pytest.raises(SystemExit, match="unknown presets"):
        main(["--quick", "--presets", "nonsense"])


class Killed(Exception):
    pass


def kill_at(point: int):
    lines = []

    def progress(line: str) -> None:
        lines.append(line)
        if len(lines) == point:
            raise Killed

    return progress


@pytest.mark.parametrize("name", ["tuned", "dqn"])
def test_a_killed_run_goes_on_from_its_last_curve_point(name, tmp_path):
    baseline = tiny(name, 2)
    with pytest.raises(Killed):
        train(baseline, 256, seed=0, evaluation=EVALUATION, eval_every=64, checkpoint=tmp_path, progress=kill_at(3))
    killed = json.loads((tmp_path / "run.json").read_text())["curve"]
    assert killed["steps"] == [0, 64, 128]
    resumed = train(baseline, 256, seed=0, evaluation=EVALUATION, eval_every=64, checkpoint=tmp_path)
    assert resumed.agent.num_timesteps == 256 and resumed.curve["steps"] == [0, 64, 128, 192, 256]
    assert {k: v[:3] for k, v in resumed.curve.items()} == killed  # the points before the kill, as they were
    assert resumed.curve["seconds"] == sorted(resumed.curve["seconds"])  # the clock went on
    assert resumed.agent._total_timesteps == 256  # what the decaying schedules (learning rate, epsilon) read
    again = train(baseline, 256, seed=0, evaluation=EVALUATION, eval_every=64, checkpoint=tmp_path)
    assert again.curve == resumed.curve  # a finished run is returned as it was
    for a, b in zip(again.agent.policy.parameters(), resumed.agent.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    train(tiny("tuned", 2), 128, seed=0, evaluation=EVALUATION, eval_every=64, checkpoint=tmp_path)
    other = train(tiny("tuned", 2), 128, seed=1, evaluation=EVALUATION, eval_every=64, checkpoint=tmp_path)
    assert other.curve["steps"] == [0, 64, 128]
    assert json.loads((tmp_path / "run.json").read_text())["run"]["seed"] == 1
