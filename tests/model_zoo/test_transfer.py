"""model_zoo.agents.transfer: the dream-to-reality protocol on two tiny worlds that disagree on the good action."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from model_zoo.agents import (
    CMAES,
    Evaluation,
    LinearController,
    dream_to_reality,
    evaluate_policy,
    random_policy,
    transfer_ratio,
)

STEPS = 3


class Bandit(gym.Env):
    """A constant observation; +1 per step for ``good_action``; the episode ends after ``STEPS`` steps."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, good_action: int, resets: list[int | None]):
        self.good_action, self.resets, self.t = good_action, resets, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets.append(seed)
        self.t = 0
        return np.ones(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.ones(1, np.float32), float(action == self.good_action), self.t >= STEPS, False, {}


class World:
    """A factory ``num_envs -> VectorEnv`` that records what it built and every reset seed of its env 0."""

    def __init__(self, good_action: int):
        self.good_action, self.built, self.resets = good_action, [], []

    def __call__(self, n: int) -> gym.vector.VectorEnv:
        self.built.append(n)
        seeds: list[int | None] = []
        self.resets.append(seeds)
        envs = [lambda i=i: Bandit(self.good_action, seeds if i == 0 else []) for i in range(n)]
        return gym.vector.SyncVectorEnv(envs)


def run(dream: World, real: World, seed: int = 0, **kwargs):
    controller = LinearController(1, spaces.Discrete(2))
    return dream_to_reality(dream, real, controller, dream_features=None, real_features=None,
                            cmaes=CMAES(generations=3, popsize=4, episodes_per_member=2, sigma0=0.5, seed=seed),
                            evaluation=Evaluation(episodes=5, reset_seed=100, seed=seed), **kwargs)


def test_the_dream_trains_and_reality_scores():
    dream, real = World(good_action=1), World(good_action=0)
    result = run(dream, real)
    assert dream.built == [8]  # one dream for the whole CMA-ES run, popsize x episodes_per_member envs
    assert real.built == [8, 5, 5, 5]  # reality's CMA-ES run, then the two controllers and the random policy
    assert result.dream.history["best"].max() == STEPS  # the dream rewards action 1 ...
    np.testing.assert_array_equal(result.dream_trained.returns, np.zeros(5))  # ... which reality never rewards
    np.testing.assert_array_equal(result.reality_trained.returns, np.full(5, STEPS))
    assert result.reality_trained.success.all() and (result.reality_trained.steps == STEPS).all()
    assert 0 < result.random.returns.mean() < STEPS
    assert all(seeds[0] == 100 for seeds in real.resets[1:])  # every policy on the same evaluation episodes


def test_the_ratio_is_the_gain_over_random_of_the_returns():
    result = run(World(1), World(0))
    dream, reality, random = (o.returns.mean() for o in (result.dream_trained, result.reality_trained, result.random))
    assert result.ratio == pytest.approx((dream - random) / (reality - random))
    assert result.ratio < 0  # the dream-trained controller is worse than random in reality
    assert transfer_ratio(-0.5, 0.0, -1.0) == 0.5
    assert math.isnan(transfer_ratio(1.0, -1.0, -1.0))  # reality-trained no better than random


def test_the_same_seed_reproduces_the_run():
    first, second = run(World(1), World(0), seed=3), run(World(1), World(0), seed=3)
    np.testing.assert_array_equal(first.dream.params, second.dream.params)
    np.testing.assert_array_equal(first.reality.params, second.reality.params)
    np.testing.assert_array_equal(first.random.returns, second.random.returns)
    for key in first.dream.history:
        np.testing.assert_array_equal(first.dream.history[key], second.dream.history[key])


def test_rollout_seeds_one_shared_schedule_or_one_per_world(tmp_path):
    dream, real = World(1), World(0)
    run(dream, real, rollout_seeds=iter(range(0, 10**6, 10)), save_dir=tmp_path)
    dream_seeds, real_seeds = dream.resets[0], real.resets[0]
    assert dream_seeds == list(range(0, 10 * len(dream_seeds), 10))  # the dream's populations first ...
    assert real_seeds[0] == 10 * len(dream_seeds)  # ... and reality's continue the same schedule
    assert (tmp_path / "controller_dream.npz").is_file() and (tmp_path / "controller_reality.npz").is_file()
    dream, real = World(1), World(0)
    run(dream, real)  # default: each world its own schedule from cmaes.seed + 1000
    assert dream.resets[0][0] == real.resets[0][0] == 1000


def test_evaluate_policy_ignores_steps_after_an_episode_ends():
    world = World(good_action=0)
    outcomes = evaluate_policy(world, random_policy(spaces.Discrete(2), seed=0), Evaluation(4, reset_seed=7))
    assert (outcomes.steps == STEPS).all() and (outcomes.returns <= STEPS).all()
    summary = outcomes.summary()
    assert set(summary) == {"return_mean", "return_std", "success_rate", "steps_mean"}
    assert summary["success_rate"] == 1.0 and world.resets[0] == [7]
