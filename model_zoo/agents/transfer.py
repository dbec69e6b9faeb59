"""Train a controller in a world model's dream, evaluate it in reality: the dream-to-reality protocol.

The experiment of Ha & Schmidhuber 2018, "World Models" (arXiv:1803.10122), section 4:
a controller trained by CMA-ES entirely inside the dream is scored in the real env,
next to the same controller trained in reality with the same budget and a uniform
random policy, all on the same seeded real episodes. The transfer ratio is the
dream-trained controller's gain over the random policy divided by the
reality-trained one's (returns are often negative, where a plain ratio reads
backwards).

Worlds come as factories ``num_envs -> VectorEnv``, as in DreamerV3's run loops,
so this module knows no env and no dream wrapper: a caller passes e.g.
``lambda n: DreamVectorEnv(model, n, ...)`` and ``lambda n: gym.make_vec(id, num_envs=n)``.
Each world is built once for its whole CMA-ES run and closed after it.

>>> import gymnasium as gym
>>> envs = gym.make_vec("CartPole-v1", num_envs=3)
>>> outcomes = evaluate_policy(lambda n: envs, random_policy(envs.single_action_space, seed=0),
...                            Evaluation(episodes=3, reset_seed=0))
>>> outcomes.returns.shape, bool((outcomes.returns == outcomes.steps).all())
((3,), True)
>>> transfer_ratio(dream_return=-0.5, reality_return=0.0, random_return=-1.0)
0.5
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from model_zoo.agents.controllers import (
    ActionScoreController,
    FeaturesFn,
    LinearController,
    flat_features,
    rollout_returns,
    train_cmaes,
)

__all__ = [
    "CMAES",
    "BatchPolicy",
    "EnvFactory",
    "Evaluation",
    "Outcomes",
    "TrainedController",
    "TransferResult",
    "controller_policy",
    "dream_to_reality",
    "evaluate_policy",
    "random_policy",
    "train_controller",
    "transfer_ratio",
]

EnvFactory = Callable[[int], gym.vector.VectorEnv]
"""``num_envs -> VectorEnv``: a world to train or evaluate in, built when needed and closed after."""
BatchPolicy = Callable[[Any, Any, gym.vector.VectorEnv], Any]
"""``(obs, action that led to it or None after reset, the vector env) -> actions (N, ...)``."""
Controller = LinearController | ActionScoreController


@dataclass(frozen=True)
class CMAES:
    """How a controller is searched: CMA-ES over populations scored on batched episodes."""

    generations: int
    popsize: int
    episodes_per_member: int
    sigma0: float = 0.1
    seed: int = 0
    x0: np.ndarray | None = None
    progress: bool = False


@dataclass(frozen=True)
class Evaluation:
    """The real episodes every policy is scored on: env ``i`` resets with ``reset_seed + i``."""

    episodes: int
    reset_seed: int
    seed: int = 0  # of the policies' own randomness (random actions, sampled controllers)


@dataclass(frozen=True)
class Outcomes:
    """Per-episode results of one policy in reality, (episodes,) each."""

    returns: np.ndarray
    success: np.ndarray
    steps: np.ndarray
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        return {"return_mean": float(self.returns.mean()), "return_std": float(self.returns.std()),
                "success_rate": float(self.success.mean()), "steps_mean": float(self.steps.mean())}


@dataclass(frozen=True)
class TrainedController:
    params: np.ndarray
    history: dict[str, np.ndarray]
    seconds: float


@dataclass(frozen=True)
class TransferResult:
    """Both controllers, their CMA-ES histories, and every policy's real outcomes."""

    dream: TrainedController
    reality: TrainedController
    dream_trained: Outcomes
    reality_trained: Outcomes
    random: Outcomes

    @property
    def ratio(self) -> float:
        return transfer_ratio(self.dream_trained.returns.mean(), self.reality_trained.returns.mean(),
                              self.random.returns.mean())


def transfer_ratio(dream_return: float, reality_return: float, random_return: float) -> float:
    """Dream-trained over reality-trained real return, each above the random policy's; NaN if reality has no gain."""
    gain = reality_return - random_return
    return float((dream_return - random_return) / gain) if gain > 0 else float("nan")


def train_controller(envs: EnvFactory, controller: Controller, features: FeaturesFn | None, cmaes: CMAES,
                     rollout_seeds: Iterator[int], save_path: str | Path | None = None) -> TrainedController:
    """CMA-ES on ``controller`` in ``envs(popsize * episodes_per_member)``; population g resets with the g-th seed.

    ``features`` maps the world's observations to the controller's input (None:
    the observations are the features).
    """
    env = envs(cmaes.popsize * cmaes.episodes_per_member)
    started = time.perf_counter()
    try:
        params, history = train_cmaes(
            lambda population: rollout_returns(population, env, features, cmaes.episodes_per_member,
                                               controller=controller, seed=next(rollout_seeds)),
            controller.num_params, generations=cmaes.generations, popsize=cmaes.popsize, sigma0=cmaes.sigma0,
            seed=cmaes.seed, x0=cmaes.x0, progress=cmaes.progress, save_path=save_path)
    finally:
        env.close()
    return TrainedController(params, history, time.perf_counter() - started)


def evaluate_policy(envs: EnvFactory, policy: BatchPolicy, evaluation: Evaluation) -> Outcomes:
    """Runs ``policy`` on ``evaluation.episodes`` seeded episodes at once, one per env (later steps ignored)."""
    n = evaluation.episodes
    env = envs(n)
    started = time.perf_counter()
    try:
        obs, _ = env.reset(seed=evaluation.reset_seed)
        action = None
        returns, steps = np.zeros(n), np.zeros(n, dtype=np.int64)
        success, alive = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
        while alive.any():
            action = policy(obs, action, env)
            action = action.detach().cpu().numpy() if torch.is_tensor(action) else np.asarray(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns += np.where(alive, np.asarray(reward, dtype=np.float64), 0.0)
            steps += alive
            success |= alive & np.asarray(terminated)
            alive &= ~(np.asarray(terminated) | np.asarray(truncated))
    finally:
        env.close()
    return Outcomes(returns, success, steps, time.perf_counter() - started)


def controller_policy(controller: Controller, params: np.ndarray, features: FeaturesFn | None,
                      seed: int | None = None) -> BatchPolicy:
    """``controller`` with ``params`` acting on ``features`` of the observations; a sampler reseeded with ``seed``."""
    controller.set_params(params)
    if hasattr(controller, "reseed"):
        controller.reseed(seed)
    features_fn = features or flat_features

    def policy(obs: Any, action: Any, env: gym.vector.VectorEnv) -> Any:
        return controller(features_fn(obs, action, np.full(env.num_envs, action is None)))

    return policy


def random_policy(action_space: gym.Space, seed: int | None = None) -> BatchPolicy:
    """Uniform random actions from a generator of its own (integers for Discrete spaces, uniform for Box)."""
    rng = np.random.default_rng(seed)

    def policy(obs: Any, action: Any, env: gym.vector.VectorEnv) -> np.ndarray:
        num_envs = env.num_envs
        if isinstance(action_space, spaces.Discrete):
            start = int(action_space.start)
            return rng.integers(start, start + int(action_space.n), num_envs)
        shape = (num_envs, *action_space.shape)
        return rng.uniform(action_space.low, action_space.high, shape).astype(action_space.dtype)

    return policy


def dream_to_reality(
    dream_envs: EnvFactory,
    real_envs: EnvFactory,
    controller: Controller,
    *,
    dream_features: FeaturesFn | None,
    real_features: FeaturesFn | None,
    cmaes: CMAES,
    evaluation: Evaluation,
    rollout_seeds: Iterable[int] | Callable[[], Iterator[int]] | None = None,
    save_dir: str | Path | None = None,
) -> TransferResult:
    """Trains ``controller`` by CMA-ES in the dream and, with the same budget, in reality; scores both in reality.

    ``rollout_seeds`` gives the reset seed of each scored population: one
    iterable is a single schedule the dream's populations use first and
    reality's continue; a callable gives each world a fresh schedule (default:
    ``cmaes.seed + 1000``, ``+ 1001``, ... in each). With ``save_dir`` the
    parameters go to ``controller_dream.npz`` and ``controller_reality.npz``
    there. The random policy acts in the controller's action space.
    """
    if rollout_seeds is None:
        rollout_seeds = lambda: itertools.count(cmaes.seed + 1_000)  # noqa: E731
    if callable(rollout_seeds):
        dream_seeds, real_seeds = rollout_seeds(), rollout_seeds()
    else:
        dream_seeds = real_seeds = iter(rollout_seeds)
    save = (lambda name: Path(save_dir) / name) if save_dir is not None else (lambda name: None)
    dream = train_controller(dream_envs, controller, dream_features, cmaes, dream_seeds, save("controller_dream.npz"))
    reality = train_controller(real_envs, controller, real_features, cmaes, real_seeds,
                               save("controller_reality.npz"))
    outcomes = {name: evaluate_policy(real_envs, controller_policy(controller, trained.params, real_features,
                                                                   evaluation.seed), evaluation)
                for name, trained in (("dream", dream), ("reality", reality))}
    action_space = controller.action_space
    baseline = evaluate_policy(real_envs, random_policy(action_space, evaluation.seed), evaluation)
    return TransferResult(dream, reality, outcomes["dream"], outcomes["reality"], baseline)
