"""How well a deterministic predictor can do at all on CampusNav-v0: the floor its chance failures leave.

A move into an open cell fails by chance (a crowd block, a slip on grass or snow)
with a probability ``p`` the env knows; the best deterministic guess is then the
expectation, which leaves an expected squared error of ``p (1 - p) |move|^2``.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env.schema import STATE_SLICES, Action

__all__ = ["deterministic_bound"]


def deterministic_bound(split: str, max_episode_steps: int, seed: int, steps: int = 1500, num_envs: int = 64,
                        policy: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """The best "next = current" / model 1-step MSE ratio a deterministic predictor can reach on such data.

    Rolls the native vector env with ``policy`` (obs (N, D) -> actions (N,); uniform
    random actions when None, as ``collect`` does), sums the floor above from the
    env's own probabilities (``|move|^2`` averaged over the moves made) and divides
    the copy baseline's error by it. The crowd channel's own noise is left out, so
    the true bound is a little lower still.
    """
    env = gym.make_vec("CampusNav-v0", num_envs=num_envs, obs_mode="state", split=split,
                       max_episode_steps=max_episode_steps)
    core = env.unwrapped.core
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    copy_sq = chance = 0.0
    move_sq: list[float] = []
    agent = STATE_SLICES["agent"]
    for _ in range(steps):
        action = rng.integers(0, len(Action), num_envs) if policy is None else np.asarray(policy(obs))
        k, pos = core.k, core.pos
        target = pos + core.moves[action]
        open_ = core.pass_map[core.tape_pass_base[k] + target] | (target == core.goal_flat)
        p_crowd = np.clip(core.hotspots[core.tape_hot_base[k] + target], 0, 1)
        p_slip = np.clip(core.slip_map[core.slip_base + target], 0, 1)
        p_fail = 1 - (1 - p_crowd) * (1 - p_slip)
        attempted = (action != Action.STAY) & open_
        before = obs.copy()
        obs, _, terminated, truncated, _ = env.step(action)
        alive = ~(terminated | truncated)  # the next observation of an ended episode is a reset
        sq = np.square(obs - before).sum(1)
        copy_sq += float(sq[alive].sum())
        moved = alive & attempted & (np.abs(obs[:, agent] - before[:, agent]).sum(1) > 0)
        move_sq.extend(sq[moved].tolist())
        chance += float((p_fail * (1 - p_fail))[alive & attempted].sum())
    env.close()
    return copy_sq / max(chance * float(np.mean(move_sq)), 1e-12)
