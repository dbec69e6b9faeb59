"""``wrappers.recorder``: the side-by-side dream-vs-reality video and its per-step errors."""

from __future__ import annotations

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from wrappers import recorder
from wrappers.recorder import plot_error_vs_horizon, record_side_by_side

ACTIONS = [3, 3, 1, 1, 2, 4]


def env_and_model(obs_mode: str = "dict"):
    env = gym.make("CampusNav-v0", obs_mode=obs_mode)
    torch.manual_seed(0)
    return env, model_zoo.make("mlp", env.observation_space, env.action_space, hidden=32)


def test_writes_a_readable_side_by_side_gif(tmp_path):
    env, model = env_and_model()
    result = record_side_by_side(env, model, ACTIONS, tmp_path / "dream.gif", seed=0, steps=len(ACTIONS), fps=5)
    path = tmp_path / "dream.gif"
    assert result["path"] == str(path) and path.stat().st_size > 0
    frames = iio.imread(path, index=None)
    assert len(frames) == result["frames"] == len(ACTIONS) + 1
    height, width = frames.shape[1:3]
    assert (height, width, 3) == result["frame_shape"]
    scale = recorder.TARGET_WIDTH // 64
    assert 2 * 64 * scale < width <= 2 * 64 * scale + 16  # [real | bar | dream]
    assert height % 16 == 0 and width % 16 == 0
    # the left half is the real image, enlarged: the reset frame is the real first observation
    first, _ = gym.make("CampusNav-v0").reset(seed=0)
    left = frames[0][: 64 * scale, : 64 * scale][::scale, ::scale].astype(int)
    assert np.abs(left - first["image"]).mean() < 4  # equal up to the GIF palette
    assert len(result["errors"]) == len(ACTIONS) == result["steps"]
    assert all(np.isfinite(e) and e >= 0 for e in result["errors"])
    assert set(result["part_errors"]) == {"image", "state", "causal"}
    assert len(result["rewards"]["real"]) == len(result["rewards"]["dream"]) == len(ACTIONS)


def test_errors_are_the_mse_against_the_open_loop_dream(tmp_path):
    env, model = env_and_model("state")
    result = record_side_by_side(env, model, ACTIONS, tmp_path / "v.gif", seed=2, steps=4)
    real = gym.make("CampusNav-v0", obs_mode="state")
    obs, _ = real.reset(seed=2)
    with torch.no_grad():
        state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64), torch.as_tensor(obs[None]),
                              torch.ones(1, dtype=torch.bool))
        for t in range(4):
            obs = real.step(ACTIONS[t])[0]
            state = model.imagine(state, torch.tensor([ACTIONS[t]])).state
            dream = model.decode(state)[0].numpy()
            expected = float(np.mean((obs.astype(np.float64) - dream.astype(np.float64)) ** 2))
            assert result["errors"][t] == pytest.approx(expected, rel=1e-6)
    assert result["frame_shape"][1] % 16 == 0  # vector observations drawn as cells


def test_a_policy_and_an_early_end(tmp_path):
    env = gym.make("CampusNav-v0", obs_mode="pixels", max_episode_steps=3)
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=32)
    seen = []

    def policy(obs):
        seen.append(obs.shape)
        return 3

    result = record_side_by_side(env, model, policy, tmp_path / "p.gif", seed=0, steps=10)
    assert result["steps"] == 3 == len(result["errors"]) and seen == [(64, 64, 3)] * 3
    assert len(iio.imread(result["path"], index=None)) == 4


def test_mp4_without_a_backend_falls_back_to_gif(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder, "video_backend", lambda: None)
    env, model = env_and_model("state")
    with pytest.warns(UserWarning, match="GIF"):
        result = record_side_by_side(env, model, ACTIONS, tmp_path / "v.mp4", seed=0, steps=2)
    assert result["path"] == str(tmp_path / "v.gif") and len(iio.imread(result["path"], index=None)) == 3


def test_clear_errors(tmp_path):
    env, model = env_and_model()
    with pytest.raises(ValueError, match="at least 5 actions"):
        record_side_by_side(env, model, [0, 1], tmp_path / "x.gif", seed=0, steps=5)
    with pytest.raises(ValueError, match="does not take interventions"):
        record_side_by_side(env, model, ACTIONS, tmp_path / "x.gif", seed=0, steps=2, do={"gameday": True})
    with pytest.raises(ValueError, match="spaces"):
        record_side_by_side(gym.make("CampusNav-v0", obs_mode="state"), model, ACTIONS, tmp_path / "x.gif",
                            seed=0, steps=2)
    with pytest.raises(ValueError, match=".gif or"):
        record_side_by_side(env, model, ACTIONS, tmp_path / "x.png", seed=0, steps=2)


def test_plot_error_vs_horizon(tmp_path):
    one = plot_error_vs_horizon([0.1, 0.2, 0.4], tmp_path / "one.png")
    many = plot_error_vs_horizon({"mlp": [[0.1, 0.2], [0.3]], "other": [0.2, 0.1]}, tmp_path / "plots" / "many.png")
    for path in (one, many):
        image = iio.imread(path)
        assert path.stat().st_size > 0 and image.ndim == 3
