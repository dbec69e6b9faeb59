"""SB3 on CampusNav-v0 state vectors, in reality or in a dream: default settings, the shaping, the policy.

``campusnav.baselines`` builds its presets on these settings and trains PPO in
both worlds with the same settings and budget, so a dream-trained agent and a
reality-trained one differ only in where they learned. While learning, the
reward gets the potential-based shaping of Ng, Harada & Russell (1999),
``r + gamma * phi(s') - phi(s)`` with ``phi`` minus the Manhattan distance to the
goal, read off the observation's goal offset (so it works in a dream too); it
leaves the optimal policy unchanged, and evaluation counts the env's own reward.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from campus_env.schema import STATE_SLICES
from model_zoo.agents.transfer import BatchPolicy

__all__ = ["DQN_SETTINGS", "PPO_SETTINGS", "PotentialShaping", "ppo_policy"]

GOAL_OFFSET = STATE_SLICES["goal_offset"]  # goal row/col minus agent row/col, divided by (map side - 1)
PPO_SETTINGS: dict[str, Any] = dict(n_steps=128, batch_size=512, n_epochs=4, learning_rate=3e-4, gamma=0.99,
                                    ent_coef=0.01)
DQN_SETTINGS: dict[str, Any] = dict(learning_starts=5_000, buffer_size=100_000, batch_size=128, learning_rate=5e-4,
                                    gamma=0.99, train_freq=1, gradient_steps=2, target_update_interval=500,
                                    exploration_fraction=0.5, exploration_final_eps=0.05)


class PotentialShaping(VecEnvWrapper):
    """Adds ``gamma * phi(s') - phi(s)`` to the reward, ``phi(s) = -per_cell * Manhattan cells to the goal``.

    ``phi`` of a terminal state is 0 (Ng et al. 1999); at a time limit the
    episode's last observation (``terminal_observation``) is its ``s'``. Of dict
    observations it reads the ``"state"`` entry (the state vector's first part).
    """

    def __init__(self, venv: VecEnv, per_cell: float, gamma: float, map_side: int = 32):
        super().__init__(venv)
        self.scale = per_cell * (map_side - 1)  # the offset is divided by (map side - 1)
        self.gamma = gamma
        self.last = np.zeros(venv.num_envs)

    def phi(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        state = obs["state"] if isinstance(obs, dict) else obs
        return -self.scale * np.abs(state[..., GOAL_OFFSET]).sum(-1)

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.last = self.phi(obs)
        return obs

    def step_wait(self):
        obs, reward, dones, infos = self.venv.step_wait()
        after = self.phi(obs)
        for i in np.flatnonzero(dones):  # obs[i] already starts the next episode
            truncated = infos[i].get("TimeLimit.truncated", False)
            after[i] = self.phi(infos[i]["terminal_observation"]) if truncated else 0.0
        shaped = reward + self.gamma * after - self.last
        self.last = self.phi(obs)
        return obs, shaped.astype(np.float32), dones, infos


def ppo_policy(agent: PPO, deterministic: bool = False) -> BatchPolicy:
    """The agent as a ``model_zoo.agents.transfer`` policy (sampled actions from SB3's seeded torch generator)."""

    def policy(obs: Any, action: Any, env: gym.vector.VectorEnv) -> np.ndarray:
        return agent.predict(obs, deterministic=deterministic)[0]

    return policy
