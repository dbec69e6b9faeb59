"""Controllers that navigate, trained in a world and scored in reality: CMA-ES action scores and SB3 PPO.

The CMA-ES controller is ``campusnav demo``'s: one shared linear score of
per-action features (``campus_env.features``), sampled through a softmax, so
CMA-ES searches a handful of numbers. PPO is the tuned reality baseline of
``campusnav.baselines`` (``PRESETS["tuned"]``, with its potential-based shaping).
Either trains in a factory of worlds (reality, or ``DreamVectorEnv`` over a
model's decoded dreams) and is scored on the same seeded real episodes as
everything else. A dream ends where the model says or where the env's known
termination (``campus_env.semantics.reached_goal``) reads the agent on its goal,
as MBPO hands its models the env's termination function (Janner et al. 2019) and
as ``campusnav mbrl`` does: arrivals are too rare in the data for a termination
head to learn, and a dream that never ends teaches standing still.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.utils import set_random_seed

from campus_env.features import ACTION_FEATURES, action_features
from campus_env.schema import Action
from campus_env.semantics import reached_goal
from campusnav.baselines import PRESETS, make_agent, make_venv
from campusnav.leaderboard.budget import Budget
from campusnav.leaderboard.data import CAMPUS, STATE_KWARGS
from campusnav.ppo import ppo_policy
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
from wrappers import DreamVectorEnv

__all__ = ["PPO_BASELINE", "cmaes_controller", "dream_envs", "ppo_agent", "random_baseline", "real_envs"]

EVAL_SEED = 10_000  # evaluation episodes reset with EVAL_SEED + 1000 * seed + i: apart from training's
PPO_BASELINE = PRESETS["tuned"]  # in reality and in every dream, at the budget's envs and timesteps


def real_envs(budget: Budget) -> EnvFactory:
    return lambda n: gym.make_vec(CAMPUS, num_envs=n, max_episode_steps=budget.max_episode_steps, **STATE_KWARGS)


def dream_envs(model: Any, budget: Budget) -> EnvFactory:
    """The model's decoded dreams, started from real resets and ended by the env's known termination too."""
    return lambda n: DreamVectorEnv(model, n, CAMPUS, obs="decoded", env_kwargs=STATE_KWARGS,
                                    max_episode_steps=budget.max_episode_steps, termination_fn=reached_goal)


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
    """SB3 PPO (``PPO_BASELINE``) trained in ``envs`` for the budget's timesteps, scored in reality."""
    baseline = PPO_BASELINE.replace(num_envs=budget.ppo_envs)
    venv = make_venv(baseline, envs)
    agent = make_agent(baseline, venv, budget.ppo_timesteps, seed)
    started = time.perf_counter()
    try:
        agent.learn(total_timesteps=budget.ppo_timesteps)
    finally:
        venv.close()
    seconds = time.perf_counter() - started
    set_random_seed(seed)  # the sampled actions of evaluation
    outcomes = evaluate_policy(real_envs(budget), ppo_policy(agent), evaluation(budget, seed))
    return {**summary(outcomes), "train_s": seconds}


def random_baseline(budget: Budget, seed: int) -> dict[str, float]:
    return summary(evaluate_policy(real_envs(budget), random_policy(spaces.Discrete(len(Action)), seed),
                                   evaluation(budget, seed)))
