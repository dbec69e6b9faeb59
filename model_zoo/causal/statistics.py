"""The statistics the causal analysis rests on: tests of independence, rank tests, multiple testing.

- ``independence_test``: Pearson's chi-square test on a contingency table for a
  discrete outcome, Kruskal & Wallis's (1952) H test on ranks for a continuous
  one, each against groups given by the assigned ``do()`` values.
- ``friedman_test``: Friedman's (1937) rank test over blocks (one block per seed,
  one treatment per ``do()`` value), for effects measured on counterfactual twins.
- ``holm``: Holm's (1979) step-down adjustment, so that a family of tests keeps
  its family-wise error rate.
- ``mean_ci``: a mean and the half-width of its normal 95% confidence interval.

Chi-square tail probabilities come from the regularised upper incomplete gamma
function (``torch.special.gammaincc``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["chi2_sf", "friedman_test", "holm", "independence_test", "mean_ci", "ranks"]


def chi2_sf(statistic: float, df: int) -> float:
    """P(chi-square with ``df`` degrees of freedom >= statistic), via the regularised upper incomplete gamma.

    >>> round(chi2_sf(3.841, 1), 3)
    0.05
    """
    if df <= 0 or not statistic > 0:
        return 1.0
    a = torch.tensor(df / 2.0, dtype=torch.float64)
    x = torch.tensor(statistic / 2.0, dtype=torch.float64)
    return float(torch.special.gammaincc(a, x))


def ranks(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along ``axis``, ties given their average rank.

    >>> ranks(np.array([10.0, 30.0, 20.0, 30.0])).tolist()
    [1.0, 3.5, 2.0, 3.5]
    """
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
        y_ranks = ranks(y)
        sizes = np.bincount(gx, minlength=len(groups)).astype(np.float64)
        sums = np.bincount(gx, weights=y_ranks, minlength=len(groups))
        _, ties = np.unique(y, return_counts=True)
        correction = 1.0 - float((ties.astype(np.float64) ** 3 - ties).sum()) / (n**3 - n) if n > 1 else 0.0
        if correction <= 0.0:
            return 0.0, len(groups) - 1, 1.0
        h = (12.0 / (n * (n + 1)) * float((sums**2 / sizes).sum()) - 3.0 * (n + 1)) / correction
        df = len(groups) - 1
        return h, df, chi2_sf(h, df)
    _, gy = np.unique(y, return_inverse=True)
    table = np.zeros((len(groups), gy.max() + 1 if len(gy) else 0))
    np.add.at(table, (gx, gy), 1.0)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    if df == 0:
        return 0.0, 0, 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, df, chi2_sf(statistic, df)


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
    block_ranks = ranks(y, axis=1)
    mean = (k + 1) / 2.0
    ss_treatments = n * float(((block_ranks.mean(0) - mean) ** 2).sum())
    ss_error = float(((block_ranks - mean) ** 2).sum()) / (n * (k - 1))
    if ss_error <= 0.0:
        return 0.0, k - 1, 1.0
    statistic = ss_treatments / ss_error
    return statistic, k - 1, chi2_sf(statistic, k - 1)


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


def mean_ci(x: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% confidence interval (NaN for a single value).

    >>> mean, half = mean_ci([1.0, 2.0, 3.0])
    >>> mean, round(half, 4)
    (2.0, 1.1316)
    """
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return float(x.mean()), half
