"""Causal structure from interventions: the DAG among a system's variables, and CampusNav-v0 as that system.

After Eberhardt, Glymour & Scheines (2005), "On the number of experiments
sufficient and in the worst case necessary to identify all causal relations
among N variables" (UAI): an intervention that randomises a variable cuts it from
its causes, so a dependence between it and another variable can only be its effect.

1. Total effects. For every variable X, one experiment sets ``do(X=x)`` with ``x``
   drawn uniformly from X's grid, independently per sample; a test of
   independence between the assigned ``x`` and each other observed Y
   (``statistics.independence_test``) says whether X is an ancestor of Y.
2. Direct effects. For every Y with ancestors, one more experiment randomises all
   of them at once: every path from an ancestor X to Y other than the edge X -> Y
   is then cut, so the same test on this fresh data decides whether that edge
   exists. Indirect ancestors drop out (day -> gameday -> road_closure).

Each stage is one family of tests under Holm's correction, so the probability of
any false edge in a stage is at most ``alpha``. ``discover_graph`` takes any
``sampler`` (assignments -> observed values); ``campus_sampler`` samples the native
vector env (``do()`` on sub-envs, one step, ``info["causal"]``).
``structural_hamming_distance`` (Tsamardinos, Brown & Aliferis, 2006) scores a
result against the truth, ``env.unwrapped.causal_graph``.

>>> graph = {"a": (), "b": ("a",), "c": ("b",)}
>>> structural_hamming_distance(graph, {"a": (), "b": ("a",), "c": ("a",)})
2
>>> structural_hamming_distance(graph, {"a": ("b",), "b": (), "c": ("b",)})  # one edge reversed
1
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env import causal
from model_zoo.causal.statistics import holm, independence_test

__all__ = [
    "CAMPUS_GRIDS",
    "CONTINUOUS",
    "ENV_ID",
    "Discovery",
    "EdgeTest",
    "Graph",
    "Sampler",
    "campus_sampler",
    "discover_campus",
    "discover_graph",
    "edges",
    "structural_hamming_distance",
]

Graph = Mapping[str, Sequence[str]]
"""A DAG as ``{variable: its parents}``, the form of ``env.unwrapped.causal_graph``."""
Sampler = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""``sampler({name: (n,) do() values}) -> {name: (n,) observed values}`` for every variable."""

ENV_ID = "CampusNav-v0"
# do() values tried for each CampusNav variable (user-facing values, as env.unwrapped.do takes them)
CAMPUS_GRIDS: dict[str, tuple[Any, ...]] = {
    "day": tuple(range(7)),
    "hour": (7.5, 9.5, 11.5, 13.5, 15.5, 17.5, 19.5, 21.5),
    "semester": causal.SEMESTERS,
    "weather": causal.WEATHERS,
    "gameday": (False, True),
    "road_closure": (False, True),
    "crowd": (0.0, 0.25, 0.5, 0.75, 1.0),
}
# variables tested with ranks (Kruskal-Wallis) rather than a contingency table
CONTINUOUS = frozenset(name for name, v in causal.VARIABLES.items() if v.kind == "interval")


# --- graphs -------------------------------------------------------------------------


def edges(graph: Graph) -> set[tuple[str, str]]:
    """The edges ``(parent, child)`` of a graph given as ``{variable: parents}``.

    >>> sorted(edges({"a": (), "b": ("a",)}))
    [('a', 'b')]
    """
    if not isinstance(graph, Mapping):
        raise TypeError(f"a graph is a mapping {{variable: parents}}, got {type(graph).__name__}")
    out = set()
    for child, parents in graph.items():
        if isinstance(parents, str):
            raise TypeError(f"the parents of {child!r} must be a sequence of names, got the string {parents!r}")
        for parent in parents:
            if parent == child:
                raise ValueError(f"graph has a self-loop on {child!r}")
            out.add((parent, child))
    return out


def structural_hamming_distance(a: Graph, b: Graph) -> int:
    """Edge insertions, deletions and reversals that turn graph ``a`` into ``b``.

    Graphs are ``{variable: parents}`` (``env.unwrapped.causal_graph``'s form); a
    variable missing from one graph has no edges there. A reversed edge counts
    once, as in Tsamardinos, Brown & Aliferis (2006).

    >>> structural_hamming_distance({"a": (), "b": ("a",)}, {"a": (), "b": ()})
    1
    """
    ea, eb = edges(a), edges(b)
    pairs = {frozenset(e) for e in ea | eb}
    distance = 0
    for pair in pairs:
        u, v = sorted(pair)
        if ((u, v) in ea, (v, u) in ea) != ((u, v) in eb, (v, u) in eb):
            distance += 1
    return distance


# --- structure discovery ----------------------------------------------------------------


@dataclass(frozen=True)
class EdgeTest:
    """One test of ``cause`` -> ``effect`` under ``do()`` on ``intervened`` (``cause`` among them)."""

    stage: int  # 1: total effect (do() on the cause alone); 2: direct effect (do() on all ancestors of the effect)
    cause: str
    effect: str
    intervened: tuple[str, ...]
    statistic: float
    df: int
    p_value: float
    p_adjusted: float = math.nan  # Holm-adjusted within the stage
    significant: bool = False


@dataclass(frozen=True)
class Discovery:
    """What ``discover_graph`` found.

    ``graph`` is the DAG ``{variable: parents}``; ``ancestors`` the total effects
    ``{variable: the variables whose do() shifts it}``; ``tests`` every test run.
    """

    graph: dict[str, tuple[str, ...]]
    ancestors: dict[str, tuple[str, ...]]
    tests: tuple[EdgeTest, ...]
    experiments: int
    samples: int
    alpha: float
    seconds: float = 0.0

    def shd(self, truth: Graph) -> int:
        """Structural Hamming distance of the discovered graph to ``truth``."""
        return structural_hamming_distance(self.graph, truth)

    def table(self) -> str:
        """A markdown table of the significant tests and of the tests the second stage rejected."""
        direct = {(c, e) for e, parents in self.graph.items() for c in parents}
        lines = ["| cause | effect | stage | do() on | statistic (df) | p (Holm) | verdict |", "|---" * 7 + "|"]
        for t in sorted(self.tests, key=lambda t: (t.effect, t.cause, t.stage)):
            if not t.significant and t.stage == 1:
                continue
            verdict = "direct" if (t.cause, t.effect) in direct else "indirect" if t.stage == 2 else "ancestor"
            lines.append(
                f"| {t.cause} | {t.effect} | {t.stage} | {', '.join(t.intervened)} | "
                f"{t.statistic:.1f} ({t.df}) | {t.p_adjusted:.2g} | {verdict} |"
            )
        return "\n".join(lines)


def discover_graph(
    sampler: Sampler,
    grids: Mapping[str, Sequence[Any]],
    *,
    continuous: Sequence[str] | frozenset[str] = (),
    outcomes: Sequence[str] = (),
    samples: int = 2000,
    alpha: float = 0.01,
    seed: int = 0,
) -> Discovery:
    """Recovers the causal DAG among ``grids``' variables from interventional data (see the module docstring).

    Args:
        sampler: ``sampler({name: (n,) values}) -> {name: (n,) values}``: draws n
            samples, sample i under ``do(name=values[i])`` for every name given, and
            returns every variable's observed value (as numbers or user-facing values).
        grids: the do() values tried per variable (at least two each).
        continuous: variables tested with ranks (Kruskal-Wallis); the others with
            a contingency table.
        outcomes: variables only observed, never set by ``do()`` (a trip's travel time): effects,
            never causes; their parents are found, edges among them not searched.
        samples: samples per experiment (the data budget: there are one experiment
            per variable plus one per variable that has ancestors).
        alpha: family-wise error rate of each stage (Holm).
        seed: seeds the do() assignments.

    >>> def chain(do):  # a -> b -> c, each a noisy copy of its parent
    ...     n = len(next(iter(do.values())))
    ...     rng = np.random.default_rng(len(do))
    ...     a = do.get("a", rng.integers(0, 2, n))
    ...     b = do.get("b", np.where(rng.random(n) < 0.8, a, 1 - a))
    ...     return {"a": a, "b": b, "c": do.get("c", np.where(rng.random(n) < 0.8, b, 1 - b))}
    >>> found = discover_graph(chain, {"a": (0, 1), "b": (0, 1), "c": (0, 1)}, samples=500)
    >>> found.graph
    {'a': (), 'b': ('a',), 'c': ('b',)}
    """
    causes = _check_discovery_arguments(grids, continuous, outcomes, samples, alpha)
    names = causes + list(outcomes)
    rng = np.random.default_rng([seed, 0x5EED])  # a stream of its own, apart from any sampler seeded with seed
    started = time.perf_counter()
    experiments = 0

    def run(targets: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        nonlocal experiments
        experiments += 1
        picks = {t: rng.integers(0, len(grids[t]), samples) for t in targets}
        assigned = {t: np.array(list(grids[t]), dtype=object)[i] for t, i in picks.items()}
        observed = sampler({t: _values(v) for t, v in assigned.items()})
        missing = [n for n in names if n not in observed]
        if missing:
            raise ValueError(f"the sampler returned no values for {missing}; it must return every variable")
        return picks, {n: _numbers(observed[n], n, samples) for n in names}

    def test(stage: int, cause: str, effect: str, picks, observed, targets) -> EdgeTest:
        stat, df, p = independence_test(picks[cause], observed[effect], effect in continuous)
        return EdgeTest(stage, cause, effect, tuple(targets), stat, df, p)

    # stage 1: total effects, do() on one variable at a time
    stage1 = []
    for x in causes:
        picks, observed = run([x])
        stage1 += [test(1, x, y, picks, observed, [x]) for y in names if y != x]
    stage1 = _adjust(stage1, alpha)
    ancestors = {y: tuple(t.cause for t in stage1 if t.effect == y and t.significant) for y in names}

    # stage 2: direct effects, do() on every ancestor of the effect at once
    parents = {y: list(ancestors[y]) for y in names}
    stage2 = []
    for y in names:
        if ancestors[y]:
            picks, observed = run(ancestors[y])
            stage2 += [test(2, x, y, picks, observed, ancestors[y]) for x in ancestors[y]]
    stage2 = _adjust(stage2, alpha)
    for t in stage2:
        if not t.significant:
            parents[t.effect].remove(t.cause)
    graph = {y: tuple(p for p in names if p in parents[y]) for y in names}
    return Discovery(graph, ancestors, tuple(stage1 + stage2), experiments, experiments * samples, alpha,
                     time.perf_counter() - started)


def _check_discovery_arguments(
    grids: Mapping[str, Sequence[Any]], continuous: Sequence[str] | frozenset[str], outcomes: Sequence[str],
    samples: int, alpha: float,
) -> list[str]:
    """The names of the variables ``do()`` sets, once ``discover_graph``'s arguments are known to be usable."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 2:
        raise ValueError(f"samples must be an integer of at least 2 per experiment, got {samples!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    names = list(grids)
    for name in names:
        if len(grids[name]) < 2:
            raise ValueError(f"grids[{name!r}] must hold at least two do() values, got {list(grids[name])!r}")
    if isinstance(outcomes, str) or len(set(outcomes)) != len(outcomes) or set(outcomes) & set(names):
        raise ValueError(f"outcomes must be distinct names apart from grids' variables, got {outcomes!r}")
    unknown = set(continuous) - set(names) - set(outcomes)
    if unknown:
        raise ValueError(f"continuous names unknown variables {sorted(unknown)}; variables: "
                         f"{', '.join([*names, *outcomes])}")
    return names


def _adjust(tests: list[EdgeTest], alpha: float) -> list[EdgeTest]:
    if not tests:
        return tests
    adjusted = holm([t.p_value for t in tests])
    return [replace(t, p_adjusted=float(a), significant=bool(a <= alpha)) for t, a in zip(tests, adjusted, strict=True)]


def _values(array: np.ndarray) -> np.ndarray:
    """An object array of grid values as the plainest numpy array that holds them."""
    try:
        return np.array(array.tolist())
    except (TypeError, ValueError):
        return array


def _numbers(values: Any, name: str, n: int) -> np.ndarray:
    """Observed values as float64 codes (a categorical CampusNav value as its index)."""
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"the sampler returned {name!r} of shape {values.shape}, expected ({n},)")
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    variable = causal.VARIABLES.get(name)
    if variable is not None and variable.kind == "categorical":
        return np.array([variable.choices.index(v) for v in values.tolist()], dtype=np.float64)
    _, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.float64)


# --- CampusNav-v0 as a sampler ------------------------------------------------------------


def campus_sampler(num_envs: int = 500, seed: int = 0, env_kwargs: Mapping[str, Any] | None = None) -> Sampler:
    """A ``sampler`` for ``discover_graph`` on CampusNav-v0's native vector env.

    Each chunk of ``num_envs`` samples resets the vector env with fresh seeds
    (``seed``, ``seed + num_envs``, ...), applies every sample's assignments with
    ``env.unwrapped.do(env_ids=..., **{name: value})`` (one call per variable and
    value), takes one step standing still and reads ``info["causal"]``. The clock
    has then advanced one minute from the start (frozen where ``hour`` is set).

    >>> sample = campus_sampler(num_envs=4)
    >>> values = sample({"gameday": np.array([True, True, False, False])})
    >>> values["gameday"].tolist()
    [True, True, False, False]
    """
    kwargs = {"obs_mode": "state", **dict(env_kwargs or {})}
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs)
    base = envs.unwrapped
    chunks = itertools.count()

    def sample(assignments: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not assignments:
            raise ValueError("campus_sampler needs at least one assignment (it learns n from it)")
        n = len(next(iter(assignments.values())))
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, n, num_envs):
            size = min(num_envs, n - start)
            envs.reset(seed=seed + next(chunks) * num_envs)
            for name, values in assignments.items():
                chunk = np.asarray(values)[start : start + size]
                for value in np.unique(chunk):
                    ids = np.flatnonzero(chunk == value)
                    base.do(env_ids=ids, **{name: _plain(value)})
            info = envs.step(np.zeros(num_envs, dtype=np.int64))[-1]
            parts.append({k: np.asarray(v)[:size] for k, v in info["causal"].items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return sample


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value ``do()`` takes (bool, int, float or str)."""
    return value.item() if isinstance(value, np.generic) else value


def discover_campus(
    samples: int = 2000,
    *,
    variables: Sequence[str] | None = None,
    alpha: float = 0.01,
    seed: int = 0,
    num_envs: int = 500,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Discovery:
    """``discover_graph`` on CampusNav-v0 with ``CAMPUS_GRIDS``; ``samples`` is the budget per experiment.

    ``variables`` restricts the search to some of them (default: all seven).
    Compare with the truth: ``found.shd(env.unwrapped.causal_graph)``; at the
    default budget (11 experiments of 2000 samples, a few seconds) it is 0.

    >>> found = discover_campus(samples=500, variables=("day", "gameday", "crowd"))
    >>> found.graph
    {'day': (), 'gameday': ('day',), 'crowd': ('day', 'gameday')}
    """
    names = tuple(CAMPUS_GRIDS) if variables is None else tuple(variables)
    unknown = [n for n in names if n not in CAMPUS_GRIDS]
    if unknown or len(names) < 2:
        raise ValueError(f"variables must name at least two of {', '.join(CAMPUS_GRIDS)}, got {list(names)!r}")
    grids = {n: CAMPUS_GRIDS[n] for n in names}
    sampler = campus_sampler(num_envs=min(num_envs, samples), seed=seed, env_kwargs=env_kwargs)
    return discover_graph(sampler, grids, continuous=CONTINUOUS & set(names), samples=samples, alpha=alpha,
                          seed=seed)
