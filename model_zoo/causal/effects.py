"""Total effects of each causal variable on what a walker experiences: travel time and blocked moves.

The walker is the shortest-path oracle (``campus_env.oracle``), so an effect is
the campus's, not a policy's habit. Every ``do()`` value is applied to the same
seeds at step 0, so the episodes of one seed are counterfactual twins on the same
noise tape and differ only by the intervention: the effect is measured within
each seed (paired differences, Friedman's rank test over the seeds, Holm's
correction over every variable and outcome).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from campus_env import causal
from model_zoo.causal.discovery import CAMPUS_GRIDS, ENV_ID
from model_zoo.causal.statistics import friedman_test, holm, mean_ci

__all__ = ["OutcomeEffect", "adjust_effects", "outcome_effects", "paired_effect"]


@dataclass(frozen=True)
class OutcomeEffect:
    """The total effect of ``do(variable=value)`` on an outcome of the oracle's episodes, on twins.

    ``means`` and ``ci`` (95% half-widths) per do() value; ``differences``: the
    paired mean difference of each value against the first, with ``diff_ci``;
    ``statistic``, ``p_value`` and ``p_adjusted``: Friedman's test over the seeds
    (Holm-adjusted over every variable x outcome).
    """

    variable: str
    outcome: str
    values: tuple[Any, ...]
    means: tuple[float, ...]
    ci: tuple[float, ...]
    differences: tuple[float, ...]
    diff_ci: tuple[float, ...]
    statistic: float
    p_value: float
    p_adjusted: float = math.nan
    significant: bool = False


def outcome_effects(
    variables: Mapping[str, Sequence[Any]] | None = None,
    *,
    episodes: int = 64,
    max_steps: int = 200,
    alpha: float = 0.01,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[OutcomeEffect]:
    """Total effects of each variable on travel time and blocked moves of the shortest-path oracle.

    For every variable and every value of its grid (``CAMPUS_GRIDS`` by
    default), the same ``episodes`` seeds are reset with no intervention, then
    ``do(variable=value)`` is applied at step 0 (so every twin walks its seed's own
    task on the same noise tape) and the oracle walks until the episode ends or
    ``max_steps`` pass. Outcomes: ``travel_time`` (steps to the goal; an episode
    that does not arrive counts its steps) and ``blocked_moves``.

    >>> rows = outcome_effects({"weather": ("sunny", "snowy")}, episodes=4, max_steps=40)
    >>> [(r.variable, r.outcome, len(r.means)) for r in rows]
    [('weather', 'travel_time', 2), ('weather', 'blocked_moves', 2)]
    """
    from campus_env.oracle import ShortestPathPolicy

    grids = dict(CAMPUS_GRIDS if variables is None else variables)
    causal.validate_do({name: values[0] for name, values in grids.items()})
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 2:
        raise ValueError(f"episodes must be an integer of at least 2, got {episodes!r}")
    kwargs = {"obs_mode": "state", **dict(env_kwargs or {})}
    envs = gym.make_vec(ENV_ID, num_envs=episodes, max_episode_steps=max_steps, **kwargs)
    policy = ShortestPathPolicy()
    rows = []
    try:
        for name, values in grids.items():
            outcomes = {"travel_time": [], "blocked_moves": []}
            for value in values:
                envs.reset(seed=seed)
                envs.unwrapped.do(**{name: value})
                steps = np.full(episodes, max_steps)
                blocked = np.zeros(episodes)
                alive = np.ones(episodes, dtype=bool)
                for t in range(max_steps):
                    _, _, terminated, truncated, info = envs.step(policy(envs))
                    ended = alive & (terminated | truncated)
                    steps[ended & terminated] = t + 1
                    blocked[alive] = info["blocked_moves"][alive]
                    alive &= ~ended
                    if not alive.any():
                        break
                outcomes["travel_time"].append(steps.astype(np.float64))
                outcomes["blocked_moves"].append(blocked)
            rows += [paired_effect(name, outcome, values, np.stack(columns, axis=1))
                     for outcome, columns in outcomes.items()]
    finally:
        envs.close()
    return adjust_effects(rows, alpha)


def paired_effect(variable: str, outcome: str, values: Sequence[Any], y: np.ndarray) -> OutcomeEffect:
    """The effect of ``do(variable=values[j])`` from twins ``y`` (blocks, values): means, paired differences,
    Friedman's test over the blocks (not yet adjusted: see ``adjust_effects``)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(values):
        raise ValueError(f"y must be (blocks, {len(values)} values), got shape {y.shape}")
    stats = [mean_ci(y[:, j]) for j in range(y.shape[1])]
    diffs = [mean_ci(y[:, j] - y[:, 0]) for j in range(y.shape[1])]
    statistic, _, p = friedman_test(y)
    return OutcomeEffect(variable, outcome, tuple(values), tuple(m for m, _ in stats), tuple(c for _, c in stats),
                         tuple(m for m, _ in diffs), tuple(c for _, c in diffs), statistic, p)


def adjust_effects(rows: list[OutcomeEffect], alpha: float) -> list[OutcomeEffect]:
    """``rows`` with Holm-adjusted p-values over all of them, significant where ``p_adjusted <= alpha``."""
    adjusted = holm([r.p_value for r in rows])
    return [replace(r, p_adjusted=float(a), significant=bool(a <= alpha)) for r, a in zip(rows, adjusted, strict=True)]
