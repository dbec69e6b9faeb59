"""wrappers: world models of the zoo as Gymnasium environments, and adapters around them.

``DreamEnv`` and ``DreamVectorEnv`` run a world model's dream behind the
Gymnasium API; ``to_sb3`` hands any Gymnasium vector env to Stable-Baselines3;
``LatentObservation`` shows the real env through a model's filter;
``Intervene`` schedules interventions; ``record_side_by_side`` films reality
next to the dream.

>>> import gymnasium as gym
>>> import model_zoo, wrappers
>>> real = gym.make("CartPole-v1")
>>> model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
>>> env = wrappers.DreamEnv(model, real)
>>> obs, info = env.reset(seed=0)
>>> info["dream"], obs in env.observation_space
(True, True)
"""

from wrappers.dream import DreamEnv, DreamVectorEnv
from wrappers.intervene import Intervene, IntervenedVectorEnv
from wrappers.latent import LatentObservation
from wrappers.recorder import plot_error_vs_horizon, record_side_by_side
from wrappers.sb3 import GymnasiumVecEnv, supports_reset_mask, to_sb3

__all__ = [
    "DreamEnv",
    "DreamVectorEnv",
    "GymnasiumVecEnv",
    "Intervene",
    "IntervenedVectorEnv",
    "LatentObservation",
    "plot_error_vs_horizon",
    "record_side_by_side",
    "supports_reset_mask",
    "to_sb3",
]
