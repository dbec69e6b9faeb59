"""Controllers that navigate, trained in a world and scored in reality: CMA-ES action scores and SB3 PPO.

The CMA-ES controller is ``campusnav demo``'s: one shared linear score of
per-action features (``campus_env.features``), sampled through a softmax, so
CMA-ES searches a handful of numbers. PPO is ``campusnav.ppo``'s. Either trains
in a factory of worlds (reality, or ``DreamVectorEnv`` over a model's decoded
dreams) and is scored on the same seeded real episodes as everything else.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.utils import set_random_seed

from campus_env.features import ACTION_FEATURES, action_features
from campus_env.schema import Action
from campusnav.leaderboard.budget import Budget
from campusnav.leaderboard.data import CAMPUS, STATE_KWARGS
from campusnav.ppo import ppo_policy, train_ppo
from model_zoo.agents.controllers import ActionScoreController
from model_zoo.agents.transfer import (
    EnvFactory,
    Evaluation,
    Outcomes,
    controller_policy,
    evaluate_policy,
    random_policy,
    train_controller,
)
from wrappers import DreamVectorEnv, to_sb3

__all__ = ["cmaes_controller", "dream_envs", "ppo_agent", "random_baseline", "real_envs"]

EVAL_SEED = 10_000  # evaluation episodes reset with EVAL_SEED + 1000 * seed + i: apart from training's


def real_envs(budget: Budget) -> EnvFactory:
    return lambda n: gym.make_vec(CAMPUS, num_envs=n, max_episode_steps=budget.max_episode_steps, **STATE_KWARGS)


def dream_envs(model: Any, budget: Budget) -> EnvFactory:
    """The model's decoded dreams, started from real resets, as a factory."""
    return lambda n: DreamVectorEnv(model, n, CAMPUS, obs="decoded", env_kwargs=STATE_KWARGS,
                                    max_episode_steps=budget.max_episode_steps)


def evaluation(budget: Budget, seed: int) -> Evaluation:
    return Evaluation(budget.eval_episodes, reset_seed=EVAL_SEED + 1000 * seed, seed=seed)


def summary(outcomes: Outcomes) -> dict[str, float]:
    return {"return": float(outcomes.returns.mean()), "success": float(outcomes.success.mean())}


def _features(obs: Any, action: Any, is_first: np.ndarray) -> np.ndarray:
    return action_features(obs)


def cmaes_controller(envs: EnvFactory, budget: Budget, seed: int) -> dict[str, Any]:
    """The action-scoring controller trained by CMA-ES in ``envs``, scored in reality."""
    controller = ActionScoreController(len(ACTION_FEATURES), spaces.Discrete(len(Action)), sampled=True, seed=seed)
    trained = train_controller(envs, controller, _features, budget.cmaes(seed), itertools.count(1_000 + 100_000 * seed))
    outcomes = evaluate_policy(real_envs(budget), controller_policy(controller, trained.params, _features, seed),
                               evaluation(budget, seed))
    return {**summary(outcomes), "train_s": trained.seconds, "params": trained.params.tolist()}


def ppo_agent(envs: EnvFactory, budget: Budget, seed: int) -> dict[str, Any]:
    """SB3 PPO trained in ``envs`` for the budget's timesteps, scored in reality."""
    agent, seconds = train_ppo(to_sb3(envs(budget.ppo_envs)), budget.ppo_timesteps, seed)
    set_random_seed(seed)  # the sampled actions of evaluation
    outcomes = evaluate_policy(real_envs(budget), ppo_policy(agent), evaluation(budget, seed))
    return {**summary(outcomes), "train_s": seconds}


def random_baseline(budget: Budget, seed: int) -> dict[str, float]:
    return summary(evaluate_policy(real_envs(budget), random_policy(spaces.Discrete(len(Action)), seed),
                                   evaluation(budget, seed)))
