"""``wrappers.recorder``: the side-by-side dream-vs-reality video and its per-step errors."""

from __future__ import annotations

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.observation_render import render_observation
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
    assert result["frame_shape"][1] % 16 == 0  # video codecs want sides in multiples of 16


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


def bright(pixels: np.ndarray) -> int:
    """How many pixels are text-white."""
    return int((pixels.min(axis=-1) > 180).sum())


def test_state_observations_are_drawn_as_the_campus_with_a_caption(tmp_path):
    env, model = env_and_model("state")
    result = record_side_by_side(env, model, ACTIONS, tmp_path / "campus.gif", seed=0, steps=3)
    frames = iio.imread(result["path"], index=None)
    first, _ = gym.make("CampusNav-v0", obs_mode="state").reset(seed=0)
    campus = render_observation(first)  # (H, W, 3): the whole campus, status strip included
    height, width = campus.shape[:2]
    assert frames.shape[1] > height and 2 * width < frames.shape[2] <= 2 * width + 16  # not a grid of cells
    assert np.abs(frames[0][:height, :width].astype(int) - campus).mean() < 4  # equal up to the GIF palette
    sep = frames.shape[2] - 2 * width
    assert (frames[0][:height, width : width + sep] > 240).all()  # the bar between reality and the dream
    for frame in frames:
        below = frame[height:]
        assert bright(below[:, :width]) > 50 and bright(below[:, width + sep :]) > 50  # text under both sides
    assert not np.array_equal(frames[1][height:], frames[2][height:])  # each step's own caption


def test_the_caption_names_the_step_the_action_and_both_rewards():
    rollout = recorder._SideBySide([], {}, actions=[3, 0], real_ended=["", "terminated"],
                                   rewards={"real": [-0.01, 0.99], "dream": [-0.02, 0.5]},
                                   dream_terminated=[False, True])
    captions = recorder._captions(rollout, ("stay", "north", "south", "east", "west"))
    assert captions[0] == (["reality   step 0 (reset)"], ["dream   step 0 (filtered from reality)"])
    assert captions[1] == (["reality   step 1", "action 3 east   reward -0.010"],
                           ["dream   step 1", "action 3 east   reward -0.020"])
    assert captions[2][0][1] == "action 0 stay   reward +0.990   terminated"
    assert captions[2][1][1] == "action 0 stay   reward +0.500   terminated"
    assert recorder._captions(rollout, None)[1][0][1] == "action 3   reward -0.010"  # no words: the number
    assert recorder._action_text(np.array([0.5, -1.0]), None) == "[ 0.5, -1. ]"


class Drawn(gym.Wrapper):
    """CartPole whose metadata names a function that draws its observation: a bar as long as the cart's offset."""

    calls: list = []

    def __init__(self, env):
        super().__init__(env)
        self.metadata = {**env.metadata, "render_observation": f"{__name__}:draw_cart",
                         "action_meanings": ("push left", "push right")}


def draw_cart(obs, env=None):
    Drawn.calls.append((np.asarray(obs).shape, env))
    picture = np.zeros((48, 64, 3), dtype=np.uint8)
    picture[:, : int(np.clip(32 + 100 * float(obs[0]), 0, 64))] = (0, 200, 0)
    return picture


@pytest.mark.parametrize("drawn", [False, True])
def test_a_foreign_env_is_drawn_by_its_own_function_or_as_cells(tmp_path, drawn):
    env = gym.make("CartPole-v1")
    env = Drawn(env) if drawn else env
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=16)
    Drawn.calls.clear()
    result = record_side_by_side(env, model, [0, 1, 0], tmp_path / "cart.gif", seed=0, steps=3)
    frames = iio.imread(result["path"], index=None)
    assert len(frames) == 4 and frames.shape[1] % 16 == 0 and frames.shape[2] % 16 == 0
    scale = recorder.TARGET_WIDTH // 64 if drawn else recorder.TARGET_WIDTH // 2  # 64 px wide, or 2x2 cells
    width = 64 * scale if drawn else 2 * scale
    assert 2 * width < frames.shape[2] <= 2 * width + 16
    assert len(Drawn.calls) == (8 if drawn else 0) and all(e is env for _, e in Drawn.calls)  # real and dream
    if drawn:  # enlarged: green where the drawing is
        assert (frames[0][: 48 * scale, : 8 * scale, 1] > 150).all()
    assert bright(frames[1][-40:]) > 50  # the caption


def test_add_caption_and_write_video(tmp_path, monkeypatch):
    frame = np.zeros((64, 48, 3), dtype=np.uint8)
    captioned = recorder.add_caption(frame, ["step 1", "action 3 east"])
    assert captioned.shape[1] == 48 and captioned.shape[0] % 16 == 0 and captioned.shape[0] >= 64 + 2 * 18
    assert (captioned[:64] == 0).all() and bright(captioned[64:]) > 20
    frames = [recorder.add_caption(frame + 60 * i, [f"step {i}"]) for i in range(3)]
    if recorder.video_backend() is not None:
        written = recorder.write_video(frames, tmp_path / "c.mp4", fps=5)
        assert written == tmp_path / "c.mp4" and len(iio.imread(written, index=None)) == 3
    monkeypatch.setattr(recorder, "video_backend", lambda: None)
    written = recorder.write_video(frames, tmp_path / "c.gif", fps=5)
    assert written == tmp_path / "c.gif" and len(iio.imread(written, index=None)) == 3
