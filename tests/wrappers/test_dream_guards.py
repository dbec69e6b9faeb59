"""DreamEnv and DreamVectorEnv: the NaN and bounds guards, seeding, temperature, interventions and bad input."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from tests.wrappers.analytic import GOAL_REWARD, STEP_REWARD, CorridorEnv
from tests.wrappers.dream_helpers import (
    LEFT,
    RIGHT,
    cheapest_obs_mode,
    run,
    tiny_model,
)
from wrappers import DreamEnv, DreamVectorEnv

# --- guards --------------------------------------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["decoded", "features"])
@pytest.mark.parametrize("nan_in", ["reward", "state", "obs"])
def test_nan_ends_the_episode_with_a_flag(corridor, nan_in, obs_mode):
    env = DreamEnv(corridor(nan_at=2, nan_in=nan_in), CorridorEnv(start=2), obs=obs_mode)
    env.reset(seed=0)
    first, reward, terminated, _, info = env.step(RIGHT)
    assert reward == STEP_REWARD and not terminated and not info["model_error"]
    obs, reward, terminated, truncated, info = env.step(RIGHT)
    assert terminated and not truncated and info["model_error"] and reward == 0.0
    assert np.isfinite(obs).all() and obs in env.observation_space
    if nan_in == "state":  # the state is lost: the last observation is repeated
        np.testing.assert_array_equal(obs, first)
    if nan_in == "obs":
        assert obs[0] == 0.0 and info["guarded"] == 1
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(RIGHT)
    obs, info = env.reset()  # the next episode is fine
    assert not info["model_error"] and obs in env.observation_space


@pytest.mark.parametrize("nan_in", ["reward", "state", "obs"])
def test_vector_env_nan_guard_is_per_env(corridor, nan_in):
    envs = DreamVectorEnv(corridor(nan_at=2, nan_in=nan_in), 2, CorridorEnv(start=2))
    envs.reset(seed=0)
    envs.step(np.array([RIGHT, RIGHT]))
    envs.reset(options={"reset_mask": np.array([False, True])})  # env 1 is one step behind
    obs, reward, terminated, truncated, info = envs.step(np.array([RIGHT, RIGHT]))
    assert info["model_error"].tolist() == [True, False] and terminated.tolist() == [True, False]
    assert reward.tolist() == [0.0, STEP_REWARD] and np.isfinite(obs).all() and obs in envs.observation_space
    obs, reward, terminated, truncated, info = envs.step(np.array([RIGHT, RIGHT]))
    assert obs[0, 0] == 2.0 and reward[0] == 0 and not terminated[0]  # env 0 restarted
    assert info["model_error"].tolist() == [False, True]  # env 1 reaches its own step 2
    assert np.isfinite(obs).all() and obs in envs.observation_space


def test_out_of_bounds_observations_are_clipped_and_counted(corridor):
    env = DreamEnv(corridor(obs_offset=100.0), CorridorEnv(start=2))
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [5.0] and info["guarded"] == 1 and info["guarded_total"] == 1
    obs, _, _, _, info = env.step(LEFT)
    assert obs.tolist() == [5.0] and info["guarded"] == 1 and info["guarded_total"] == 2
    assert not info["model_error"]
    envs = DreamVectorEnv(corridor(obs_offset=-100.0), 2, CorridorEnv(start=2))
    obs, info = envs.reset(seed=0)
    assert obs.tolist() == [[0.0], [0.0]] and info["guarded"].tolist() == [1, 1]
    obs, _, _, _, info = envs.step(np.array([LEFT, RIGHT]))
    assert info["guarded_total"].tolist() == [2, 2]


# --- seeding, temperature, interventions ------------------------------------------------------------


def test_seeded_resets_give_the_same_dream(corridor):
    model = corridor()
    env = DreamEnv(model, CorridorEnv(), temperature=0.5)
    actions = [RIGHT, LEFT, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT]

    def dream(seed):
        obs, _ = env.reset(seed=seed)
        rewards = []
        for a in actions:
            _, reward, terminated, truncated, _ = env.step(a)
            rewards.append(reward)
            if terminated or truncated:
                break
        return float(obs[0]), rewards

    first = dream(3)
    assert first == dream(3)
    assert first != dream(4)
    assert any(r not in (STEP_REWARD, GOAL_REWARD) for r in first[1])  # the noise is there
    assert model.config.temperature == 0.0 and model.training  # the caller's model is as it was

    envs = DreamVectorEnv(model, 3, CorridorEnv(), temperature=0.5)

    def vector_dream(seed):
        out = [envs.reset(seed=seed)[0]]
        for _ in range(8):
            out += list(envs.step(np.array([RIGHT, LEFT, RIGHT]))[:2])
        return np.concatenate([np.ravel(x) for x in out])

    np.testing.assert_array_equal(vector_dream(7), vector_dream(7))
    assert not np.array_equal(vector_dream(7), vector_dream(8))


@dataclasses.dataclass(frozen=True)
class _NoTemperature:
    """A model config without a temperature (every zoo model has one)."""

    nan_at: int = 0


def test_temperature_needs_a_model_with_one(corridor):
    model = corridor()
    model.config = _NoTemperature()
    with pytest.raises(ValueError, match="has no temperature"):
        DreamEnv(model, CorridorEnv(), temperature=0.5)


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_do_on_a_non_causal_model_is_a_clear_error(campus, model_id):
    model = campus(model_id)
    if model.supports_do:
        pytest.skip("a causal model")
    obs_mode = cheapest_obs_mode(model_id)
    real = gym.make("CampusNav-v0", obs_mode=obs_mode)
    with pytest.raises(ValueError, match="does not take interventions"):
        DreamEnv(model, real, do={"gameday": True})
    with pytest.raises(ValueError, match="does not take interventions"):
        DreamVectorEnv(model, 2, "CampusNav-v0", env_kwargs={"obs_mode": obs_mode}, do={"gameday": True})
    env = DreamEnv(model, real)
    with pytest.raises(ValueError, match="does not take interventions"):
        env.reset(options={"do": {"gameday": True}})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="does not take interventions"):
        env.unwrapped.do(gameday=True)


def test_interventions_reach_the_model_and_the_real_start(corridor):
    real = CorridorEnv(start=1)
    env = DreamEnv(corridor(causal=True), real, do={"speed": 2})
    env.reset(seed=0)
    assert real.speed == 2  # the real start was drawn under the same intervention
    _, rewards, terms, _, _ = run(env, [RIGHT, RIGHT])
    assert rewards == [STEP_REWARD, GOAL_REWARD] and terms == [False, True]
    obs, _ = env.reset(options={"do": {"speed": 4}})  # for one episode
    assert env.step(RIGHT)[0].tolist() == [5.0]
    env.reset()
    assert env.interventions == {"speed": 2}
    env.unwrapped.undo()
    assert env.step(RIGHT)[0].tolist() == [2.0]
    env.unwrapped.do(speed=3)
    assert env.step(RIGHT)[0].tolist() == [5.0]
    with pytest.raises(ValueError, match="not intervened on"):
        env.undo("weather")
    envs = DreamVectorEnv(corridor(causal=True), 2, CorridorEnv(start=1), do={"speed": 2})
    envs.reset(seed=0)
    obs, reward, terminated, *_ = envs.step(np.array([RIGHT, LEFT]))
    assert obs.tolist() == [[3.0], [0.0]]
    envs.do(speed=4)
    obs, reward, terminated, *_ = envs.step(np.array([RIGHT, RIGHT]))
    assert obs.tolist() == [[5.0], [4.0]] and terminated.tolist() == [True, False]


# --- errors at the boundary --------------------------------------------------------------------------


def test_bad_actions_are_clear_errors(corridor):
    env = DreamEnv(corridor(), CorridorEnv(start=2))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(RIGHT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be in 0\.\.1"):
        env.step(2)
    with pytest.raises(ValueError, match="must be an integer"):
        env.step(0.5)
    with pytest.raises(TypeError, match="must be an integer"):
        env.step("left")
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([1, 0]))
    assert env.step(np.int64(1))[0].tolist() == [3.0]
    assert env.step(np.array(1.0))[0].tolist() == [4.0]
    envs = DreamVectorEnv(corridor(), 2, CorridorEnv(start=2))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        envs.step(np.array([1, 0, 1]))
    with pytest.raises(ValueError, match=r"action must be in 0\.\.1"):
        envs.step(np.array([1, -1]))


def test_box_actions_are_checked():
    real = gym.make("Pendulum-v1")
    model = tiny_model("mlp", real.observation_space, real.action_space)
    env = DreamEnv(model, real)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([1.5]))
    assert obs in env.observation_space
    env.reset()  # the untrained model may have ended the episode
    env.step([0.25])  # a list of floats, as any Box env takes
    with pytest.raises(ValueError, match="outside"):
        env.step(np.array([2.5], dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan]))


def test_bad_construction_is_a_clear_error(corridor, campus):
    with pytest.raises(ValueError, match="exactly one source"):
        DreamEnv(corridor())
    with pytest.raises(ValueError, match="exactly one source"):
        DreamEnv(corridor(), CorridorEnv(), dataset=[])
    with pytest.raises(ValueError, match="built for the observation space"):
        DreamEnv(campus("mlp"), CorridorEnv())
    with pytest.raises(ValueError, match="obs must be one of"):
        DreamEnv(corridor(), CorridorEnv(), obs="pixels")
    with pytest.raises(ValueError, match="max_episode_steps"):
        DreamEnv(corridor(), CorridorEnv(), max_episode_steps=0)
    with pytest.raises(ValueError, match="image part"):
        DreamEnv(corridor(), CorridorEnv(), render_mode="rgb_array")
    with pytest.raises(TypeError, match="WorldModel"):
        DreamEnv(torch.nn.Linear(1, 1), CorridorEnv())
    with pytest.raises(ValueError, match="num_envs"):
        DreamVectorEnv(corridor(), 0, CorridorEnv())
    with pytest.raises(ValueError, match="unknown reset option"):
        DreamEnv(corridor(), CorridorEnv()).reset(options={"goal": "library"})


def test_render_gives_the_decoded_image(campus):
    model = campus("mlp", "dict")
    env = DreamEnv(model, "CampusNav-v0", env_kwargs={"obs_mode": "dict"}, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, obs["image"])
    envs = DreamVectorEnv(model, 2, "CampusNav-v0", env_kwargs={"obs_mode": "dict"}, render_mode="rgb_array")
    obs, _ = envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and all(f.shape == (64, 64, 3) for f in frames)
