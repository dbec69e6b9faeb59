"""``wrappers.LatentObservation``: the real env seen through the model's filter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from wrappers.latent import LatentObservation

SMALL = {"mlp": {"hidden": 32}, "vae_mdnrnn": {"hidden": 16, "z_dim": 4, "depth": 4, "vector_hidden": 16}}


def make_model(model_id: str, env: gym.Env) -> model_zoo.WorldModel:
    torch.manual_seed(0)
    return model_zoo.make(model_id, env.observation_space, env.action_space, **SMALL[model_id])


@pytest.mark.parametrize("model_id", ["mlp", "vae_mdnrnn"])
def test_features_are_the_filtered_state(model_id):
    """Observations == model.features after observe(initial, 0, obs0, first), then observe(state, a, obs, not first)."""
    env = gym.make("CampusNav-v0", obs_mode="state")
    model = make_model(model_id, env)
    latent = LatentObservation(gym.make("CampusNav-v0", obs_mode="state"), model)
    assert latent.observation_space == gym.spaces.Box(-np.inf, np.inf, (model.feature_dim,), np.float32)

    features, info = latent.reset(seed=3)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(info["real_obs"], obs)
    with torch.no_grad():
        state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64),
                              torch.as_tensor(obs[None]), torch.ones(1, dtype=torch.bool))
        np.testing.assert_allclose(features, model.features(state)[0].numpy(), rtol=1e-6, atol=1e-6)
        for action in [3, 3, 1, 0, 4]:
            features, reward, terminated, truncated, info = latent.step(action)
            obs, real_reward, *_ = env.step(action)
            assert features.shape == (model.feature_dim,) and features.dtype == np.float32
            assert reward == real_reward
            state = model.observe(state, torch.tensor([action]), torch.as_tensor(obs[None]),
                                  torch.zeros(1, dtype=torch.bool))
            np.testing.assert_allclose(features, model.features(state)[0].numpy(), rtol=1e-6, atol=1e-6)
            assert latent.observation_space.contains(features)


@pytest.mark.filterwarnings("ignore:.*(infinity|unwrapped version).*:UserWarning")
def test_dict_observations_and_check_env():
    env = gym.make("CampusNav-v0")  # dict: image, state, causal
    model = make_model("mlp", env)
    latent = LatentObservation(env, model)
    features, _ = latent.reset(seed=0)
    assert features.shape == (model.feature_dim,)
    check_env(latent, skip_render_check=True)


def test_a_policy_trained_on_features_acts_in_reality():
    env = gym.make("CampusNav-v0", obs_mode="state", max_episode_steps=20)
    model = make_model("vae_mdnrnn", env)
    # trained on a feature space (here: the real env's features; DreamEnv(obs="features") gives the same space)
    agent = PPO("MlpPolicy", DummyVecEnv([lambda: LatentObservation(env, model)]), n_steps=32, batch_size=32,
                n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    agent.learn(total_timesteps=32)
    real = LatentObservation(gym.make("CampusNav-v0", obs_mode="state", max_episode_steps=20), model)
    obs, _ = real.reset(seed=1)
    steps = 0
    while True:
        action, _ = agent.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = real.step(int(action))
        steps += 1
        if terminated or truncated:
            break
    assert 1 <= steps <= 20


def test_clear_errors():
    env = gym.make("CampusNav-v0", obs_mode="state")
    model = make_model("mlp", gym.make("CampusNav-v0", obs_mode="pixels"))
    with pytest.raises(ValueError, match="observation_space"):
        LatentObservation(env, model)
    with pytest.raises(TypeError, match="WorldModel"):
        LatentObservation(env, object())
    with pytest.raises(RuntimeError, match="reset"):
        LatentObservation(env, make_model("mlp", env)).step(0)
