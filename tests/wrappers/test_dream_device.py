"""DreamVectorEnv keeps the model's states on the model's device; only observations, rewards and flags leave it.

Each ``imagine`` call is recorded (and its episodes never end, so the state flows on
untouched): the state it receives must be tensors on ``model.device`` and the very tensors the
previous call returned (no round trip through the CPU or numpy, which the identity check
catches on a CPU too). What ``step`` hands the learner is numpy. The same test runs on a GPU
where there is one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import model_zoo
from wrappers import DreamVectorEnv

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model_id", ["mlp", "vae_mdnrnn"])
def test_dream_states_stay_on_the_model_device_and_steps_return_numpy(model_id, device, monkeypatch):
    real = gym.make("CartPole-v1")
    torch.manual_seed(0)
    model = model_zoo.make(model_id, real.observation_space, real.action_space, hidden=16).to(device)
    received, returned = [], []
    imagine = model.imagine

    def recording_imagine(state, action, *args, **kwargs):
        received.append(dict(state))
        out = imagine(state, action, *args, **kwargs)
        returned.append(dict(out.state))
        return out._replace(terminated=torch.zeros_like(out.terminated))  # no autoreset replaces rows

    monkeypatch.setattr(model, "imagine", recording_imagine)
    envs = DreamVectorEnv(model, 4, real, obs="decoded", max_episode_steps=1000)
    envs.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        for value in (obs, reward, terminated, truncated, info["model_error"]):
            assert isinstance(value, np.ndarray), type(value)
        assert not (terminated | truncated | info["model_error"]).any()
    assert len(received) == 5
    for state in received:
        assert all(torch.is_tensor(v) and v.device == model.device for v in state.values()), state
    for step in range(1, 5):  # the state passed on: the tensors themselves, not copies
        assert all(received[step][k] is returned[step - 1][k] for k in received[step])
