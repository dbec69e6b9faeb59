"""The leaderboard's report: the tables (mean [95 % interval] over seeds), the ranks, the targets, the plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from campusnav.harness import markdown_table
from campusnav.leaderboard.summary import COLUMNS, RANKED

__all__ = ["TRANSFER_TARGET", "plot", "tables", "targets"]

THREE_HOURS = 3 * 3600
TRANSFER_TARGET = 0.8  # a dream-trained policy's share of reality's gain over random that counts as transfer


def _number(key: str, value: float) -> str:
    if not np.isfinite(value):
        return "-"
    if key in ("parameters", "imagined_steps_per_s") or key.endswith("_s"):
        return f"{value:,.0f}"
    if "psnr" in key:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(row: Mapping[str, Any], key: str) -> str:
    mean = row.get(key, math.nan)
    low, high = row.get(f"{key}_ci", [math.nan, math.nan])
    if not np.isfinite(mean):
        return "-"
    if row.get("seeds", 1) < 2 or low == high:
        return _number(key, mean)
    return f"{_number(key, mean)} [{_number(key, low)}, {_number(key, high)}]"


def tables(summary: Mapping[str, Any], reality: Mapping[str, Any]) -> list[str]:
    """Markdown lines: the prediction and control tables, the reality baselines and the ranks."""
    rows = sorted(summary["rows"], key=lambda r: -np.nan_to_num(r.get("precision@16", math.nan), nan=-1.0))
    lines: list[str] = []
    for table, title in (("prediction", "Prediction and fidelity (state vectors)"), ("control", "Control and cost"),
                         ("pixels", "Pixels: CampusNav-v0 read by the probe, and CarRacing-v3")):
        keys = [c.name for c in COLUMNS if c.table == table]
        lines += [f"### {title}", "", markdown_table(["model", *keys], [[r["model"], *(_cell(r, k) for k in keys)]
                                                                       for r in rows]), ""]
    baselines = [[name, _cell(reality, name + "_return"), _cell(reality, name + "_success")]
                 for name in ("random", "cmaes", "ppo")]
    lines += ["### Trained in reality (the reference of every transfer)", "",
              markdown_table(["policy", "return", "success"], baselines), ""]

    def rank(column: str, model: str) -> str:
        interval = summary["ranks"].get(column, {}).get(model)
        return "-" if interval is None else f"{interval[0]:.0f} [{interval[1]:.0f}, {interval[2]:.0f}]"

    lines += ["### Ranks (median [95 % interval] over bootstrap resamples of the seeds)", "",
              markdown_table(["model", *RANKED], [[r["model"], *(rank(c, r["model"]) for c in RANKED)] for r in rows])]
    return lines + [""]


def targets(summary: Mapping[str, Any], reality: Mapping[str, Any], wall: float, default_run: bool) -> list[str]:
    """PASS / MISS lines for the issue's targets, judged on the means over seeds."""
    rows = {r["model"]: r for r in summary["rows"]}
    lines = []
    navigates = reality.get("cmaes_success", math.nan) >= 0.5
    for agent, need, label in (("cmaes", 3, "CMA-ES"), ("ppo", 2, "SB3 PPO")):
        good = [m for m, r in rows.items() if r.get(f"{agent}_transfer", math.nan) >= TRANSFER_TARGET]
        ok = len(good) >= need and (agent != "cmaes" or navigates)
        lines.append(("PASS" if ok else "MISS") + f"  {label} transfer >= {TRANSFER_TARGET} for {len(good)} model(s) "
                     f"({', '.join(good) or 'none'}; target: {need})"
                     + (f"; the reality-trained controller's success {reality.get('cmaes_success', math.nan):.2f} "
                        "(target: >= 0.5)" if agent == "cmaes" else ""))
    low = [m for m, r in rows.items() if not r.get("precision@1", math.nan) > 0.5]
    lines.append(("PASS" if not low else "MISS") + "  every model's precision@1 above 0.5"
                 + (f" (not: {', '.join(low)})" if low else ""))
    if "mlp" in rows:
        base = rows["mlp"].get("precision@16", math.nan)
        below = [m for m, r in rows.items() if m != "mlp" and not r.get("precision@16", math.nan) > base]
        lines.append(("PASS" if not below else "MISS") + f"  the stochastic models above the deterministic mlp's "
                     f"precision@16 ({base:.3g})" + (f" (not: {', '.join(below)})" if below else ""))
    if default_run:
        lines.append(("PASS" if wall < THREE_HOURS else "MISS") + f"  the whole run took {wall / 3600:.2f} h "
                     "(target: within 3 h on 2 cores)")
    return lines


def plot(summary: Mapping[str, Any], curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], path: Path) -> None:
    """Held-out loss curves (each scaled to its own first and last point) and the key columns with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    names = [r["model"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for i, (model, runs) in enumerate(curves.items()):
        for j, curve in enumerate(runs):
            steps, loss = np.array(curve, dtype=np.float64).T
            span = loss[0] - loss[-1]
            scaled = (loss - loss[-1]) / span if span > 0 else loss * 0
            axes[0].plot(steps, scaled, color=f"C{i}", alpha=0.8, label=model if j == 0 else None)
    axes[0].set(title="held-out loss (1 = first, 0 = last)", xlabel="gradient step", ylim=(-0.2, 1.1))
    axes[0].legend(fontsize=7)
    for ax, key, title in ((axes[1], "precision@16", "precision@16 (higher is better)"),
                           (axes[2], "tv@16", "position TV@16 (lower is better)"),
                           (axes[3], "cmaes_transfer", "CMA-ES transfer (1: as trained in reality)")):
        means = np.array([r.get(key, math.nan) for r in rows])
        ci = np.array([r.get(f"{key}_ci", [math.nan, math.nan]) for r in rows]).reshape(-1, 2)
        err = np.nan_to_num(np.abs(ci.T - means), nan=0.0)
        ax.bar(names, np.nan_to_num(means), yerr=err, color="tab:blue", capsize=3)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", rotation=35, labelsize=7)
    axes[3].axhline(TRANSFER_TARGET, color="gray", linestyle="--")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
