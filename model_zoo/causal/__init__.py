"""Causal analysis of CampusNav-v0 and of world models: structure discovery and counterfactual twins.

Structure discovery from interventions. The graph among the causal variables
is recovered from hard interventions alone, in two stages, after the idea of
Eberhardt, Glymour & Scheines (2005), "On the number of experiments sufficient
and in the worst case necessary to identify all causal relations among N
variables" (UAI): interventions that randomise a variable cut it from its
causes, so a dependence between the randomised variable and another one can only
be an effect of the first.

1. Total effects. For every variable X, one experiment sets ``do(X=x)`` with ``x``
   drawn uniformly from a grid of X's domain, independently per sample; for
   every other variable Y a test of independence between the assigned ``x`` and
   the observed Y (Pearson's chi-square on the contingency table for a discrete
   Y, Kruskal & Wallis's rank test for a continuous one) says whether ``do(X)``
   shifts Y's distribution: X is then an ancestor of Y.
2. Direct effects. For every Y with ancestors, one more experiment randomises
   *all* of Y's ancestors at once, independently: every path from an ancestor X
   to Y other than the edge X -> Y is then cut, so the same independence test of
   X and Y, on this fresh data, decides whether the edge X -> Y exists. Indirect
   ancestors drop out here (day -> gameday -> road_closure), and an edge must
   pass two tests on separate data, which makes a false edge rarer still.

Each stage is one family of tests under Holm's (1979) step-down correction, so
the probability of any false edge in a stage is at most ``alpha``. The routine
takes any ``sampler`` (assignments -> observed values): ``campus_sampler``
samples the native vector env (``do()`` on sub-envs, one step, ``info["causal"]``),
and a numpy SCM works the same way. ``structural_hamming_distance`` scores the
result against ``env.unwrapped.causal_graph``; ``outcome_effects`` measures the
total effect of every variable on travel time and blocked moves of the
shortest-path oracle, on twins (Friedman's rank test over the seeds).

Counterfactual twins. ``env_twins`` runs each seed twice with the same actions,
once under ``do_factual`` and once under ``do_counterfactual``: the noise tape is
the same, so the second episode is the exact counterfactual of the first.
``model_twins`` does the same in a world model: the same start state and the same
generator seed, another ``do=`` in ``imagine``. ``compare_twins`` sets the
model's twin differences against the env's.

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
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env import causal
from campus_env.rules import BLOCKED_REWARD

__all__ = [
    "CAMPUS_GRIDS",
    "CONTINUOUS",
    "Discovery",
    "OutcomeEffect",
    "EdgeTest",
    "Twins",
    "campus_sampler",
    "compare_twins",
    "discover_campus",
    "discover_graph",
    "edges",
    "env_twins",
    "holm",
    "independence_test",
    "model_twins",
    "outcome_effects",
    "structural_hamming_distance",
    "twin_outcomes",
]

Graph = Mapping[str, Sequence[str]]
Sampler = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

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


# --- tests of independence ------------------------------------------------------------


def _chi2_sf(statistic: float, df: int) -> float:
    """P(chi-square with ``df`` degrees of freedom >= statistic), via the regularised upper incomplete gamma."""
    if df <= 0 or not statistic > 0:
        return 1.0
    a = torch.tensor(df / 2.0, dtype=torch.float64)
    x = torch.tensor(statistic / 2.0, dtype=torch.float64)
    return float(torch.special.gammaincc(a, x))


def _ranks(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along ``axis``, ties given their average rank."""
    values = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    flat = values.reshape(-1, values.shape[-1])
    out = np.empty_like(flat)
    for row, x in enumerate(flat):
        order = np.argsort(x, kind="mergesort")
        _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
        out[row, order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return np.moveaxis(out.reshape(values.shape), -1, axis)


def independence_test(x: np.ndarray, y: np.ndarray, continuous: bool) -> tuple[float, int, float]:
    """Tests whether ``y`` is independent of the group labels ``x``; returns (statistic, df, p-value).

    A discrete ``y``: Pearson's chi-square test on the groups x values table
    (empty rows and columns dropped). A continuous ``y``: the Kruskal-Wallis H
    test across the groups, with the correction for ties. A ``y`` that never
    varies gives p = 1.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 3, 600)
    >>> independence_test(x, x + rng.normal(size=600), continuous=True)[2] < 1e-6
    True
    >>> independence_test(x, rng.integers(0, 2, 600), continuous=False)[2] > 0.001
    True
    """
    x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of the same length, got shapes {x.shape} and {y.shape}")
    groups, gx = np.unique(x, return_inverse=True)
    if continuous:
        n = len(y)
        ranks = _ranks(y)
        sizes = np.bincount(gx, minlength=len(groups)).astype(np.float64)
        sums = np.bincount(gx, weights=ranks, minlength=len(groups))
        _, ties = np.unique(y, return_counts=True)
        correction = 1.0 - float((ties.astype(np.float64) ** 3 - ties).sum()) / (n**3 - n) if n > 1 else 0.0
        if correction <= 0.0:
            return 0.0, len(groups) - 1, 1.0
        h = (12.0 / (n * (n + 1)) * float((sums**2 / sizes).sum()) - 3.0 * (n + 1)) / correction
        df = len(groups) - 1
        return h, df, _chi2_sf(h, df)
    _, gy = np.unique(y, return_inverse=True)
    table = np.zeros((len(groups), gy.max() + 1 if len(gy) else 0))
    np.add.at(table, (gx, gy), 1.0)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    if df == 0:
        return 0.0, 0, 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, df, _chi2_sf(statistic, df)


def friedman_test(y: np.ndarray) -> tuple[float, int, float]:
    """Friedman's rank test that the k columns of ``y`` (n blocks x k treatments) share one distribution.

    Ranks within each block (ties averaged), statistic ``SS_treatments / SS_error``
    (the form that stays exact under ties), chi-square with k - 1 degrees of freedom.

    >>> rng = np.random.default_rng(0)
    >>> block = rng.normal(size=(50, 1))
    >>> friedman_test(block + np.array([0.0, 0.5, 1.0]) + 0.1 * rng.normal(size=(50, 3)))[2] < 1e-6
    True
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"y must be (blocks, treatments) with at least 2 treatments, got shape {y.shape}")
    n, k = y.shape
    ranks = _ranks(y, axis=1)
    mean = (k + 1) / 2.0
    ss_treatments = n * float(((ranks.mean(0) - mean) ** 2).sum())
    ss_error = float(((ranks - mean) ** 2).sum()) / (n * (k - 1))
    if ss_error <= 0.0:
        return 0.0, k - 1, 1.0
    statistic = ss_treatments / ss_error
    return statistic, k - 1, _chi2_sf(statistic, k - 1)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values: reject where ``adjusted <= alpha`` (family-wise error alpha).

    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


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
    samples: int = 2000,
    alpha: float = 0.01,
    seed: int = 0,
) -> Discovery:
    """Recovers the causal DAG among ``grids``' variables from interventional data (module docstring).

    Args:
        sampler: ``sampler({name: (n,) values}) -> {name: (n,) values}``: draws n
            samples, sample i under ``do(name=values[i])`` for every name given, and
            returns every variable's observed value (as numbers or user-facing values).
        grids: the do() values tried per variable (at least two each).
        continuous: variables tested with ranks (Kruskal-Wallis); the others with
            a contingency table.
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
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 2:
        raise ValueError(f"samples must be an integer of at least 2 per experiment, got {samples!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    names = list(grids)
    for name in names:
        if len(grids[name]) < 2:
            raise ValueError(f"grids[{name!r}] must hold at least two do() values, got {list(grids[name])!r}")
    unknown = set(continuous) - set(names)
    if unknown:
        raise ValueError(f"continuous names unknown variables {sorted(unknown)}; variables: {', '.join(names)}")
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
    for x in names:
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


# --- effects on outcomes -----------------------------------------------------------------


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


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% confidence interval."""
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return float(x.mean()), half


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
            for outcome, columns in outcomes.items():
                y = np.stack(columns, axis=1)  # (episodes, values)
                stats = [_mean_ci(y[:, j]) for j in range(y.shape[1])]
                diffs = [_mean_ci(y[:, j] - y[:, 0]) for j in range(y.shape[1])]
                statistic, _, p = friedman_test(y)
                rows.append(OutcomeEffect(
                    name, outcome, tuple(values), tuple(m for m, _ in stats), tuple(c for _, c in stats),
                    tuple(m for m, _ in diffs), tuple(c for _, c in diffs), statistic, p,
                ))
    finally:
        envs.close()
    adjusted = holm([r.p_value for r in rows])
    return [replace(r, p_adjusted=float(a), significant=bool(a <= alpha)) for r, a in zip(rows, adjusted, strict=True)]


# --- counterfactual twins ----------------------------------------------------------------


@dataclass(frozen=True)
class Twins:
    """N pairs of twins: the same seeds and actions under two interventions.

    ``factual`` and ``counterfactual`` map each outcome (``twin_outcomes``) to (N,)
    arrays; ``actions`` (N, T) are the actions both twins took; ``start_obs`` the
    factual twins' first observations (batched), where a model's twins start.
    """

    do_factual: dict[str, Any]
    do_counterfactual: dict[str, Any]
    factual: dict[str, np.ndarray]
    counterfactual: dict[str, np.ndarray]
    actions: np.ndarray
    start_obs: Any = None
    seed: int = 0
    source: str = "env"

    def differences(self) -> dict[str, np.ndarray]:
        """Per outcome, counterfactual minus factual, per pair (N,)."""
        return {k: self.counterfactual[k] - self.factual[k] for k in self.factual}


def twin_outcomes(reward: np.ndarray, terminated: np.ndarray) -> dict[str, np.ndarray]:
    """Outcomes of N episodes from their rewards and terminations (N, T); steps after a termination are ignored.

    ``return`` (summed reward), ``blocked_moves`` (steps whose reward is below
    ``BLOCKED_REWARD``: the env's -0.06 of a blocked move against -0.01 of a plain
    one), ``travel_time`` (the step of arrival, T when it does not arrive) and
    ``reached`` (0/1). Env and model twins are scored by this same function.

    >>> outcomes = twin_outcomes(np.array([[-0.01, -0.06, 0.99, -0.06]]), np.array([[0, 0, 1, 0]], bool))
    >>> {k: float(v[0]) for k, v in outcomes.items()}
    {'return': 0.92, 'blocked_moves': 1.0, 'travel_time': 3.0, 'reached': 1.0}
    """
    reward = np.asarray(reward, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    if reward.ndim != 2 or reward.shape != terminated.shape:
        raise ValueError(f"reward and terminated must both be (N, T), got {reward.shape} and {terminated.shape}")
    n, horizon = reward.shape
    ended_before = np.cumsum(terminated, axis=1) - terminated > 0  # (N, T) an earlier step terminated
    live = ~ended_before
    reached = terminated.any(axis=1)
    return {
        "return": np.round(np.where(live, reward, 0.0).sum(axis=1), 10),
        "blocked_moves": (live & (reward < BLOCKED_REWARD)).sum(axis=1).astype(np.float64),
        "travel_time": np.where(reached, terminated.argmax(axis=1) + 1, horizon).astype(np.float64),
        "reached": reached.astype(np.float64),
    }


def env_twins(
    do_factual: Mapping[str, Any],
    do_counterfactual: Mapping[str, Any],
    *,
    episodes: int = 64,
    steps: int = 60,
    policy: str | np.ndarray = "oracle",
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Twins:
    """Counterfactual twins in CampusNav-v0: each seed under ``do_factual``, then again under ``do_counterfactual``.

    Env ``i`` is reset with seed ``seed + i`` (the native vector env), so both
    twins read the same noise tape. The factual twin's actions come from
    ``policy``: ``"oracle"`` (the shortest-path oracle, acting in the factual
    world), ``"random"`` (uniform, from ``seed``) or an (episodes, steps) array;
    the counterfactual twin replays them exactly. Deterministic given the seed.

    >>> twins = env_twins({"weather": "sunny"}, {"weather": "snowy"}, episodes=3, steps=10, policy="random")
    >>> twins.actions.shape, sorted(twins.differences())
    ((3, 10), ['blocked_moves', 'reached', 'return', 'travel_time'])
    """
    do_factual, do_counterfactual = dict(do_factual), dict(do_counterfactual)
    causal.validate_do(do_factual)
    causal.validate_do(do_counterfactual)
    oracle = None
    if isinstance(policy, str):
        if policy not in ("oracle", "random"):
            raise ValueError(
                f"policy must be 'oracle', 'random' or an (episodes, steps) array of actions, got {policy!r}"
            )
        if policy == "oracle":
            from campus_env.oracle import ShortestPathPolicy

            oracle = ShortestPathPolicy()
            actions = np.zeros((episodes, steps), dtype=np.int64)  # filled as the factual twin walks
        else:
            actions = np.random.default_rng(seed).integers(0, 5, (episodes, steps))
    else:
        actions = np.asarray(policy)
        valid = actions.dtype.kind in "iu" and bool(np.all((actions >= 0) & (actions <= 4)))
        if actions.shape != (episodes, steps) or not valid:
            raise ValueError(
                f"actions must be an ({episodes}, {steps}) integer array in 0..4, got {actions.dtype} {actions.shape}"
            )
    kwargs = {"obs_mode": "state", **dict(env_kwargs or {})}
    envs = gym.make_vec(ENV_ID, num_envs=episodes, **kwargs)
    arms, start_obs = {}, None
    try:
        for arm, do in (("factual", do_factual), ("counterfactual", do_counterfactual)):
            obs, _ = envs.reset(seed=seed, options={"do": do})
            start_obs = obs if start_obs is None else start_obs
            reward = np.zeros((episodes, steps))
            terminated = np.zeros((episodes, steps), dtype=bool)
            for t in range(steps):
                if oracle is not None and arm == "factual":
                    actions[:, t] = oracle(envs)
                _, reward[:, t], terminated[:, t], _, _ = envs.step(actions[:, t])
            arms[arm] = twin_outcomes(reward, terminated)
    finally:
        envs.close()
    return Twins(do_factual, do_counterfactual, arms["factual"], arms["counterfactual"],
                 np.asarray(actions, dtype=np.int64), start_obs, seed, "env")


@torch.no_grad()
def model_twins(
    model: Any,
    start_obs: Any,
    actions: np.ndarray,
    do_factual: Mapping[str, Any],
    do_counterfactual: Mapping[str, Any],
    *,
    seed: int = 0,
) -> Twins:
    """Counterfactual twins imagined by a world model that takes interventions (``supports_do``).

    Both twins start from the same state (``start_obs`` filtered through
    ``observe`` as first steps), take the same ``actions`` (N, T) and draw from a
    generator seeded with ``seed`` afresh for each twin: they differ only by the
    ``do=`` given to every ``imagine`` call. Deterministic given the seed.

    Raises ``ValueError`` for a model without ``supports_do``.
    """
    if not getattr(model, "supports_do", False):
        name = getattr(model, "model_id", "") or type(model).__name__
        raise ValueError(
            f"model {name!r} does not take interventions (supports_do is False), so it has no counterfactual "
            "twins; use a causal world model such as 'causal_vae_mdnrnn'"
        )
    actions = np.asarray(actions)
    if actions.ndim < 2:
        raise ValueError(f"actions must be (N, T, ...) for N twins over T steps, got shape {actions.shape}")
    n, horizon = actions.shape[:2]
    device = model.device
    space = model.action_space
    first_action = torch.as_tensor(np.zeros((n,) + tuple(space.shape), dtype=actions.dtype), device=device)
    start = model.observe(model.initial_state(n), first_action, model.spec.to_torch(start_obs, device),
                          torch.ones(n, dtype=torch.bool, device=device))
    was_training = model.training
    model.eval()
    arms = {}
    try:
        for arm, do in (("factual", dict(do_factual)), ("counterfactual", dict(do_counterfactual))):
            generator = torch.Generator(device=device).manual_seed(seed)
            state = start
            reward = np.zeros((n, horizon))
            terminated = np.zeros((n, horizon), dtype=bool)
            for t in range(horizon):
                out = model.imagine(state, torch.as_tensor(actions[:, t], device=device), do=do or None,
                                    generator=generator)
                state = out.state
                reward[:, t] = out.reward.float().cpu().numpy()
                terminated[:, t] = out.terminated.bool().cpu().numpy()
            arms[arm] = twin_outcomes(reward, terminated)
    finally:
        model.train(was_training)
    return Twins(dict(do_factual), dict(do_counterfactual), arms["factual"], arms["counterfactual"],
                 actions, start_obs, seed, getattr(model, "model_id", "") or type(model).__name__)


def compare_twins(reference: Twins, other: Twins) -> dict[str, dict[str, float]]:
    """The twins' outcome differences in ``other`` (a model) against ``reference`` (the env), per outcome.

    For each outcome: the mean counterfactual-minus-factual difference of each
    with its 95% CI half-width, the error of the mean difference
    (``other - reference``), the mean absolute per-pair error, and the correlation
    of the per-pair differences (NaN where one side never varies).
    """
    if reference.actions.shape[:2] != other.actions.shape[:2]:
        raise ValueError(
            f"twins to compare need the same pairs: {reference.actions.shape[:2]} vs {other.actions.shape[:2]}"
        )
    out = {}
    ref_diff, other_diff = reference.differences(), other.differences()
    for outcome, r in ref_diff.items():
        o = other_diff[outcome]
        (rm, rc), (om, oc) = _mean_ci(r), _mean_ci(o)
        corr = float(np.corrcoef(r, o)[0, 1]) if r.std() > 0 and o.std() > 0 else math.nan
        out[outcome] = {"reference_effect": rm, "reference_ci": rc, "effect": om, "ci": oc, "error": om - rm,
                        "pair_mae": float(np.abs(o - r).mean()), "correlation": corr}
    return out
