"""The leaderboard's summary: per-seed rows, means with bootstrap intervals, ranks with their spread, targets.

With a handful of seeds a mean alone hides how much it moves; each column is
reported as its mean over seeds and a 95 % percentile-bootstrap interval of that
mean, and each ranking as the median rank and the 95 % interval of the ranks over
bootstrap resamples (seeds resampled per model), as Agarwal et al., "Deep RL at
the Edge of the Statistical Precipice" (NeurIPS 2021), recommend. ``rliable``
implements this but pulls in ``arch``, ``pandas`` and ``seaborn``; the few lines
here need numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from campusnav.leaderboard.cell import late_share
from model_zoo.agents.transfer import transfer_ratio
from model_zoo.causal.statistics import ranks as average_ranks

__all__ = ["COLUMNS", "PIXEL_PREFIXES", "RANKED", "Column", "bootstrap_interval", "cell_row", "rank_intervals",
           "summarize"]

REPS = 2000


@dataclass(frozen=True)
class Column:
    name: str
    better: str  # "lower", "higher" or "" (a cost or a reference)
    table: str  # "prediction", "control" or "pixels"


COLUMNS = (
    Column("obs_mse@1", "lower", "prediction"), Column("obs_mse@16", "lower", "prediction"),
    Column("heldout_obs_mse@16", "lower", "prediction"), Column("precision@1", "higher", "prediction"),
    Column("precision@16", "higher", "prediction"), Column("recall@16", "higher", "prediction"),
    Column("tv@1", "lower", "prediction"), Column("tv@16", "lower", "prediction"),
    Column("do_error", "lower", "prediction"),
    Column("cmaes_success", "higher", "control"), Column("cmaes_transfer", "higher", "control"),
    Column("ppo_success", "higher", "control"), Column("ppo_transfer", "higher", "control"),
    Column("imagined_steps_per_s", "higher", "control"), Column("parameters", "", "control"),
    Column("train_s", "", "control"), Column("late_share", "", "control"),
    Column("px_precision@1", "higher", "pixels"), Column("px_precision@16", "higher", "pixels"),
    Column("px_recall@16", "higher", "pixels"), Column("px_tv@16", "lower", "pixels"),
    Column("px_valid@1", "higher", "pixels"), Column("px_valid@16", "higher", "pixels"),
    Column("px_recon_valid", "higher", "pixels"), Column("px_train_s", "", "pixels"),
    Column("car_psnr@1", "higher", "pixels"), Column("car_psnr@16", "higher", "pixels"),
)
RANKED = ("precision@16", "tv@16", "cmaes_transfer")
PIXEL_PREFIXES = ("px_", "car_")
"""Names of the per-seed columns measured on frames (the ``campus_pixels`` and ``car`` stages)."""


def cell_row(cell: Mapping[str, Any], reality: Mapping[str, Any], long: int) -> dict[str, float]:
    """One (model, seed)'s columns from its stages and its seed's reality baselines (missing: NaN)."""
    errors, fidelity, train = cell.get("errors", {}), cell.get("fidelity", {}), cell.get("train", {})
    random = reality.get("random", {}).get("return", math.nan)
    row = {
        "obs_mse@1": errors.get("obs_mse@1"), "obs_mse@16": errors.get(f"obs_mse@{long}"),
        "heldout_obs_mse@16": errors.get(f"heldout_obs_mse@{long}"), "copy_mse@16": errors.get(f"copy_mse@{long}"),
        "reward_mae": errors.get("reward_mae"), "termination_f1": errors.get("termination_f1"),
        "imagined_steps_per_s": errors.get("imagined_steps_per_s"), "parameters": errors.get("parameters"),
        "train_s": train.get("train_s"), "late_share": late_share(train["curve"]) if "curve" in train else None,
        "do_error": cell.get("do_error"),
        **{f"{name}@{k}": fidelity.get(f"{source}@{k}") for k in (1, 16)
           for name, source in (("precision", "precision"), ("recall", "recall"), ("tv", "position_tv"))},
        **{k: v for k, v in cell.get("car", {}).items() if k.startswith("car_")},
        **cell.get("campus_pixels", {}),
    }
    if "car" in cell:
        row["car_psnr@16"] = cell["car"].get(f"car_psnr@{long}")
    for agent in ("cmaes", "ppo"):
        if agent in cell and agent in reality:
            row[f"{agent}_success"] = cell[agent]["success"]
            row[f"{agent}_return"] = cell[agent]["return"]
            row[f"{agent}_transfer"] = transfer_ratio(cell[agent]["return"], reality[agent]["return"], random)
    return {k: (math.nan if v is None else float(v)) for k, v in row.items()}


def bootstrap_interval(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the finite ``values``: the mean and its percentile-bootstrap interval."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    means = v[np.random.default_rng(seed).integers(0, len(v), size=(REPS, len(v)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(v.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def rank_intervals(per_model: Mapping[str, Sequence[float]], better: str, seed: int = 0,
                   level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """Each model's (median, low, high) rank (1 = best) over bootstrap resamples of its seeds."""
    names = [m for m, v in per_model.items() if np.isfinite(v).any()]
    if not names:
        return {}
    rng = np.random.default_rng(seed)
    means = np.empty((REPS, len(names)))
    for j, name in enumerate(names):
        v = np.asarray([x for x in per_model[name] if np.isfinite(x)], dtype=np.float64)
        means[:, j] = v[rng.integers(0, len(v), size=(REPS, len(v)))].mean(axis=1)
    ranks = average_ranks(-means if better == "higher" else means, axis=1)  # ties share their mean rank
    tail = 100 * (1 - level) / 2
    return {name: (float(np.median(ranks[:, j])), float(np.percentile(ranks[:, j], tail)),
                   float(np.percentile(ranks[:, j], 100 - tail))) for j, name in enumerate(names)}


def summarize(rows: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """Per model: every column's mean and interval over its seeds' rows; and the ranks of ``RANKED``."""
    models = []
    for model, seed_rows in rows.items():
        entry: dict[str, Any] = {"model": model, "seeds": len(seed_rows)}
        for key in sorted({k for r in seed_rows for k in r}):
            mean, low, high = bootstrap_interval([r.get(key, math.nan) for r in seed_rows])
            entry[key], entry[f"{key}_ci"] = mean, [low, high]
        models.append(entry)
    better = {c.name: c.better for c in COLUMNS}
    ranks = {column: rank_intervals({m: [r.get(column, math.nan) for r in rs] for m, rs in rows.items()},
                                    better[column]) for column in RANKED}
    return {"rows": models, "ranks": ranks}
