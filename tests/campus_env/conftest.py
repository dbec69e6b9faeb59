"""Fixtures for the campus_env tests."""

import gymnasium as gym
import numpy as np
import pytest

import campus_env


@pytest.fixture(autouse=True)
def fast_human_window(monkeypatch):
    """Lets ``render_mode="human"`` windows tick as fast as they can.

    The window waits for ``metadata["render_fps"]`` between frames (10 fps),
    which would make every human-mode test take seconds. Only the rate
    changes; the window is still created, drawn to and closed for real.
    """
    monkeypatch.setitem(campus_env.CampusNavEnv.metadata, "render_fps", 100_000)


@pytest.fixture
def envs():
    """A native vector env of 3 state-mode campuses, reset with seed 10 and stepped 8 times at random."""
    envs = gym.make_vec("CampusNav-v0", num_envs=3, obs_mode="state")
    envs.reset(seed=10)
    for actions in np.random.default_rng(0).integers(0, len(campus_env.Action), size=(8, 3)):
        envs.step(actions)
    return envs
