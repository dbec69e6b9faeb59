"""What many walkers add to CampusNav's causal world: structure discovery and effects on per-walker data.

The data are per-walker rows of the multi-agent env
(``campus_env.multi_agent.trips.walk_episode``): the walkers on the campus, the
walker density, trail wear and crowd each walker met, its blocked moves, travel
time and speed. ``do()`` is assigned per episode (``num_agents`` for
``walkers``; the env's ``do()`` for ``walker_density``, ``trail`` and any
CampusNav-v0 variable), so the episode is the unit of randomisation and the
walkers of one episode share its world. ``walker_sampler`` therefore gives
``discover_graph`` one sample per episode, the mean of its walkers' rows: the
analysis of a cluster-randomised design at the level of the cluster (Donner &
Klar, 2000, "Design and Analysis of Cluster Randomization Trials"), which keeps
the tests' error rates. The walkers' outcomes are ``outcomes`` of
``discover_graph`` (observed, never set). ``walker_effects`` measures the
effects on twins (the same seeds under each ``do()`` value), as
``effects.outcome_effects`` does for one walker.

>>> sorted(WALKER_GRIDS), WALKER_OUTCOMES
(['trail', 'walker_density', 'walkers'], ('crowd', 'blocked_moves', 'travel_time', 'speed'))
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from campus_env.multi_agent import parallel_env, scm
from campus_env.multi_agent.trips import ROW_NAMES, walk_episode
from model_zoo.causal.discovery import Discovery, Sampler, discover_graph
from model_zoo.causal.effects import OutcomeEffect, adjust_effects, paired_effect

__all__ = ["WALKER_GRIDS", "WALKER_OUTCOMES", "discover_walkers", "walker_effects", "walker_sampler"]

WALKER_GRIDS: dict[str, tuple[Any, ...]] = {
    "walkers": (1, 50, 200),
    "walker_density": (0.0, 0.5, 1.0),
    "trail": (0.0, 0.5, 1.0),
}
WALKER_OUTCOMES = ("crowd", "blocked_moves", "travel_time", "speed")


class _Campus:
    """One env per walker count, walked episode by episode on fresh seeds."""

    def __init__(self, max_cycles: int, base_do: Mapping[str, Any] | None, env_kwargs):
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, got {max_cycles!r}")
        self.base_do = dict(base_do or {})
        scm.validate_do(self.base_do)
        self.kwargs = {"obs_mode": "state", **dict(env_kwargs or {}), "max_cycles": max_cycles}
        self.envs: dict[int, Any] = {}

    def rows(self, walkers: int, do: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
        if walkers not in self.envs:
            self.envs[walkers] = parallel_env(num_agents=walkers, **self.kwargs)
        return walk_episode(self.envs[walkers], seed=seed, do={**self.base_do, **do})


def walker_sampler(max_cycles: int = 100, seed: int = 0, natural_walkers: Sequence[int] = WALKER_GRIDS["walkers"],
                   base_do: Mapping[str, Any] | None = None, env_kwargs: Mapping[str, Any] | None = None) -> Sampler:
    """A ``sampler`` for ``discover_graph``: sample i is one episode under its assignments, its walkers' mean row.

    ``walkers`` sets ``num_agents``; every other name is passed to the env's
    ``do()`` at reset (with ``base_do``, a fixed background such as rain). Where
    ``walkers`` is not assigned it is drawn from ``natural_walkers``. Episode i of
    the k-th call has seed ``seed + k * 100_003 + i``.

    >>> sample = walker_sampler(max_cycles=10)
    >>> values = sample({"walkers": np.array([1, 3]), "trail": np.array([0.0, 1.0])})
    >>> values["walkers"].tolist(), float(values["trail"][0])
    ([1.0, 3.0], 0.0)
    """
    campus = _Campus(max_cycles, base_do, env_kwargs)
    rng = np.random.default_rng([seed, 0xC0DE])
    calls = itertools.count()

    def sample(assignments: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not assignments:
            raise ValueError("walker_sampler needs at least one assignment (it learns n from it)")
        n = len(next(iter(assignments.values())))
        counts = assignments.get("walkers", rng.choice(np.asarray(natural_walkers), n))
        first = seed + next(calls) * 100_003
        out = {name: np.zeros(n) for name in ROW_NAMES}
        for i in range(n):
            do = {name: _plain(values[i]) for name, values in assignments.items() if name != "walkers"}
            rows = campus.rows(_walkers(counts[i]), do, first + i)
            for name in ROW_NAMES:
                out[name][i] = rows[name].mean()
        return out

    return sample


def discover_walkers(
    episodes: int = 300,
    *,
    grids: Mapping[str, Sequence[Any]] | None = None,
    outcomes: Sequence[str] = WALKER_OUTCOMES,
    alpha: float = 0.01,
    seed: int = 0,
    max_cycles: int = 100,
    base_do: Mapping[str, Any] | None = None,
) -> Discovery:
    """``discover_graph`` on many walkers: ``grids`` (default ``WALKER_GRIDS``) set by ``do()``, ``outcomes`` observed.

    ``episodes`` is the budget per experiment (one sample per episode).

    >>> found = discover_walkers(12, grids={"walkers": (1, 20), "trail": (0.0, 1.0)}, outcomes=(), max_cycles=10)
    >>> sorted(found.graph)
    ['trail', 'walkers']
    """
    grids = dict(WALKER_GRIDS if grids is None else grids)
    unknown = [name for name in [*grids, *outcomes] if name not in ROW_NAMES]
    if unknown:
        raise ValueError(f"unknown walker variables {unknown}; rows have {', '.join(ROW_NAMES)}")
    natural = grids.get("walkers", WALKER_GRIDS["walkers"])
    sampler = walker_sampler(max_cycles, seed, natural, base_do)
    continuous = [name for name in [*grids, *outcomes] if name != "walkers"]
    return discover_graph(sampler, grids, continuous=continuous, outcomes=outcomes, samples=episodes, alpha=alpha,
                          seed=seed)


def walker_effects(
    variables: Mapping[str, Sequence[Any]] | None = None,
    outcomes: Sequence[str] = WALKER_OUTCOMES,
    *,
    episodes: int = 32,
    walkers: int = 200,
    max_cycles: int = 100,
    alpha: float = 0.01,
    seed: int = 0,
    base_do: Mapping[str, Any] | None = None,
) -> list[OutcomeEffect]:
    """Total effects of each variable on the walkers' mean outcomes, measured on twins.

    For every variable and value, the same ``episodes`` seeds are walked under
    ``do(variable=value)`` (``walkers`` walkers unless the variable is
    ``walkers``), so the episodes of one seed share their world and noise tape;
    each outcome is the episode's mean over its walkers. Paired differences,
    Friedman's test over the seeds, Holm's correction over every row.

    >>> rows = walker_effects({"trail": (0.0, 1.0)}, ("speed",), episodes=2, walkers=4, max_cycles=10)
    >>> [(r.variable, r.outcome, r.values) for r in rows]
    [('trail', 'speed', (0.0, 1.0))]
    """
    variables = dict(WALKER_GRIDS if variables is None else variables)
    unknown = [name for name in [*variables, *outcomes] if name not in ROW_NAMES]
    if unknown:
        raise ValueError(f"unknown walker variables {unknown}; rows have {', '.join(ROW_NAMES)}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 2:
        raise ValueError(f"episodes must be an integer of at least 2, got {episodes!r}")
    campus = _Campus(max_cycles, base_do, None)
    rows = []
    for name, values in variables.items():
        y = np.zeros((len(outcomes), episodes, len(values)))
        for j, value in enumerate(values):
            count, do = (_walkers(value), {}) if name == "walkers" else (walkers, {name: value})
            for s in range(episodes):
                result = campus.rows(count, do, seed + s)
                y[:, s, j] = [result[outcome].mean() for outcome in outcomes]
        rows += [paired_effect(name, outcome, tuple(values), y[o]) for o, outcome in enumerate(outcomes)]
    return adjust_effects(rows, alpha)


def _walkers(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or float(value) != int(value) or int(value) < 1:
        raise ValueError(f"walkers must be a positive integer, got {value!r}")
    return int(value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
