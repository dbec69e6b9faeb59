"""The zoo beyond CampusNav: collect -> fit -> evaluate on CartPole-v1 (vectors) and CarRacing-v3 (96x96 pixels)."""

from __future__ import annotations

import math

import pytest
import torch

import model_zoo
from model_zoo.data import SequenceSampler, collect, load_episodes


def run_pipeline(tmp_path, env_id: str, model_id: str, episodes: int, max_steps: int, **config):
    dataset = collect(env_id, num_episodes=episodes, num_envs=2, max_episode_steps=max_steps, seed=0,
                      dataset_id=f"foreign/{env_id.lower()}-v0", data_path=tmp_path, progress=False)
    assert dataset.total_episodes == episodes
    data = load_episodes(dataset)
    assert all(e.causal is None for e in data)  # no causal variables outside CampusNav
    torch.manual_seed(0)
    model = model_zoo.make(model_id, dataset.observation_space, dataset.action_space, **config)
    sampler = SequenceSampler(data, seq_len=8, batch_size=4, seed=0)
    history = model_zoo.fit(model, sampler, steps=6, lr=1e-3, progress=False, log_every=1)
    assert len(history) >= 2 and all(math.isfinite(row["loss"]) for row in history)
    result = model_zoo.evaluate(model, data, horizons=(1, 4), context=2, num_windows=8, batch_size=8,
                                speed_batch=16, speed_seconds=0.05)
    row = result.as_dict()
    assert all(math.isfinite(row[k]) for k in ("obs_mse@1", "obs_mse@4", "reward_mae", "imagined_steps_per_s"))
    with torch.no_grad():
        state = model.observe(model.initial_state(2), sampler.sample().action[:2, 0],
                              _first(sampler.sample().obs), torch.ones(2, dtype=torch.bool))
        decoded = model.decode(model.imagine(state, sampler.sample().action[:2, 1]).state)
    for i in range(2):
        assert dataset.observation_space.contains(decoded[i].numpy())
    return row


def _first(obs):
    return obs[:2, 0]


def test_mlp_on_cartpole(tmp_path):
    row = run_pipeline(tmp_path, "CartPole-v1", "mlp", episodes=6, max_steps=30, hidden=32)
    assert "psnr@1" not in row  # vectors only


def test_vae_mdnrnn_on_car_racing_pixels(tmp_path):
    pytest.importorskip("Box2D", reason="CarRacing-v3 needs gymnasium[box2d]")
    row = run_pipeline(tmp_path, "CarRacing-v3", "vae_mdnrnn", episodes=2, max_steps=12,
                       z_dim=8, hidden=32, depth=8)
    assert math.isfinite(row["psnr@1"])  # 96x96 frames, resized to 64x64 inside and back
